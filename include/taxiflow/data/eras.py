"""Every column-name era TLC has published, as data: one entry per source and era.

TLC renamed its trip-record columns many times since 2009 (``Trip_Pickup_DateTime`` in 2009,
``pickup_datetime`` 2010-2014, ``tpep_pickup_datetime`` since 2015; pickup longitude/latitude until
June 2016, taxi-zone ids since; four header spellings for for-hire vehicles). Each ``Era`` below
is one of those headers: the header as TLC published it (``header``) and which of its columns
feeds each normalised trip column (``columns``). Names match case-insensitively, with surrounding
spaces and quotes ignored (TLC's 2014 yellow header is ``", "``-separated, the green 2013-2014
header ends in ``"Trip_type "``, the 2017-2018 FHV headers are quoted).

A file belongs to the era whose required columns it has (a pickup time, and a pickup zone id or a
pickup longitude and latitude) and whose header it shares most names with. Any other column of the
era may be missing (its trip column is then NULL), and columns TLC adds later (``cbd_congestion_fee``
in 2025) are ignored: neither breaks an ingest.

Text codes in old files (``CSH``/``CRD`` payment types, ``VTS``/``CMT`` vendors, FHVHV licence
numbers) become TLC's numeric codes through ``codes``. Pure data and helpers: no DuckDB here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Pseudo trip columns: a lon/lat era's coordinates, turned into pickup_zone_id/dropoff_zone_id by
# point-in-polygon (taxiflow.data.geo) and never stored themselves.
PICKUP_LON, PICKUP_LAT = "pickup_longitude", "pickup_latitude"
DROPOFF_LON, DROPOFF_LAT = "dropoff_longitude", "dropoff_latitude"
COORDINATE_COLUMNS = (PICKUP_LON, PICKUP_LAT, DROPOFF_LON, DROPOFF_LAT)

# TLC's payment_type codes (data dictionaries since 2015): 1 credit card, 2 cash, 3 no charge,
# 4 dispute, 5 unknown, 6 voided trip. 2009-2014 files spell them out, in several ways.
PAYMENT_CODES: dict[str, int] = {
    "CRD": 1, "CRE": 1, "CREDIT": 1,
    "CSH": 2, "CAS": 2, "CASH": 2,
    "NOC": 3, "NO CHARGE": 3, "NO": 3,
    "DIS": 4, "DISPUTE": 4,
    "UNK": 5, "UNKNOWN": 5, "NA": 5,
    "VOID": 6, "VOIDED": 6,
}
# Yellow vendors before 2015: Creative Mobile Technologies (1) and VeriFone (2) kept their numbers;
# Digital Dispatch Systems (DDS) has no number in TLC's later dictionaries, so it stays NULL.
TAXI_VENDOR_CODES: dict[str, int] = {"CMT": 1, "VTS": 2}
# FHVHV: the company's high-volume licence number (HV0002 Juno, HV0003 Uber, HV0004 Via, HV0005 Lyft).
HVFHS_VENDOR_CODES: dict[str, int] = {"HV0002": 2, "HV0003": 3, "HV0004": 4, "HV0005": 5}

TEXT_CODES: dict[str, dict[str, int]] = {"payment_type": PAYMENT_CODES, "vendor_id": TAXI_VENDOR_CODES}


@dataclass(frozen=True)
class Era:
    """One header TLC used for a source during ``months`` (``first..last``, ``last`` None = still)."""

    source: str
    name: str
    first: str
    last: str | None
    header: tuple[str, ...]
    columns: Mapping[str, str]  # trip column (or a coordinate pseudo-column) -> the header's name
    codes: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: TEXT_CODES)
    note: str = ""

    @property
    def months(self) -> str:
        return f"{self.first}..{self.last or 'today'}"

    @property
    def has_coordinates(self) -> bool:
        return PICKUP_LON in self.columns

    def required(self) -> tuple[str, ...]:
        """The trip (pseudo-)columns a file of this era must have: pickup time and pickup place."""
        place = (PICKUP_LON, PICKUP_LAT) if self.has_coordinates else ("pickup_zone_id",)
        return ("pickup_at", *place)


def _split(header: str) -> tuple[str, ...]:
    return tuple(header.split(","))


_YELLOW_ZONES = {
    "pickup_at": "tpep_pickup_datetime", "dropoff_at": "tpep_dropoff_datetime",
    "pickup_zone_id": "PULocationID", "dropoff_zone_id": "DOLocationID",
    "passenger_count": "passenger_count", "trip_distance": "trip_distance", "fare_amount": "fare_amount",
    "tip_amount": "tip_amount", "total_amount": "total_amount", "vendor_id": "VendorID",
    "payment_type": "payment_type",
}
_YELLOW_2015 = {
    **{k: v for k, v in _YELLOW_ZONES.items() if k not in ("pickup_zone_id", "dropoff_zone_id")},
    PICKUP_LON: "pickup_longitude", PICKUP_LAT: "pickup_latitude",
    DROPOFF_LON: "dropoff_longitude", DROPOFF_LAT: "dropoff_latitude",
}
_YELLOW_2010 = {
    **_YELLOW_2015, "pickup_at": "pickup_datetime", "dropoff_at": "dropoff_datetime", "vendor_id": "vendor_id",
}
_GREEN_ZONES = {
    **_YELLOW_ZONES, "pickup_at": "lpep_pickup_datetime", "dropoff_at": "lpep_dropoff_datetime",
}
_GREEN_2013 = {
    "pickup_at": "lpep_pickup_datetime", "dropoff_at": "Lpep_dropoff_datetime",
    PICKUP_LON: "Pickup_longitude", PICKUP_LAT: "Pickup_latitude",
    DROPOFF_LON: "Dropoff_longitude", DROPOFF_LAT: "Dropoff_latitude",
    "passenger_count": "Passenger_count", "trip_distance": "Trip_distance", "fare_amount": "Fare_amount",
    "tip_amount": "Tip_amount", "total_amount": "Total_amount", "vendor_id": "VendorID",
    "payment_type": "Payment_type",
}
# Third parties (e.g. the yellow samples in tests/data/tlc) rename TLC's columns to snake_case.
_SNAKE_CASE = {
    "pickup_at": "pickup_datetime", "dropoff_at": "dropoff_datetime",
    "pickup_zone_id": "pickup_location_id", "dropoff_zone_id": "dropoff_location_id",
    "passenger_count": "passenger_count", "trip_distance": "trip_distance", "fare_amount": "fare_amount",
    "tip_amount": "tip_amount", "total_amount": "total_amount", "vendor_id": "vendor_id",
    "payment_type": "payment_type",
}
_FHV_2017 = {
    "pickup_at": "Pickup_DateTime", "dropoff_at": "DropOff_datetime",
    "pickup_zone_id": "PUlocationID", "dropoff_zone_id": "DOlocationID",
}
_FHVHV = {
    "pickup_at": "pickup_datetime", "dropoff_at": "dropoff_datetime",
    "pickup_zone_id": "PULocationID", "dropoff_zone_id": "DOLocationID", "vendor_id": "hvfhs_license_num",
}
_HVFHS_CODES = {"vendor_id": HVFHS_VENDOR_CODES}

_YELLOW_2016_HEADER = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
    "tolls_amount,improvement_surcharge,total_amount"
)
_GREEN_2016_HEADER = (
    "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,"
    "DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
    "ehail_fee,improvement_surcharge,total_amount,payment_type,trip_type"
)
_GREEN_2013_HEADER = (
    "VendorID,lpep_pickup_datetime,Lpep_dropoff_datetime,Store_and_fwd_flag,RateCodeID,Pickup_longitude,"
    "Pickup_latitude,Dropoff_longitude,Dropoff_latitude,Passenger_count,Trip_distance,Fare_amount,Extra,"
    "MTA_tax,Tip_amount,Tolls_amount,Ehail_fee,Total_amount,Payment_type,Trip_type"
)
_FHVHV_CSV_HEADER = (
    "hvfhs_license_num,dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag"
)

ERAS: tuple[Era, ...] = (
    # --- yellow ------------------------------------------------------------------------------------
    Era("yellow", "yellow-2009", "2009-01", "2009-12", _split(
        "vendor_name,Trip_Pickup_DateTime,Trip_Dropoff_DateTime,Passenger_Count,Trip_Distance,Start_Lon,"
        "Start_Lat,Rate_Code,store_and_forward,End_Lon,End_Lat,Payment_Type,Fare_Amt,surcharge,mta_tax,"
        "Tip_Amt,Tolls_Amt,Total_Amt"), {
        "pickup_at": "Trip_Pickup_DateTime", "dropoff_at": "Trip_Dropoff_DateTime",
        PICKUP_LON: "Start_Lon", PICKUP_LAT: "Start_Lat", DROPOFF_LON: "End_Lon", DROPOFF_LAT: "End_Lat",
        "passenger_count": "Passenger_Count", "trip_distance": "Trip_Distance", "fare_amount": "Fare_Amt",
        "tip_amount": "Tip_Amt", "total_amount": "Total_Amt", "vendor_id": "vendor_name",
        "payment_type": "Payment_Type",
    }, note="vendor and payment as text (VTS, CASH, Credit); a blank line after the header"),
    Era("yellow", "yellow-2010", "2010-01", "2014-12", _split(
        "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,pickup_longitude,"
        "pickup_latitude,rate_code,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,"
        "fare_amount,surcharge,mta_tax,tip_amount,tolls_amount,total_amount"), _YELLOW_2010,
        note="payment as text (CSH, CRD); 2014 separates names with ', '"),
    Era("yellow", "yellow-2015-01", "2015-01", "2015-06", _split(
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,"
        "pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,"
        "fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount"), _YELLOW_2015,
        note="RateCodeID"),
    Era("yellow", "yellow-2015-07", "2015-07", "2016-06", _split(
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,"
        "pickup_latitude,RatecodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,"
        "fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount"), _YELLOW_2015,
        note="RatecodeID"),
    Era("yellow", "yellow-2016-07", "2016-07", "2018-12", _split(_YELLOW_2016_HEADER), _YELLOW_ZONES,
        note="taxi-zone ids replace coordinates"),
    Era("yellow", "yellow-2019", "2019-01", "2024-12", _split(
        _YELLOW_2016_HEADER + ",congestion_surcharge,airport_fee"), _YELLOW_ZONES,
        note="congestion_surcharge; airport_fee in TLC's Parquet files"),
    Era("yellow", "yellow-2025", "2025-01", None, _split(
        _YELLOW_2016_HEADER + ",congestion_surcharge,Airport_fee,cbd_congestion_fee"), _YELLOW_ZONES,
        note="cbd_congestion_fee"),
    Era("yellow", "yellow-snake-case", "2009-01", None, _split(
        "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,rate_code_id,"
        "store_and_fwd_flag,pickup_location_id,dropoff_location_id,payment_type,fare_amount,extra,mta_tax,"
        "tip_amount,tolls_amount,improvement_surcharge,total_amount,congestion_surcharge"), _SNAKE_CASE,
        note="not TLC's: third-party copies with snake_case names"),
    # --- green -------------------------------------------------------------------------------------
    Era("green", "green-2013-08", "2013-08", "2014-12", _split(_GREEN_2013_HEADER), _GREEN_2013,
        note="header ends in 'Trip_type ' and rows carry 2 extra empty fields"),
    Era("green", "green-2015", "2015-01", "2016-06", _split(
        _GREEN_2013_HEADER.replace("Ehail_fee,", "Ehail_fee,improvement_surcharge,")), _GREEN_2013,
        note="improvement_surcharge"),
    Era("green", "green-2016-07", "2016-07", "2018-12", _split(_GREEN_2016_HEADER), _GREEN_ZONES,
        note="taxi-zone ids replace coordinates"),
    Era("green", "green-2019", "2019-01", "2024-12", _split(_GREEN_2016_HEADER + ",congestion_surcharge"),
        _GREEN_ZONES, note="congestion_surcharge"),
    Era("green", "green-2025", "2025-01", None, _split(
        _GREEN_2016_HEADER + ",congestion_surcharge,cbd_congestion_fee"), _GREEN_ZONES,
        note="cbd_congestion_fee"),
    Era("green", "green-snake-case", "2013-08", None, _split(
        "vendor_id,pickup_datetime,dropoff_datetime,pickup_location_id,dropoff_location_id,passenger_count,"
        "trip_distance,fare_amount,tip_amount,total_amount,payment_type"), _SNAKE_CASE,
        note="not TLC's: third-party copies with snake_case names"),
    # --- fhv (for-hire vehicles dispatched by bases) ------------------------------------------------
    Era("fhv", "fhv-2015", "2015-01", "2016-12", _split("Dispatching_base_num,Pickup_date,locationID"),
        {"pickup_at": "Pickup_date", "pickup_zone_id": "locationID"},
        note="pickup time and zone only"),
    Era("fhv", "fhv-2017-01", "2017-01", "2017-06", _split(
        "Dispatching_base_num,Pickup_DateTime,DropOff_datetime,PUlocationID,DOlocationID"), _FHV_2017,
        note="drop-off time and pickup/drop-off zones added"),
    Era("fhv", "fhv-2017-07", "2017-07", "2017-12", _split(
        "Dispatching_base_num,Pickup_DateTime,DropOff_datetime,PUlocationID,DOlocationID,SR_Flag"), _FHV_2017,
        note="quoted header and values; SR_Flag"),
    Era("fhv", "fhv-2018", "2018-01", "2018-12", _split(
        "Pickup_DateTime,DropOff_datetime,PUlocationID,DOlocationID,SR_Flag,Dispatching_base_number,"
        "Dispatching_base_num"), _FHV_2017, note="quoted; both Dispatching_base_number and _num"),
    Era("fhv", "fhv-2019", "2019-01", None, _split(
        "dispatching_base_num,pickup_datetime,dropOff_datetime,PUlocationID,DOlocationID,SR_Flag,"
        "Affiliated_base_number"), {
        "pickup_at": "pickup_datetime", "dropoff_at": "dropoff_datetime",
        "pickup_zone_id": "PULocationID", "dropoff_zone_id": "DOLocationID",
    }, note="lower-case names; Affiliated_base_number in TLC's Parquet files"),
    # --- fhvhv (high-volume for-hire: Uber, Lyft, Via, Juno) --------------------------------------
    Era("fhvhv", "fhvhv-2019-csv", "2019-02", "2020-06", _split(_FHVHV_CSV_HEADER), _FHVHV, codes=_HVFHS_CODES,
        note="TLC's CSV: no fares"),
    Era("fhvhv", "fhvhv-parquet", "2019-02", None, _split(
        "hvfhs_license_num,dispatching_base_num,originating_base_num,request_datetime,on_scene_datetime,"
        "pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,trip_miles,trip_time,base_passenger_fare,"
        "tolls,bcf,sales_tax,congestion_surcharge,airport_fee,tips,driver_pay,shared_request_flag,"
        "shared_match_flag,access_a_ride_flag,wav_request_flag,wav_match_flag,cbd_congestion_fee"), {
        **_FHVHV, "trip_distance": "trip_miles", "fare_amount": "base_passenger_fare", "tip_amount": "tips",
    }, codes=_HVFHS_CODES, note="TLC's Parquet: miles, fares, tips; no total or passenger count"),
)


def normalise_name(name: str) -> str:
    """How header names are compared: case, surrounding spaces and quotes do not count."""
    return name.strip().strip('"').strip().lower()


def eras_of(source: str) -> tuple[Era, ...]:
    return tuple(era for era in ERAS if era.source == source)


class NoEraError(ValueError):
    """A file's header matches none of its source's eras."""


def match_era(source: str, file_name: str, names: Iterable[str]) -> tuple[Era, dict[str, str]]:
    """The era of a file with header ``names`` and, per trip column it has, the file's own name.

    Raises ``NoEraError`` naming the file, what it lacks (for each missing role, the names any
    era would accept) and, only if they look like column names, the columns it has.
    """
    actual: dict[str, str] = {}
    for name in names:
        actual.setdefault(normalise_name(name), name)
    best: tuple[tuple[int, int], Era] | None = None
    for era in eras_of(source):
        if not all(normalise_name(era.columns[c]) in actual for c in era.required()):
            continue
        score = (
            sum(normalise_name(h) in actual for h in era.header),
            sum(h in actual.values() for h in era.header),
        )
        if best is None or score > best[0]:
            best = (score, era)
    if best is None:
        raise NoEraError(_no_era_message(source, file_name, actual))
    era = best[1]
    mapping = {
        column: actual[normalise_name(name)]
        for column, name in era.columns.items()
        if normalise_name(name) in actual
    }
    return era, mapping


def _alternatives(source: str, column: str) -> list[str]:
    seen: dict[str, None] = {}
    for era in eras_of(source):
        if column in era.columns:
            seen.setdefault(era.columns[column], None)
    return list(seen)


def _no_era_message(source: str, file_name: str, actual: Mapping[str, str]) -> str:
    lacks = []
    if not any(normalise_name(n) in actual for n in _alternatives(source, "pickup_at")):
        lacks.append(f"'pickup_at' (a pickup time: any of {', '.join(_alternatives(source, 'pickup_at'))})")
    zone_names = _alternatives(source, "pickup_zone_id")
    pairs = sorted({
        f"{era.columns[PICKUP_LON]} + {era.columns[PICKUP_LAT]}" for era in eras_of(source) if era.has_coordinates
    })
    if not any(normalise_name(n) in actual for n in zone_names):
        place = f"any of {', '.join(zone_names)}"
        if pairs:
            place += f"; or a pickup longitude and latitude: {'; '.join(pairs)}"
        lacks.append(f"'pickup_zone_id' (a pickup zone: {place})")
    if not lacks:  # each role is there, but not together as one era has them
        lacks.append("a pickup time and pickup place of the same era")
    eras = ", ".join(f"{era.name} ({era.months})" for era in eras_of(source))
    return (
        f"{file_name}: its header matches no {source} era ({eras}): it lacks "
        f"{' and '.join(lacks)} (names compared case-insensitively); the file has "
        f"{describe_columns(list(actual.values()))}"
    )


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ \"")


def describe_columns(names: list[str]) -> str:
    """The header for an error message, only if it looks like column names, never raw text.

    A file that is not what its name says (a key, a log, a password file linked in) has a "header"
    that is really its first line: that must not reach a task log, which every viewer can read.
    """
    looks_like_names = all(
        0 < len(name) <= 64 and set(name) <= _NAME_CHARS and not name.strip(' "')[:1].isdigit()
        for name in names
    )
    if names and looks_like_names and len(names) <= 64:
        return f"columns: {', '.join(name.strip() for name in names)}"
    return f"{len(names)} column(s) whose names do not look like a TLC header (not shown)"
