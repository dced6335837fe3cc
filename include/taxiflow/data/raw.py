"""Raw storage: the last validated copy of each drop, and the staged copy of a new one.

    raw/<source>/<YYYY-MM>/            the drop the warehouse partition was built from
    raw/<source>/.<YYYY-MM>.staged/    a new drop, copied from landing, not yet validated

``copy_to_raw`` stages; ``taxiflow.data.ingest.process_partition`` validates the staged copy and
only then calls ``promote_staged`` (and replaces the partition). Landing is only ever read. Both
steps are one call each into ``folders`` on either backend: on local disk files are opened without
following links and folders are swapped in by rename; in an object store objects are copied
server-side (raw is read only by ``process_partition``, never by a report, so it needs no swap).
"""

from __future__ import annotations

from pathlib import Path

from taxiflow.config import DATA_FILE_SUFFIXES, DataPaths, Partition
from taxiflow.data import folders, storage
from taxiflow.data.landing import UnsafeDropError, data_files, has_data_file_name, is_data_file
from taxiflow.data.storage import data_paths


def staged_dir(partition: Partition, paths: DataPaths | None = None) -> Path:
    """``raw/<source>/.<month>.staged/``: a new drop's copy, waiting to be validated."""
    raw_dir = (paths or data_paths()).raw_dir(partition)
    return raw_dir.with_name(f".{partition.month}.staged")


def copy_to_raw(partition: Partition, paths: DataPaths | None = None) -> list[Path]:
    """Stage the drop: copy its data files to ``raw/<source>/.<month>.staged/``; return them.

    ``raw/<source>/<month>/`` itself is replaced only by ``process_partition``, once the staged copy
    validated. Files are opened without following links (``UnsafeDropError`` otherwise, before
    anything is copied) and copied into a hidden folder swapped in whole. Landing is only read.
    """
    paths = paths or data_paths()
    files = data_files(partition, paths)  # refuses links and paths outside landing/
    if not files:
        raise FileNotFoundError(
            f"no data files ({', '.join(DATA_FILE_SUFFIXES)}) in {paths.landing_dir(partition)} "
            f"for source {partition.source!r}, month {partition.month!r}"
        )
    staged = staged_dir(partition, paths)
    try:
        folders.stage_copies(files, staged)
    except folders.NotARegularFile as err:
        raise UnsafeDropError(f"refused {err.name}: {err.reason}. Nothing of it was copied.") from None
    return data_files_in(staged)


def data_files_in(folder: Path) -> list[Path]:
    if storage.is_remote(folder):
        return [path for path in storage.list_dir(folder) if has_data_file_name(path.name) and path.is_file()]
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_data_file(path))


def raw_files(partition: Partition, paths: DataPaths | None = None) -> list[Path]:
    """The data files in ``raw/<source>/<month>/`` (the last validated drop), sorted by name."""
    return data_files_in((paths or data_paths()).raw_dir(partition))


def promote_staged(partition: Partition, paths: DataPaths) -> None:
    """Swap the validated staged copy in as ``raw/<source>/<month>/``."""
    folders.publish(staged_dir(partition, paths), paths.raw_dir(partition))
