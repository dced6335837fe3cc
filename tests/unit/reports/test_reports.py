"""Report requests (validation at the edge) and report outputs, on hand-written metrics partitions."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiflow.config import BOROUGHS, DAY_NAMES, DEFAULT_REPORT_SOURCES, SOURCE_NAMES, DataPaths, Partition
from taxiflow.data import storage
from taxiflow.reports.params import report_param_schemas
from taxiflow.reports.query import report_counts
from taxiflow.reports.render import render_report
from taxiflow.reports.request import REQUEST_KEYS, InvalidRequest, ReportRequest

JANUARY = {"borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-02-01"}


@pytest.fixture
def report_paths(tmp_path, monkeypatch) -> DataPaths:
    """An empty data root of our own (the shared ``data_root`` fixture may not exist yet)."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("TAXIFLOW_DATA_DIR", str(root))
    return DataPaths(root)


def invalid(conf) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        ReportRequest.from_conf(conf)
    return caught.value


# --- Validation -----------------------------------------------------------------------------------


def test_unknown_borough_names_field_value_and_allowed_list():
    error = invalid({**JANUARY, "borough": "Manhatan"})
    assert str(error) == (
        "borough: 'Manhatan' is not allowed; "
        "allowed values: Manhattan, Brooklyn, Queens, Bronx, Staten Island"
    )
    assert (error.field, error.value, error.allowed) == ("borough", "Manhatan", BOROUGHS)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    "borough", ["manhattan", "MANHATTAN", " Manhattan", "EWR", "Unknown", "", 3, ["Manhattan"]]
)
def test_borough_must_match_exactly(borough):
    assert invalid({**JANUARY, "borough": borough}).field == "borough"


def test_missing_borough_is_named():
    error = invalid({"start_date": "2024-01-01", "end_date": "2024-02-01"})
    assert error.field == "borough"
    assert "is required" in str(error)


@pytest.mark.parametrize(
    "value",
    ["2024/01/01", "01-02-2024", "20240101", "2024-W01-1", "2024-1-1", "2024-01-01T00:00",
     "2024-02-30", "yesterday", "", 20240101, None],
)
def test_bad_start_date_is_named(value):
    error = invalid({**JANUARY, "start_date": value})
    assert error.field == "start_date"
    assert str(error).startswith("start_date: ")
    assert "YYYY-MM-DD" in str(error)
    if value not in (None, ""):
        assert repr(value) in str(error)


def test_bad_end_date_is_named():
    error = invalid({**JANUARY, "end_date": "2024-13-01"})
    assert error.field == "end_date"
    assert "'2024-13-01'" in str(error)


def test_datetime_objects_are_not_dates():
    assert invalid({**JANUARY, "start_date": datetime(2024, 1, 1, 12)}).field == "start_date"


def test_date_objects_are_accepted():
    request = ReportRequest.from_conf({**JANUARY, "start_date": date(2024, 1, 1)})
    assert request.start_date == date(2024, 1, 1)


def test_start_before_tlc_history_is_rejected():
    error = invalid({**JANUARY, "start_date": "2008-12-31"})
    assert error.field == "start_date"
    assert "2009-01-01" in str(error)


@pytest.mark.parametrize("start,end", [("2024-02-01", "2024-01-01"), ("2024-01-01", "2024-01-01")])
def test_reversed_or_empty_range_names_both_dates(start, end):
    error = invalid({**JANUARY, "start_date": start, "end_date": end})
    assert error.field == "end_date"
    assert start in str(error) and end in str(error)
    assert "start_date" in str(error)


def test_unknown_key_is_named_with_allowed_keys():
    error = invalid({**JANUARY, "bourough": "Queens"})
    assert str(error) == (
        "conf: unknown key 'bourough'; allowed keys: borough, start_date, end_date, sources, name"
    )


def test_several_unknown_keys_are_all_named():
    message = str(invalid({**JANUARY, "colour": "red", "limit": 5}))
    assert "'colour'" in message and "'limit'" in message


def test_conf_must_be_a_mapping():
    assert invalid(["Manhattan"]).field == "conf"


@pytest.mark.parametrize(
    "sources,problem",
    [("yellow", "is not a list"), (["purple"], "'purple'"), (["yellow", "yellow"], "twice"),
     ([1], "1"), (["yellow'; DROP TABLE trips;--"], "DROP TABLE"), ({"yellow": 1}, "not a list")],
)
def test_bad_sources_are_named(sources, problem):
    error = invalid({**JANUARY, "sources": sources})
    assert error.field == "sources"
    assert problem in str(error)
    assert "yellow, green" in str(error)


@pytest.mark.parametrize("sources", [None, [], ()])
def test_no_sources_means_the_taxis_as_before_fhv(sources):
    request = ReportRequest.from_conf({**JANUARY, "sources": sources})
    assert request.sources == DEFAULT_REPORT_SOURCES == ("yellow", "green")
    assert request.name.endswith("_yellow-green")  # the names reports had before fhv existed


def test_every_source_can_be_asked_for_and_names_the_report():
    request = ReportRequest.from_conf({**JANUARY, "sources": ["fhvhv", "yellow", "fhv", "green"]})
    assert request.sources == SOURCE_NAMES == ("yellow", "green", "fhv", "fhvhv")
    assert request.name.endswith("_yellow-green-fhv-fhvhv")
    schema = report_param_schemas()["sources"]
    assert schema["default"] == ["yellow", "green"]
    assert schema["items"]["enum"] == ["yellow", "green", "fhv", "fhvhv"]
    for word in ("Uber", "Lyft", "taxis only", "fhvhv"):
        assert word in schema["description"]


def test_sources_keep_one_canonical_order():
    request = ReportRequest.from_conf({**JANUARY, "sources": ["green", "yellow"]})
    assert request.sources == ("yellow", "green")
    assert ReportRequest.from_conf({**JANUARY, "sources": ["green"]}).sources == ("green",)


@pytest.mark.parametrize(
    "name",
    ["../x", "a/b", "x.png", "..", "/etc/passwd", "C:\\temp\\x", "-x", "_x", "a b", "abc\n",
     "a" * 81, "Manhattan'; DROP TABLE trips;--", "r\u00e9sum\u00e9", 5],
)
def test_unsafe_names_are_rejected(name):
    error = invalid({**JANUARY, "name": name})
    assert error.field == "name"
    assert repr(name) in str(error)
    assert "no dots or slashes" in str(error)


@pytest.mark.parametrize("name", ["q1", "Q1-2024_manhattan", "a" * 80, "7"])
def test_safe_names_are_kept(name):
    assert ReportRequest.from_conf({**JANUARY, "name": name}).name == name


@pytest.mark.parametrize(
    "borough", ["Manhattan'; DROP TABLE trips;--", "Manhattan' OR '1'='1", "Queens\"; --"]
)
def test_sql_shaped_borough_is_rejected_before_any_query(borough):
    error = invalid({**JANUARY, "borough": borough})
    assert error.field == "borough"
    assert repr(borough) in str(error)


@pytest.mark.parametrize("name", [None, ""])
def test_default_name_slugs_the_borough(name):
    request = ReportRequest.from_conf(
        {"borough": "Staten Island", "start_date": "2024-01-01", "end_date": "2024-02-01", "name": name}
    )
    assert request.name == "staten-island_2024-01-01_2024-02-01_yellow-green"
    green = ReportRequest.from_conf({"borough": "Staten Island", "start_date": "2024-01-01",
                                     "end_date": "2024-02-01", "sources": ["green"]})
    assert green.name == "staten-island_2024-01-01_2024-02-01_green"  # other numbers, other name


def test_months_cover_the_half_open_range():
    assert ReportRequest.from_conf(JANUARY).months == ["2024-01"]
    request = ReportRequest.from_conf({**JANUARY, "start_date": "2023-12-18", "end_date": "2024-01-08"})
    assert request.months == ["2023-12", "2024-01"]
    assert request.last_day == date(2024, 1, 7)


def test_to_conf_round_trips_through_json():
    request = ReportRequest.from_conf({**JANUARY, "sources": ["green"], "name": "q1"})
    conf = json.loads(json.dumps(request.to_conf()))
    assert conf == {
        "borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-02-01",
        "sources": ["green"], "name": "q1",
    }
    assert ReportRequest.from_conf(conf) == request


def test_direct_construction_is_validated_too():
    with pytest.raises(InvalidRequest, match="borough: 'Manhatan'"):
        ReportRequest("Manhatan", date(2024, 1, 1), date(2024, 2, 1))
    with pytest.raises(InvalidRequest, match=r"name: '\.\./x'"):
        ReportRequest("Manhattan", date(2024, 1, 1), date(2024, 2, 1), name="../x")
    request = ReportRequest("Queens", date(2024, 1, 1), date(2024, 1, 2))
    assert request.name == "queens_2024-01-01_2024-01-02_yellow-green"
    assert request.sources == DEFAULT_REPORT_SOURCES


def test_param_schemas_cover_every_key_and_agree_with_python_validation():
    jsonschema = pytest.importorskip("jsonschema")
    schemas = report_param_schemas()
    assert tuple(schemas) == REQUEST_KEYS
    assert schemas["borough"]["enum"] == list(BOROUGHS)
    assert schemas["start_date"]["format"] == schemas["end_date"]["format"] == "date"
    for key in ("borough", "start_date", "end_date"):
        assert "default" not in schemas[key], f"{key} is required: it must have no default"
    for schema in schemas.values():
        if "default" in schema:
            body = {k: v for k, v in schema.items() if k != "default"}
            jsonschema.validate(schema["default"], body)  # the optional fields open valid
    checker = jsonschema.FormatChecker()
    date_schema = {k: v for k, v in schemas["start_date"].items()}
    jsonschema.validate("2009-01-01", date_schema, format_checker=checker)
    jsonschema.validate("2024-02-29", date_schema, format_checker=checker)
    for bad in ("2008-12-31", "0999-01-01", "2024-02-30", "24-01-01"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, date_schema, format_checker=checker)
    name_schema = {k: v for k, v in schemas["name"].items() if k != "default"}
    for bad in ("../x", "a/b", "x.png", "Manhattan'; DROP TABLE trips;--"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, name_schema)


def test_importing_reports_stays_light():
    """DAG files import reports at parse time: no pandas, DuckDB or matplotlib until a report runs."""
    code = (
        "import sys, taxiflow.reports.request, taxiflow.reports.params; "
        "heavy = [m for m in ('pandas', 'duckdb', 'matplotlib', 'airflow') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Counts and outputs ---------------------------------------------------------------------------

METRICS_SCHEMA = pa.schema(
    [("pickup_date", pa.date32()), ("pickup_hour", pa.int8()), ("borough", pa.string()),
     ("trips", pa.int64()), ("passengers", pa.int64()), ("distance", pa.float64()),
     ("fare", pa.float64()), ("tip", pa.float64()), ("total", pa.float64())]
)


def write_partition(paths: DataPaths, source: str, month: str, rows: list[tuple]) -> None:
    """rows: (pickup_date 'YYYY-MM-DD', pickup_hour, borough, trips)."""
    folder = paths.metrics_dir("hourly_borough", Partition(source, month))
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(zip(*rows, strict=True))
    trips = list(columns[3])
    table = pa.table(
        {
            "pickup_date": [date.fromisoformat(d) for d in columns[0]],
            "pickup_hour": list(columns[1]),
            "borough": list(columns[2]),
            "trips": trips,
            "passengers": trips,
            "distance": [2.0 * t for t in trips],
            "fare": [15.0 * t for t in trips],
            "tip": [3.0 * t for t in trips],
            "total": [22.0 * t for t in trips],
        },
        schema=METRICS_SCHEMA,
    )
    pq.write_table(table, folder / "part.parquet")


@pytest.fixture
def metrics(report_paths) -> DataPaths:
    # 2024-01-01 is a Monday, 2024-01-07 a Sunday, 2024-01-31 a Wednesday, 2023-12-31 a Sunday.
    write_partition(report_paths, "yellow", "2024-01", [
        ("2024-01-01", 0, "Manhattan", 5),
        ("2024-01-07", 23, "Manhattan", 7),
        ("2024-01-31", 12, "Manhattan", 11),
        ("2024-02-01", 12, "Manhattan", 100),  # the end day: excluded
        ("2023-12-31", 5, "Manhattan", 13),  # a late record kept on its real date
        ("2024-01-01", 0, "Queens", 1000),  # another borough
        ("2024-01-01", 0, "Unknown", 500),
    ])
    write_partition(report_paths, "yellow", "2023-12", [
        ("2023-12-31", 5, "Manhattan", 2),
        ("2024-01-01", 0, "Manhattan", 3),  # an early record in the previous month's partition
    ])
    write_partition(report_paths, "green", "2024-01", [
        ("2024-01-01", 0, "Manhattan", 40),
        ("2024-01-02", 8, "Brooklyn", 9),
    ])
    return report_paths


def cell(counts, hour: int, day: str) -> int:
    row = counts[(counts.hour_of_day == hour) & (counts.day_of_week == day)]
    assert len(row) == 1
    return int(row.num_trips.iloc[0])


def test_counts_have_every_cell_in_order(metrics):
    counts = report_counts(ReportRequest.from_conf(JANUARY), metrics)
    assert list(counts.columns) == ["hour_of_day", "day_of_week", "num_trips"]
    assert len(counts) == 168
    assert list(counts.hour_of_day) == [h for h in range(24) for _ in range(7)]
    assert list(counts.day_of_week) == list(DAY_NAMES) * 24
    assert counts.num_trips.dtype.kind == "i"


def test_counts_sum_all_partitions_within_the_range(metrics):
    counts = report_counts(ReportRequest.from_conf(JANUARY), metrics)
    assert cell(counts, 0, "Monday") == 5 + 3 + 40
    assert cell(counts, 23, "Sunday") == 7
    assert cell(counts, 12, "Wednesday") == 11
    assert cell(counts, 12, "Thursday") == 0  # 2024-02-01 is the excluded end day
    assert cell(counts, 5, "Sunday") == 0  # 2023-12-31 is before the start
    assert int(counts.num_trips.sum()) == 66
    assert (counts.num_trips >= 0).all() and (counts.num_trips == 0).sum() == 168 - 3


def test_start_is_included_and_end_excluded(metrics):
    request = ReportRequest.from_conf({**JANUARY, "start_date": "2023-12-31", "end_date": "2024-01-01"})
    counts = report_counts(request, metrics)
    assert cell(counts, 5, "Sunday") == 13 + 2
    assert int(counts.num_trips.sum()) == 15


def test_sources_filter(metrics):
    yellow = report_counts(ReportRequest.from_conf({**JANUARY, "sources": ["yellow"]}), metrics)
    assert cell(yellow, 0, "Monday") == 8
    assert int(yellow.num_trips.sum()) == 26
    green = report_counts(ReportRequest.from_conf({**JANUARY, "sources": ["green"]}), metrics)
    assert int(green.num_trips.sum()) == 40


def test_other_boroughs_are_excluded(metrics):
    counts = report_counts(ReportRequest.from_conf({**JANUARY, "borough": "Queens"}), metrics)
    assert cell(counts, 0, "Monday") == 1000
    assert int(counts.num_trips.sum()) == 1000
    brooklyn = report_counts(ReportRequest.from_conf({**JANUARY, "borough": "Brooklyn"}), metrics)
    assert cell(brooklyn, 8, "Tuesday") == 9 and int(brooklyn.num_trips.sum()) == 9


def test_missing_partitions_count_as_zero(report_paths):
    counts = report_counts(ReportRequest.from_conf(JANUARY), report_paths)
    assert len(counts) == 168 and int(counts.num_trips.sum()) == 0


def test_folders_that_are_not_months_are_ignored(metrics):
    stray = metrics.warehouse / "metrics" / "hourly_borough" / "source=yellow" / "month=latest"
    stray.mkdir()
    (stray / "part.parquet").write_bytes(b"not parquet")
    assert int(report_counts(ReportRequest.from_conf(JANUARY), metrics).num_trips.sum()) == 66


def test_render_report_writes_csv_and_png(metrics):
    from PIL import Image

    request = ReportRequest.from_conf({**JANUARY, "name": "jan"})
    assert not metrics.outputs.exists()
    outputs = render_report(request, metrics, run_id="manual__1")
    assert outputs.folder == metrics.outputs / "jan"
    assert outputs.version.startswith("v-")
    assert outputs.csv == metrics.outputs / "jan" / outputs.version / "jan.csv"
    assert outputs.png == metrics.outputs / "jan" / outputs.version / "jan.png"
    assert outputs.total_trips == 66

    lines = outputs.csv.read_text().splitlines()
    assert len(lines) == 169
    assert lines[0] == "hour_of_day,day_of_week,num_trips"
    assert lines[1] == "0,Sunday,0"
    assert lines[2] == "0,Monday,48"
    assert "23,Sunday,7" in lines and "12,Wednesday,11" in lines
    assert sum(int(line.rsplit(",", 1)[1]) for line in lines[1:]) == 66

    with Image.open(outputs.png) as image:
        image.verify()
    with Image.open(outputs.png) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert 1000 <= width <= 1600 and 600 <= height <= 1000
        assert len(set(image.convert("RGB").resize((60, 35)).get_flattened_data())) > 10  # not blank
    assert storage.files_below(outputs.folder) == sorted(
        ["manifest.json", f"{outputs.version}/jan.csv", f"{outputs.version}/jan.png"]
    )
    assert sorted(p.name for p in metrics.outputs.iterdir()) == ["jan"]
    manifest = json.loads(outputs.manifest.read_text())
    assert manifest["request"] == request.to_conf() and manifest["run_id"] == "manual__1"
    assert manifest["version"] == outputs.version
    assert manifest["files"]["csv"]["key"] == f"{outputs.version}/jan.csv"
    assert manifest["total_trips"] == 66
    import hashlib

    assert manifest["files"]["csv"]["sha256"] == hashlib.sha256(outputs.csv.read_bytes()).hexdigest()
    assert manifest["files"]["png"]["sha256"] == hashlib.sha256(outputs.png.read_bytes()).hexdigest()


def test_render_report_refreshes_the_same_request_and_uses_default_name(metrics):
    request = ReportRequest.from_conf({**JANUARY, "sources": ["yellow"]})
    first = render_report(request, metrics)
    outputs = render_report(request, metrics)
    assert outputs.folder.name == outputs.csv.stem == "manhattan_2024-01-01_2024-02-01_yellow"
    assert outputs.csv.read_text().splitlines()[2] == "0,Monday,8"
    assert outputs.total_trips == 26
    assert [p.name for p in metrics.outputs.iterdir()] == [outputs.folder.name]
    assert outputs.version != first.version and not first.csv.exists()  # the superseded version is gone
    assert storage.files_below(outputs.folder) == sorted(
        ["manifest.json", f"{outputs.version}/{outputs.csv.name}", f"{outputs.version}/{outputs.png.name}"]
    )


def test_a_name_holding_another_requests_report_is_refused_not_overwritten(metrics):
    from taxiflow.reports.outputs import read_report

    mine = render_report(ReportRequest.from_conf({**JANUARY, "name": "board"}), metrics)
    before = read_report("board", metrics)
    other = ReportRequest.from_conf({**JANUARY, "sources": ["green"], "name": "board"})
    with pytest.raises(InvalidRequest) as caught:
        render_report(other, metrics)
    assert caught.value.field == "name"
    assert "outputs/board/ already holds the report for a different request" in str(caught.value)
    assert "Manhattan 2024-01-01 .. 2024-02-01 (yellow, green)" in str(caught.value)
    assert read_report("board", metrics) == before and mine.total_trips == 66
    assert [p.name for p in metrics.outputs.iterdir()] == ["board"]
    assert storage.files_below(metrics.outputs / "board") == sorted(  # the refused publish left nothing
        ["manifest.json", f"{mine.version}/board.csv", f"{mine.version}/board.png"]
    )


def test_the_same_owner_may_replace_its_own_report(metrics):
    owner = "requests/jan.json"
    render_report(ReportRequest.from_conf({**JANUARY, "name": "jan"}), metrics, owner=owner)
    edited = ReportRequest.from_conf({**JANUARY, "sources": ["green"], "name": "jan"})
    assert render_report(edited, metrics, owner=owner).total_trips == 40
    with pytest.raises(InvalidRequest):
        render_report(ReportRequest.from_conf({**JANUARY, "name": "jan"}), metrics, owner="requests/other.json")


def test_a_folder_that_is_not_a_report_is_left_alone(metrics):
    (metrics.outputs / "mine").mkdir(parents=True)
    (metrics.outputs / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidRequest, match="not a taxiflow report folder"):
        render_report(ReportRequest.from_conf({**JANUARY, "name": "mine"}), metrics)
    assert (metrics.outputs / "mine" / "notes.txt").read_text() == "keep me"
    assert [p.name for p in (metrics.outputs / "mine").iterdir()] == ["notes.txt"]  # nothing written into it


def test_readers_never_see_a_png_and_csv_of_two_versions(metrics):
    """Publish two different versions of one report in a loop while a reader checks every pair."""
    import threading

    from taxiflow.reports.outputs import read_report

    owner = "requests/live.json"
    versions = [ReportRequest.from_conf({**JANUARY, "sources": s, "name": "live"}) for s in (["yellow"], ["green"])]
    render_report(versions[0], metrics, owner=owner)
    stop = threading.Event()
    mismatches, reads = [], 0

    def read_loop():
        nonlocal reads
        while not stop.is_set():
            try:
                seen = read_report("live", metrics)
            except Exception as err:
                mismatches.append(repr(err))
                continue
            if seen is None:
                mismatches.append("missing")
                continue
            reads += 1
            total = sum(int(line.rsplit(",", 1)[1]) for line in seen.csv.decode().splitlines()[1:])
            files = seen.manifest["files"]
            import hashlib

            if total != seen.manifest["total_trips"] or hashlib.sha256(seen.png).hexdigest() != files["png"]["sha256"]:
                mismatches.append((total, seen.manifest["total_trips"]))

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for i in range(8):
            render_report(versions[i % 2], metrics, owner=owner)
    finally:
        stop.set()
        reader.join()
    assert reads > 0 and mismatches == []


def test_render_report_with_no_trips(report_paths):
    import matplotlib

    backend = matplotlib.rcParams["backend"]
    outputs = render_report(ReportRequest.from_conf({**JANUARY, "borough": "Staten Island"}), report_paths)
    assert outputs.total_trips == 0
    assert outputs.png.stat().st_size > 1000
    assert len(outputs.csv.read_text().splitlines()) == 169
    assert matplotlib.rcParams["backend"] == backend  # no global backend switch


def test_render_report_defaults_to_the_configured_data_root(metrics):
    outputs = render_report(ReportRequest.from_conf(JANUARY))  # TAXIFLOW_DATA_DIR -> tmp root
    assert outputs.folder.parent == metrics.outputs
    assert outputs.total_trips == 66


def test_outputs_stay_inside_outputs(metrics):
    outputs = render_report(ReportRequest.from_conf({**JANUARY, "name": "x"}), metrics)
    for path in (outputs.csv, outputs.png):
        assert path.resolve().parent.parent == (metrics.outputs / "x").resolve()


def test_concurrent_reports_in_threads_agree(metrics):
    from concurrent.futures import ThreadPoolExecutor

    requests = [
        ReportRequest.from_conf({**JANUARY, "sources": sources}) for sources in (["yellow"], ["green"], None)
    ] * 4
    with ThreadPoolExecutor(max_workers=6) as pool:
        totals = list(pool.map(lambda r: int(report_counts(r, metrics).num_trips.sum()), requests))
    assert totals == [26, 40, 66] * 4


def test_a_report_cannot_overwrite_a_weekly_summary():
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(InvalidRequest, match="reserved for the weekly summaries") as err:
        ReportRequest.from_conf({"borough": "Queens", "start_date": "2024-01-01", "end_date": "2024-01-02",
                                 "name": "trips_by_week_yellow"})
    assert err.value.field == "name"
    name_schema = {k: v for k, v in report_param_schemas()["name"].items() if k != "default"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("trips_by_week_yellow", name_schema)
    jsonschema.validate("trips_by_weekday", name_schema)


def test_report_files_are_readable_by_others(tmp_path):
    import stat

    from taxiflow.config import DataPaths
    from taxiflow.reports.query import empty_counts
    from taxiflow.reports.render import write_report_files

    request = ReportRequest.from_conf({"borough": "Bronx", "start_date": "2024-01-01", "end_date": "2024-01-02"})
    outputs = write_report_files(request, empty_counts(), DataPaths(tmp_path))
    for path in (outputs.png, outputs.csv):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044


def test_ingested_sources_come_from_the_environment(monkeypatch):
    from taxiflow.config import INGEST_SOURCES_ENV, ingest_sources

    monkeypatch.delenv(INGEST_SOURCES_ENV, raising=False)
    assert ingest_sources() == ("yellow", "green")
    monkeypatch.setenv(INGEST_SOURCES_ENV, "fhvhv, yellow")
    assert ingest_sources() == ("yellow", "fhvhv")
    monkeypatch.setenv(INGEST_SOURCES_ENV, "all")
    assert ingest_sources() == SOURCE_NAMES
    monkeypatch.setenv(INGEST_SOURCES_ENV, "yellow,uber")
    with pytest.raises(ValueError, match=r"TAXIFLOW_INGEST_SOURCES must be .* got 'yellow,uber'"):
        ingest_sources()


def test_a_report_on_a_source_this_deployment_does_not_ingest_is_refused(monkeypatch):
    from taxiflow.config import INGEST_SOURCES_ENV
    from taxiflow.reports.request import check_limits

    request = ReportRequest.from_conf({**JANUARY, "sources": ["yellow", "fhvhv"]})
    monkeypatch.delenv(INGEST_SOURCES_ENV, raising=False)
    with pytest.raises(InvalidRequest, match="sources: fhvhv is not ingested by this deployment") as raised:
        check_limits(request, today=date(2024, 3, 1))
    assert raised.value.field == "sources"
    monkeypatch.setenv(INGEST_SOURCES_ENV, "all")
    assert check_limits(request, today=date(2024, 3, 1)) is request


def test_the_chart_subtitle_says_which_families_it_counts():
    from taxiflow.reports.render import report_subtitle

    taxis = ReportRequest.from_conf(JANUARY)
    assert report_subtitle(taxis, 1234) == (
        "Yellow taxi + green taxi records (for-hire vehicles, Uber and Lyft included, not counted)  ·  "
        "1,234 trips in total"
    )
    everything = ReportRequest.from_conf({**JANUARY, "sources": list(SOURCE_NAMES)})
    assert report_subtitle(everything, 1).startswith(
        "Yellow taxi + green taxi + for-hire vehicle + high-volume for-hire vehicle records (every TLC trip family)"
    )
