"""The Data quality page and JSON (taxiflow.doors.report_views.quality): status, filters, HTML, plugin entry.

The live page is exercised by tests/e2e/test_data_quality.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from taxiflow.config import Partition
from taxiflow.data import quality
from taxiflow.data.quality import MonthQuality, with_flags
from taxiflow.data.refusals import KeptPartition, Refusal
from taxiflow.doors.report_views import EXTERNAL_VIEWS
from taxiflow.doors.report_views.pages import quality_page
from taxiflow.doors.report_views.quality import QualityRow, _status, quality_json, select_rows
from taxiflow.reports.ingest_status import IngestStatus

INGESTED = datetime(2024, 2, 1, 3, 4, 5, tzinfo=UTC)
REFUSED = datetime(2024, 2, 3, 8, 0, 0, tzinfo=UTC)
REFUSAL = Refusal("green", "2024-01", REFUSED, "cannot read <x>.parquet as .parquet/.csv/.csv.gz (IOException)",
                  ("<x>.parquet",), "scheduled__2024-01-01")


def figures(month: str = "2024-01", written: int | None = 1000, refusal: Refusal | None = None) -> MonthQuality:
    if written is None:
        return MonthQuality("green", month, refusal=refusal)
    return MonthQuality("green", month, rows_read=written + 20, rows_written=written, rows_rejected=15,
                        rows_outside_month=5, rows_unknown_zone=40, ingested_at=INGESTED, refusal=refusal)


def ingest(state: str, task_state: str | None = None, kept: KeptPartition | None = None,
           run_state: str | None = "failed") -> IngestStatus:
    return IngestStatus("2024-01", "green", state, task_state, True, run_state, kept)


def test_status_follows_the_ingest_run_and_says_why():
    kept = KeptPartition(Partition("green", "2024-01"), INGESTED, REFUSAL)
    assert _status(figures(refusal=REFUSAL), ingest("kept", "upstream_failed", kept)) == ("kept", kept.note)
    assert _status(figures(), ingest("done", "success", run_state="failed")) == (  # e.g. yellow failed
        "ingested", "ingested with its metrics by the ingest_taxi_trips run for 2024-01")
    assert _status(figures(written=None, refusal=REFUSAL), ingest("failed", "upstream_failed"))[0] == "refused"
    assert _status(figures(), ingest("failed", "upstream_failed"))[0] == "failed"  # e.g. metrics failed
    assert _status(figures(written=None), ingest("waiting", None, run_state="running"))[0] == "running"
    assert _status(figures(), None) == ("ingested", "no ingest run on record")
    assert _status(figures(written=None), ingest("done", "skipped", run_state="success"))[0] == "skipped"


def test_the_page_shows_the_figures_flags_and_refusal_escaped():
    months = with_flags([figures("2023-12", 5000), figures("2024-01", 1000, refusal=REFUSAL)])
    rows = [QualityRow(months[1], "kept", "green 2024-01 as ingested at ..."), QualityRow(months[0], "ingested", "")]
    page = quality_page(rows, None, False, "/taxiflow/quality")
    january = page[page.index("data-month='2024-01'"):]
    january = january[:january.index("</tr>")]
    assert january.startswith("data-month='2024-01'>") and "<tr class=flagged" in page
    for cell in ("<td data-field=rows_read>1,020</td>", "<td data-field=rows_written>1,000</td>",
                 "<td data-field=rows_rejected>15 (1.47%)</td>", "<td data-field=rows_outside_month>5</td>",
                 "<td data-field=unknown_zone_share>3.98%</td>",
                 "<td class=text data-field=ingested_at>2024-02-01 03:04:05 UTC</td>",
                 "re-drop refused, earlier ingest in use"):
        assert cell in january, cell
    assert "2024-02-03 08:00:00 UTC: cannot read &lt;x&gt;.parquet" in january and "<x>" not in page
    assert "20% of the median 5,000 of 2023-12: under 50%" in january
    assert "rows rejected (1.47%), over 1%" in january
    assert "2 months, 1 flagged" in page and "href='/taxiflow/quality.json'" in page


def test_filters_and_json():
    months = with_flags([figures("2023-12", 5000), figures("2024-01", 1000),
                         MonthQuality("yellow", "2024-01", rows_read=10, rows_written=10, rows_rejected=0,
                                      rows_outside_month=0, rows_unknown_zone=0, ingested_at=INGESTED)])
    rows = [QualityRow(m, "ingested", "") for m in months]
    assert [r.figures.month for r in select_rows(rows, None, flagged=True)] == ["2024-01"]
    assert [r.figures.source for r in select_rows(rows, "yellow", flagged=False)] == ["yellow"]
    document = quality_json(rows)
    assert document["rules"] == quality.RULES and document["rules"]["compared_months"] == 3
    january = document["months"][1]
    assert january == {**january, "source": "green", "month": "2024-01", "status": "ingested", "flagged": True,
                       "rows_written": 1000, "rejected_share": round(15 / 1020, 6),
                       "ingested_at": "2024-02-01T03:04:05+00:00", "compared_with": ["2023-12"],
                       "median_rows_compared": 5000.0, "last_refusal": None}


def test_the_page_sits_in_the_navigation_beside_reports():
    names = [view["name"] for view in EXTERNAL_VIEWS if view["destination"] == "nav"]
    assert names == ["Reports", "Data quality"]
    (view,) = [view for view in EXTERNAL_VIEWS if view["name"] == "Data quality"]
    assert view["href"] == "taxiflow/quality" and view["url_route"] == "data-quality"
