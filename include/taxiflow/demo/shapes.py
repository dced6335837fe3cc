"""Where and when the demo's synthetic trips happen: the shapes ``taxiflow.demo`` draws from.

Hour-of-day and day-of-week profiles after TLC's 2023 records (with holidays and the DST days),
average speed by hour, and per-borough pickup and dropoff shares over the real zone table.
"""

from __future__ import annotations

import calendar
import csv
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from taxiflow.config import UNKNOWN_BOROUGH

# Zones 264 (NV) and 265 (NA) are TLC's "Unknown"; pickups there cannot be placed in a borough.
UNKNOWN_ZONES = (264, 265)
JFK, LAGUARDIA, NEWARK = 132, 138, 1
AIRPORTS = (JFK, LAGUARDIA)


# --- Time shape -----------------------------------------------------------------------------------

# Relative pickups per hour, 0-23, shaped after TLC's 2023 records.
_HOURS: dict[str, dict[str, list[float]]] = {
    "yellow": {
        "weekday": [2.6, 1.7, 1.1, 0.75, 0.55, 0.6, 1.5, 2.9, 3.9, 4.2, 4.4, 4.7,
                    5.0, 5.1, 5.5, 5.7, 5.8, 6.5, 6.9, 6.1, 5.2, 5.0, 4.7, 3.7],
        "weekend": [4.3, 3.5, 2.6, 1.8, 1.1, 0.7, 0.7, 1.0, 1.6, 2.4, 3.3, 4.1,
                    4.6, 4.8, 4.9, 4.9, 4.9, 5.0, 5.0, 4.7, 4.3, 4.3, 4.3, 4.1],
    },
    "green": {
        "weekday": [252, 153, 87, 88, 85, 121, 327, 854, 1113, 1185, 1078, 1077,
                    1056, 1138, 1224, 1449, 1512, 1678, 1538, 1220, 786, 635, 553, 367],
        "weekend": [494, 426, 335, 288, 237, 112, 131, 188, 254, 405, 561, 654,
                    697, 858, 937, 995, 906, 913, 890, 849, 694, 555, 397, 324],
    },
}
# Relative trips per day, Monday..Sunday (date.weekday() order).
_WEEKDAYS = {
    "yellow": [0.88, 0.98, 1.02, 1.06, 1.03, 0.98, 0.82],
    "green": [0.90, 1.00, 1.05, 1.10, 1.10, 0.85, 0.70],
}
# Average speed (mph) by hour of day: free-flowing at night, crawling in the afternoon.
SPEED_MPH = np.array([17, 18, 19, 20, 20, 19, 16, 12, 10, 9.5, 9.5, 9.5,
                       9.5, 9.5, 9, 8.5, 8.5, 9, 10, 11, 12, 13, 14, 15], dtype=float)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based; -1 = last) given weekday (Monday = 0) of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def holiday_factors(year: int) -> dict[date, float]:
    """Days on which fewer people take a cab than the weekday alone predicts."""
    thanksgiving = _nth_weekday(year, 11, 3, 4)
    factors = {
        date(year, 1, 1): 0.55,
        _nth_weekday(year, 1, 0, 3): 0.85,  # Martin Luther King Jr. Day
        _nth_weekday(year, 5, 0, -1): 0.70,  # Memorial Day
        date(year, 7, 4): 0.60,
        _nth_weekday(year, 9, 0, 1): 0.70,  # Labor Day
        thanksgiving: 0.50,
        thanksgiving + timedelta(days=1): 0.75,
        date(year, 12, 24): 0.70,
        date(year, 12, 25): 0.45,
    }
    for day in range(26, 32):  # the quiet week between Christmas and New Year
        factors[date(year, 12, day)] = 0.80
    return factors


def _hour_profile(source: str, day: date, holiday: bool) -> np.ndarray:
    profiles = _HOURS[source]
    weekday = day.weekday()
    if holiday or weekday >= 5:
        profile = np.array(profiles["weekend"], dtype=np.float64)
        if weekday == 6 or holiday:
            profile[19:] *= 0.75  # Sunday evening: the night out is over
    else:
        profile = np.array(profiles["weekday"], dtype=np.float64)
        if weekday == 4:
            profile[20:] *= 1.25  # Friday night
        if weekday == 0:
            profile[:4] *= 0.7  # Sunday night, the quietest small hours of the week
    # Naive local time: 02:00-02:59 does not exist on the spring-forward Sunday, 01:00-01:59 happens
    # twice on the fall-back one.
    if day == _nth_weekday(day.year, 3, 6, 2):
        profile[2] = 0.0
    if day == _nth_weekday(day.year, 11, 6, 1):
        profile[1] *= 2.0
    return profile / profile.sum()


def cell_weights(source: str, first: date, days: int) -> np.ndarray:
    """Probability of each (day, hour) cell of the month, flattened day-major."""
    holidays = holiday_factors(first.year)
    weights = np.empty((days, 24))
    for offset in range(days):
        day = first + timedelta(days=offset)
        factor = holidays.get(day)
        weights[offset] = (
            _WEEKDAYS[source][day.weekday()] * (factor or 1.0)
            * _hour_profile(source, day, holiday=factor is not None and factor < 0.6)
        )
    flat = weights.ravel()
    return flat / flat.sum()


# --- Place shape ----------------------------------------------------------------------------------

# Share of pickups (and drop-offs) per borough; the named zones take a fixed share of their borough.
PICKUP_SHARES = {
    "yellow": {"Manhattan": 0.895, "Queens": 0.076, "Brooklyn": 0.018, "Bronx": 0.004,
               "Staten Island": 0.0003, "EWR": 0.0002, UNKNOWN_BOROUGH: 0.002},
    "green": {"Manhattan": 0.50, "Queens": 0.28, "Brooklyn": 0.17, "Bronx": 0.045,
              "Staten Island": 0.001, "EWR": 0.0001, UNKNOWN_BOROUGH: 0.003},
}
DROPOFF_SHARES = {
    "yellow": {"Manhattan": 0.85, "Queens": 0.06, "Brooklyn": 0.06, "Bronx": 0.012,
               "Staten Island": 0.001, "EWR": 0.002, UNKNOWN_BOROUGH: 0.003},
    "green": {"Manhattan": 0.40, "Queens": 0.30, "Brooklyn": 0.20, "Bronx": 0.08,
              "Staten Island": 0.002, "EWR": 0.0005, UNKNOWN_BOROUGH: 0.004},
}
_FIXED_ZONE_SHARES = {"yellow": {JFK: 0.045, LAGUARDIA: 0.026}, "green": {}}
# Busy zones: Midtown, the Upper East and West Sides, Chelsea, the Village, Penn Station, ...
_YELLOW_HOT = {237, 236, 161, 162, 230, 186, 142, 170, 163, 239, 234, 48, 68, 100, 164, 79, 141,
               107, 263, 238, 249, 113, 246, 90, 140, 229, 233, 137, 148, 144, 114, 158, 125, 211,
               231, 13, 261, 87, 88, 209, 45, 232, 4, 224, 143, 50, 151, 166}
_GREEN_HOT = {74: 8.0, 75: 6.0, 41: 3.0, 166: 3.0, 43: 3.0, 95: 3.0, 82: 3.0, 7: 2.0, 97: 2.0,
              65: 2.0, 130: 2.0, 129: 2.0, 42: 2.0, 244: 2.0, 260: 1.5}
# Green cabs may only pick up by street hail north of W 110th / E 96th Street in Manhattan.
_UPPER_MANHATTAN = ("Harlem", "Washington Heights", "Inwood", "Hamilton Heights", "Manhattanville",
                    "Morningside Heights", "Highbridge", "Bloomingdale", "Manhattan Valley",
                    "Central Park", "Randalls Island", "Marble Hill")


def read_zones(zone_table: Path) -> list[tuple[int, str, str]]:
    """``(LocationID, Borough, Zone)`` rows of TLC's zone lookup table."""
    if not zone_table.is_file():
        raise FileNotFoundError(
            f"zone table {zone_table} is missing: copy TLC's taxi_zone_lookup.csv there "
            "(the checkout ships one in data/reference/)"
        )
    with zone_table.open(newline="", encoding="utf-8-sig") as file:
        return [(int(row["LocationID"]), row["Borough"], row["Zone"]) for row in csv.DictReader(file)]


def zone_probabilities(
    source: str, zones: list[tuple[int, str, str]], shares: Mapping[str, float], pickup: bool
) -> tuple[np.ndarray, np.ndarray]:
    # Zone popularity is a fixed property of the city, not of the seed: every month agrees on it.
    base = np.random.default_rng(7).lognormal(0.0, 0.8, size=len(zones))
    ids = np.array([zone_id for zone_id, _, _ in zones], dtype=np.int32)
    weights = np.zeros(len(zones))
    fixed = _FIXED_ZONE_SHARES[source] if pickup else {}
    for borough, share in shares.items():
        members = [i for i, (zone_id, b, name) in enumerate(zones) if b == borough and zone_id not in fixed]
        if borough == UNKNOWN_BOROUGH:
            members = [i for i in members if ids[i] in UNKNOWN_ZONES]
        if source == "green" and pickup and borough == "Manhattan":
            members = [i for i in members if any(part in zones[i][2] for part in _UPPER_MANHATTAN)]
        if not members:
            continue
        zone_weight = base[members].copy()
        for j, i in enumerate(members):
            zone_id = int(ids[i])
            if source == "yellow":
                zone_weight[j] *= 6.0 if zone_id in _YELLOW_HOT else (0.4 if borough == "Manhattan" else 1.0)
            else:
                zone_weight[j] *= _GREEN_HOT.get(zone_id, 1.0)
        borough_share = share - sum(s for z, s in fixed.items() if zones[_index(ids, z)][1] == borough)
        weights[members] = borough_share * zone_weight / zone_weight.sum()
    for zone_id, share in fixed.items():
        weights[_index(ids, zone_id)] = share
    return ids, weights / weights.sum()


def _index(ids: np.ndarray, zone_id: int) -> int:
    return int(np.flatnonzero(ids == zone_id)[0])
