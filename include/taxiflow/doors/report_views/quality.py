"""The *Data quality* page and its JSON: every source × month, its figures, its ingest state, its flags.

Figures and flags come from the data layer (``taxiflow.data.quality``: the partitions'
``_summary.json`` and the refusal records); the state of each month's ingest comes from the metadata
database and means what it means to a report's gate (``taxiflow.reports.ingest_status``): a month
whose latest re-drop was refused over a good partition is ``kept``, and reports use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from taxiflow.config import INGEST_DAG_ID, SOURCE_NAMES
from taxiflow.data.quality import RULES, MonthQuality, month_figures
from taxiflow.data.refusals import refusal_outcome, shown
from taxiflow.doors.report_views.runs import read_ingest_states
from taxiflow.reports.ingest_status import IngestStatus, ingest_statuses

# status -> what the page says
STATUS_TEXT = {
    "ingested": "ingested", "kept": "re-drop refused, earlier ingest in use", "failed": "failed",
    "refused": "refused, never ingested", "running": "running", "waiting": "waiting", "skipped": "not published",
}


@dataclass(frozen=True)
class QualityRow:
    """One source's month on the page: its figures and flags, and where its ingest stands."""

    figures: MonthQuality
    status: str  # a key of STATUS_TEXT
    detail: str  # a few words more: the ingest run's state, or the kept partition's note

    def to_json(self) -> dict[str, Any]:
        return {**self.figures.to_json(), "status": self.status, "status_detail": self.detail}


def _status(figures: MonthQuality, ingest: IngestStatus | None) -> tuple[str, str]:
    """(status, detail) from the ingest run's state where there is one, else from the data alone."""
    if ingest is None:  # no ingest run in the metadata database (never run here, or cleaned up)
        if figures.ingested:
            return "ingested", "no ingest run on record"
        return "refused", "no ingest run on record"
    if ingest.state == "done":
        if ingest.task_state == "skipped":
            return "skipped", f"TLC published no {figures.source} trips for {figures.month}"
        return "ingested", f"ingested with its metrics by the {INGEST_DAG_ID} run for {figures.month}"
    if ingest.state == "kept" and ingest.kept is not None:
        return "kept", ingest.kept.note
    if ingest.state == "failed":
        return ("refused" if figures.refusal and not figures.ingested else "failed"), ingest.detail
    return ("running" if ingest.run_state == "running" else "waiting"), ingest.detail


def quality_rows(session: Any, paths: Any = None) -> list[QualityRow]:
    """Every source × month with data, a refusal or an ingest run: newest month first."""
    from taxiflow.config import ingest_sources

    figures = {(m.source, m.month): m for m in month_figures(paths)}
    sources = [s for s in SOURCE_NAMES if s in set(ingest_sources()) | {source for source, _ in figures}]
    task_states, run_states, run_ids = read_ingest_states(session, sources)
    months = sorted(run_states)
    statuses = {(s.source, s.month): s for s in ingest_statuses(
        months, sources, task_states, run_states,
        refusal_lookup=lambda p, r: refusal_outcome(p, paths, run_id=r), run_ids=run_ids,
    )}
    result = []
    for key in sorted(set(figures) | set(statuses), key=lambda k: (k[1], SOURCE_NAMES.index(k[0])), reverse=True):
        source, month = key
        item = figures.get(key) or MonthQuality(source, month)
        status, detail = _status(item, statuses.get(key))
        if status == "skipped" and not item.ingested:
            continue  # before TLC published the source: not one of its months
        result.append(QualityRow(item, status, detail))
    return result


def select_rows(rows: Sequence[QualityRow], source: str | None, flagged: bool) -> list[QualityRow]:
    return [row for row in rows if (source is None or row.figures.source == source)
            and (not flagged or row.figures.flags)]


def quality_json(rows: Sequence[QualityRow]) -> dict[str, Any]:
    """The JSON for scripts: the rules, then one object per source × month (as on the page)."""
    return {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "rules": RULES,
            "months": [row.to_json() for row in rows]}


# --- HTML ------------------------------------------------------------------------------------------

QUALITY_STYLE = """
table.quality td{text-align:right} table.quality td.text{text-align:left;max-width:28rem}
tr.flagged td{background:#fdf3f2} .flag{color:#b3261e} .status-kept{color:#8a5a00} .status-failed,
.status-refused{color:#b3261e}
"""


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _row_html(row: QualityRow) -> str:
    f = row.figures
    refusal = "-"
    if f.refusal is not None:
        refusal = f"{shown(f.refusal.refused_at)}: {f.refusal.reason}"
    flags = "<br>".join(f"<span class=flag>{escape(flag)}</span>" for flag in f.flags) or "-"
    cells = [
        f"<td class=text>{escape(f.month)}</td>", f"<td class=text>{escape(f.source)}</td>",
        f"<td class='text status-{escape(row.status)}' title='{escape(row.detail)}'>"
        f"{escape(STATUS_TEXT[row.status])}</td>",
        f"<td data-field=rows_read>{_count(f.rows_read)}</td>",
        f"<td data-field=rows_written>{_count(f.rows_written)}</td>",
        f"<td data-field=rows_rejected>{_count(f.rows_rejected)} ({_share(f.rejected_share)})</td>",
        f"<td data-field=rows_outside_month>{_count(f.rows_outside_month)}</td>",
        f"<td data-field=unknown_zone_share>{_share(f.unknown_zone_share)}</td>",
        f"<td class=text data-field=ingested_at>{escape(shown(f.ingested_at)) if f.ingested_at else '-'}</td>",
        f"<td class=text data-field=last_refusal>{escape(refusal)}</td>",
        f"<td class=text data-field=flags>{flags}</td>",
    ]
    kind = " class=flagged" if f.flags else ""
    return f"<tr{kind} data-source='{escape(f.source)}' data-month='{escape(f.month)}'>{''.join(cells)}</tr>"


def quality_table(rows: Sequence[QualityRow], source: str | None, flagged: bool, base: str) -> str:
    """The page's body: filters, the rules in a sentence, and the table."""
    options = "".join(f"<option value='{escape(s)}'{' selected' if s == source else ''}>{escape(s)}</option>"
                      for s in SOURCE_NAMES)
    form = (f"<form method=get action='{escape(base)}'><label>Source <select name=source><option value=''>"
            f"all sources</option>{options}</select></label> <label><input type=checkbox name=flagged value=true"
            f"{' checked' if flagged else ''}> flagged only</label> <button>Filter</button></form>")
    rules = (f"<p class=muted>Flagged: trips under {RULES['low_volume']:.0%} or over {RULES['high_volume']:.0%} "
             "of the median of the ingested months among the three before it, or more than "
             f"{RULES['max_rejected_share']:.0%} of rows rejected. Unknown zones: share of the rows with a pickup "
             f"time. The same figures for scripts: <a id=json href='{escape(base)}.json'>{escape(base)}.json</a>.</p>")
    head = ("<tr><th>month</th><th>source</th><th>status</th><th>rows read</th><th>written</th>"
            "<th>rejected</th><th>outside the month</th><th>Unknown zones</th><th>ingested at</th>"
            "<th>last refused drop</th><th>flags</th></tr>")
    count = sum(1 for row in rows if row.figures.flags)
    body = "".join(_row_html(row) for row in rows) or "<tr><td class=text colspan=11>No months yet.</td></tr>"
    return (f"<h1>Data quality per month</h1>{form}{rules}<p class=muted id=count>{len(rows)} month"
            f"{'s' if len(rows) != 1 else ''}, {count} flagged</p>"
            f"<table class=quality id=quality>{head}{body}</table>")
