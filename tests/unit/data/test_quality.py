"""Data quality per month (taxiflow.data.quality): the flag rules, and the figures of real ingests."""

from __future__ import annotations

import pytest

from taxiflow.config import Partition
from taxiflow.data import ingest, quality
from taxiflow.data.quality import MonthQuality, previous_months, with_flags
from taxiflow.data.raw import copy_to_raw
from taxiflow.demo.trips import generate_month


def month(name: str, written: int | None, read: int | None = None, rejected: int = 0, source: str = "green"):
    if written is None:
        return MonthQuality(source, name)
    return MonthQuality(source, name, rows_read=read if read is not None else written + rejected,
                        rows_written=written, rows_rejected=rejected, rows_outside_month=0, rows_unknown_zone=0)


def flags_of(months: list[MonthQuality]) -> dict[str, tuple[str, ...]]:
    return {m.month: m.flags for m in with_flags(months)}


def test_previous_months_cross_the_year():
    assert previous_months("2024-02") == ["2024-01", "2023-12", "2023-11"]


@pytest.mark.parametrize(("rows", "flagged"), [
    (1000, False), (500, False), (499, True), (2000, False), (2001, True), (0, True),
])
def test_volume_against_the_median_of_the_three_months_before(rows, flagged):
    # The median of 900, 1000, 5000 is 1000: one odd month before does not move it.
    months = [month("2023-10", 900), month("2023-11", 5000), month("2023-12", 1000), month("2024-01", rows)]
    flags = flags_of(months)["2024-01"]
    assert bool(flags) is flagged
    if flagged:
        word = "under 50%" if rows < 1000 else "over 200%"
        assert flags == (f"{rows:,} trips, {rows / 1000:.0%} of the median 1,000 of 2023-10, 2023-11, 2023-12: {word}",)


def test_only_ingested_months_of_the_same_source_among_the_three_before_are_compared():
    months = [month("2023-09", 10), month("2023-11", 1000), month("2024-01", 400),
              month("2023-12", None), month("2023-12", 50_000, source="yellow")]
    checked = {m.month: m for m in with_flags(months) if m.source == "green"}
    assert checked["2024-01"].compared_with == ("2023-11",) and checked["2024-01"].median_rows == 1000
    assert checked["2024-01"].flags == ("400 trips, 40% of the median 1,000 of 2023-11: under 50%",)
    assert checked["2023-09"].compared_with == () and checked["2023-09"].flags == ()  # nothing before it
    assert checked["2023-11"].flags == ("1,000 trips, 10000% of the median 10 of 2023-09: over 200%",)


@pytest.mark.parametrize(("rejected", "flagged"), [(10, False), (11, True)])
def test_more_than_one_percent_rejected_is_flagged(rejected, flagged):
    (item,) = with_flags([month("2024-01", 1000 - rejected, read=1000, rejected=rejected)])
    assert bool(item.flags) is flagged and item.rejected_share == rejected / 1000
    if flagged:
        assert item.flags == ("11 of 1,000 rows rejected (1.10%), over 1%",)


def test_the_figures_of_real_ingests_and_a_refused_drop(data_root):
    for name, trips in (("2022-06", 400), ("2022-07", 420), ("2022-08", 380), ("2022-09", 150)):
        generate_month("green", name, trips=trips, paths=data_root)
        copy_to_raw(Partition("green", name), data_root)
        ingest.process_partition(Partition("green", name), data_root)
    refused = Partition("green", "2022-10")
    landing = data_root.landing_dir(refused)
    landing.mkdir(parents=True)
    (landing / "green_tripdata_2022-10.csv").write_text("VendorID\n1\n")  # no pickup time: refused
    (landing / "_SUCCESS").touch()
    copy_to_raw(refused, data_root)
    with pytest.raises(ingest.DropRefused):
        ingest.process_partition(refused, data_root, run_id="scheduled__2022-10")

    figures = {m.month: m for m in quality.month_figures(data_root)}
    assert list(figures) == ["2022-06", "2022-07", "2022-08", "2022-09", "2022-10"]
    september = figures["2022-09"]
    summary = ingest.read_summary(Partition("green", "2022-09"), data_root)
    assert (september.rows_read, september.rows_written, september.rows_rejected, september.rows_outside_month,
            september.rows_unknown_zone) == (summary["rows_read"], summary["rows_written"], summary["rows_rejected"],
                                             summary["rows_outside_month"], summary["rows_unknown_zone"])
    assert september.rows_written < 0.5 * 400  # a short month: flagged against June..August
    assert september.compared_with == ("2022-06", "2022-07", "2022-08")
    assert september.flags and "under 50%" in september.flags[0]
    assert not figures["2022-07"].flags and figures["2022-07"].unknown_zone_share is not None
    assert figures["2022-07"].to_json()["ingested_at"] == ingest.read_summary(
        Partition("green", "2022-07"), data_root)["written_at"]

    october = figures["2022-10"].to_json()
    assert october["ingested"] is False and october["rows_written"] is None and october["flags"] == []
    assert october["last_refusal"]["run_id"] == "scheduled__2022-10" and october["last_refusal"]["after_ingest"]
    assert "green_tripdata_2022-10.csv" in october["last_refusal"]["reason"]
