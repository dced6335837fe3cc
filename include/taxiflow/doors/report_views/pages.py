"""The report views' HTML: plain server-rendered pages that need no script to show a report.

Pure functions from a ``ReportRun`` (and the report's numbers) to HTML; every value is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import quote, urlencode

from taxiflow.config import BOROUGHS, DAY_NAMES
from taxiflow.doors.report_views.quality import QUALITY_STYLE, QualityRow, quality_table
from taxiflow.doors.report_views.runs import ReportRun
from taxiflow.reports.outputs import ReportNumbers
from taxiflow.reports.params import families_counted

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#1a1a1a;background:#fff}
h1{font-size:1.25rem;margin:0 0 8px} h2{font-size:1.05rem;margin:20px 0 8px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:.85rem;color:#fff;background:#777}
.success{background:#1f7a3a}.failed{background:#b3261e}.running,.queued{background:#2f5fb3}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;margin:0} dt{color:#555} dd{margin:0}
img.chart{max-width:100%;height:auto;border:1px solid #ddd} table{border-collapse:collapse;font-size:.85rem}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right} th{background:#f4f4f4}
.why{border-left:4px solid #b3261e;padding:8px 12px;background:#fdf3f2}
.wait{border-left:4px solid #2f5fb3;padding:8px 12px;background:#f2f5fd}
.note{border-left:4px solid #b37a00;padding:8px 12px;background:#fdf8ec;margin:12px 0}
a.button{display:inline-block;padding:6px 12px;border:1px solid #2f5fb3;border-radius:4px;text-decoration:none}
.cards{display:flex;flex-wrap:wrap;gap:12px;padding:0;list-style:none}
.cards li{border:1px solid #ddd;border-radius:6px;padding:8px;width:300px}
.cards img{width:100%;height:auto;background:#f4f4f4} .muted{color:#666}
"""


def _page(title: str, body: str, style: str = "") -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{STYLE}{style}</style></head>"
            f"<body>{body}</body></html>")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def run_ui_url(ui_base: str, run: ReportRun) -> str:
    """The run's page in Airflow's own UI."""
    return f"{ui_base}/dags/{quote(run.dag_id, safe='')}/runs/{quote(run.run_id, safe='')}"


def _request_list(run: ReportRun) -> str:
    request = run.request
    if request is not None:
        rows = [("Borough", request.borough),
                ("Dates", f"{request.start_date} to {request.last_day} (end date {request.end_date} excluded)"),
                ("Sources", f"{', '.join(request.sources)}: counts {families_counted(request.sources)}"),
                ("Output name", request.name or "")]
    else:
        rows = [(key, str(value)) for key, value in run.conf.items()]
    rows += [("Asked by", run.trigger_source), ("Run", run.run_id), ("Asked at", _when(run.run_after)),
             ("Finished", _when(run.end_date))]
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows) + "</dl>"


def _numbers_table(numbers: ReportNumbers) -> str:
    cells = {(hour, day): count for hour, day, count in numbers.rows}
    head = "<tr><th>hour</th>" + "".join(f"<th>{escape(day[:3])}</th>" for day in DAY_NAMES) + "<th>all</th></tr>"
    body = []
    for hour in range(24):
        row = [cells.get((hour, day), 0) for day in DAY_NAMES]
        body.append(f"<tr><th>{hour:02d}</th>" + "".join(
            f"<td data-hour={hour} data-day={day}>{count}</td>" for day, count in zip(DAY_NAMES, row, strict=True)
        ) + f"<td>{sum(row)}</td></tr>")
    return f"<table id=numbers>{head}{''.join(body)}</table>"


def _why_not(run: ReportRun) -> str:
    """Why a run has no chart (yet): invalid request, failed ingest, waiting months, failed task."""
    if run.invalid is not None:
        return (f"<div class=why id=why><strong>The request is invalid:</strong> {escape(run.invalid.message)}"
                "<br>Nothing was rendered. Trigger the report again with a corrected request.</div>")
    if run.failed_ingest:
        items = "".join(f"<li>{escape(i.source)} {escape(i.month)}: {escape(i.detail)}</li>" for i in run.failed_ingest)
        return (f"<div class=why id=why><strong>The ingest this report needs failed:</strong><ul>{items}</ul>"
                "Fix the drop, clear that ingest run, then trigger this report again.</div>")
    failed = [task for task, state in run.tasks.items() if state in ("failed", "upstream_failed")]
    if run.state == "failed" or failed:
        names = ", ".join(failed) or "a task"
        return (f"<div class=why id=why><strong>The run failed</strong> in {escape(names)}. "
                "Open the run's task log (Airflow tab <em>Task Instances</em>) for the message.</div>")
    if run.waiting_for:
        items = "".join(f"<li>{escape(i.source)} {escape(i.month)}: {escape(i.detail)}</li>" for i in run.waiting_for)
        return (f"<div class=wait id=why><strong>Waiting for the ingest of {len(run.waiting_for)} "
                f"month/source pair{'s' if len(run.waiting_for) != 1 else ''}:</strong><ul>{items}</ul>"
                "The chart appears here once they are in.</div>")
    return f"<div class=wait id=why>The run is {escape(run.state)}; the chart appears here when it is drawn.</div>"


def _notes(notes: list[str]) -> str:
    """What the numbers rest on that a reader should know: kept partitions after a refused re-drop."""
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return (f"<div class=note id=notes><strong>Data notes:</strong> this report uses partitions whose "
            f"latest re-drop was refused; their earlier, good ingest is counted.<ul>{items}</ul></div>")


def run_page(
    run: ReportRun, numbers: ReportNumbers | None, urls: dict[str, str], notes: list[str] | None = None
) -> str:
    """The report tab of one run: chart, request, total, CSV download; or why there is no chart.

    ``notes``: the published report's ``ingest_notes``; before it is rendered, the kept partitions
    its gate would use.
    """
    state = escape(run.state)
    if notes is None:
        notes = [item.detail for item in run.ingest if item.state == "kept"]
    parts = [f"<h1>Borough report <span class='badge {state}' id=state>{state}</span></h1>",
             _request_list(run), _notes(notes)]
    if numbers is not None:
        parts += [
            f"<h2>Total: <span id=total>{numbers.total:,}</span> trips</h2>",
            f"<p><a class=button id=csv href='{escape(urls['csv'])}' download>Download the numbers (CSV)</a></p>",
            f"<img class=chart id=chart alt='Trips by hour of day and day of week' src='{escape(urls['png'])}'>",
            "<h2>Trips by hour of day and day of week</h2>", _numbers_table(numbers),
        ]
    else:
        parts.append(_why_not(run))
    return _page(f"Report {run.run_id}", "".join(parts))


def not_a_report_page(dag_id: str) -> str:
    return _page("No report", f"<p>Runs of <code>{escape(dag_id)}</code> have no report: only "
                              "<code>borough_report</code> runs draw charts.</p>")


def list_page(runs: list[ReportRun], total: int, borough: str | None, page: int, per_page: int,
              urls: dict[str, dict[str, str]], base: str) -> str:
    """The reports page: newest first, thumbnail, borough, dates, sources, state, link to the run."""
    options = "".join(
        f"<option value='{escape(b)}'{' selected' if b == borough else ''}>{escape(b)}</option>" for b in BOROUGHS
    )
    form = (f"<form method=get action='{escape(base)}'><label>Borough <select name=borough>"
            f"<option value=''>all boroughs</option>{options}</select></label> <button>Filter</button></form>")
    cards = []
    for run in runs:
        run_urls = urls[run.run_id]
        request = run.request
        if request is not None:
            title = f"{request.borough}, {request.start_date} to {request.last_day}"
            sources = ", ".join(request.sources)
        else:
            title, sources = "invalid request", ""
        image = (f"<img loading=lazy alt='chart' src='{escape(run_urls['thumb'])}'>" if run.rendered
                 else "<div class=muted>no chart</div>")
        cards.append(
            f"<li class=report data-run-id='{escape(run.run_id)}'>{image}<div><strong>{escape(title)}</strong></div>"
            f"<div class=muted>{escape(sources)}</div><div><span class='badge {escape(run.state)}'>"
            f"{escape(run.state)}</span> {escape(_when(run.run_after))}</div>"
            f"<div><a href='{escape(run_urls['report'])}'>report</a> · "
            f"<a target=_top href='{escape(run_urls['ui'])}'>run in Airflow</a></div></li>"
        )
    pages = max(1, -(-total // per_page))
    nav = []
    for label, target in (("newer", page - 1), ("older", page + 1)):
        if 1 <= target <= pages:
            query = urlencode({k: v for k, v in (("borough", borough or ""), ("page", target)) if v})
            rel = "prev" if label == "newer" else "next"
            nav.append(f"<a rel={rel} href='{escape(base)}?{escape(query)}'>{label}</a>")
    body = (f"<h1>Borough reports</h1>{form}<p class=muted id=count>{total} report{'s' if total != 1 else ''}"
            f"{' for ' + escape(borough) if borough else ''}, page {page} of {pages}</p>"
            f"<ul class=cards id=reports>{''.join(cards) or '<li>No reports yet.</li>'}</ul><p>{' · '.join(nav)}</p>")
    return _page("Borough reports", body)


def quality_page(rows: list[QualityRow], source: str | None, flagged: bool, base: str) -> str:
    """The data quality page: every source × month, its figures, ingest state and flags."""
    return _page("Data quality", quality_table(rows, source, flagged, base), QUALITY_STYLE)
