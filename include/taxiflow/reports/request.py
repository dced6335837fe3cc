"""A borough report request, validated once at the edge into a ``ReportRequest``.

A request arrives as a mapping (Airflow conf, a JSON request file, a REST body, CLI flags); every
door reports a bad field with the same ``InvalidRequest`` message. Light at import time on purpose
(no pandas, DuckDB or matplotlib): DAG files import the params side of the same rules at parse time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from taxiflow.config import (
    BOROUGHS,
    DEFAULT_REPORT_SOURCES,
    FIRST_MONTH,
    INGEST_SOURCES_ENV,
    SOURCE_NAMES,
    SOURCES,
    ingest_sources,
    months_covering,
)
from taxiflow.reports.params import MAX_RANGE_DAYS, RESERVED_NAME_PREFIX

# The keys a request may carry, in the order forms and messages list them.
REQUEST_KEYS: tuple[str, ...] = ("borough", "start_date", "end_date", "sources", "name")

# ``\Z``-anchored in Python (``$`` would accept a trailing newline); JSON schema anchors ``$`` at the end.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

NAME_ALLOWED = (
    "1-80 letters, digits, '-' or '_', starting with a letter or digit (no dots or slashes), "
    f"not starting with '{RESERVED_NAME_PREFIX}'"
)
DATE_ALLOWED = (
    f"a date as YYYY-MM-DD, on or after {FIRST_MONTH.isoformat()} and not after the current month"
)
RANGE_ALLOWED = f"a range of at most {MAX_RANGE_DAYS} days (end_date - start_date)"
SOURCES_ALLOWED = (
    f"a list of distinct values from {', '.join(SOURCE_NAMES)}; empty or null means "
    f"{', '.join(DEFAULT_REPORT_SOURCES)} (the taxis)"
)


class InvalidRequest(ValueError):
    """A request field with a value that is not allowed; the one place report input errors are worded.

    ``field`` names the field (``"conf"`` for the request as a whole), ``value`` is what arrived and
    ``allowed`` the allowed values (a tuple) or a description of them (a string).
    """

    def __init__(
        self,
        field: str,
        value: Any,
        allowed: Sequence[str] | str,
        problem: str | None = None,
        allowed_label: str = "allowed values",
    ) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed if isinstance(allowed, str) else tuple(allowed)
        allowed_text = self.allowed if isinstance(self.allowed, str) else ", ".join(self.allowed)
        problem = problem if problem is not None else f"{value!r} is not allowed"
        self.message = f"{field}: {problem}; {allowed_label}: {allowed_text}"
        super().__init__(self.message)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def default_name(
    borough: str, start_date: date, end_date: date, sources: Sequence[str] = DEFAULT_REPORT_SOURCES
) -> str:
    """``staten-island_2024-01-01_2024-02-01_yellow-green``: the output stem when a request names none.

    Everything that changes the numbers is in the name (borough, dates, sources), so two different
    requests never share a default name.
    """
    return f"{_slug(borough)}_{start_date.isoformat()}_{end_date.isoformat()}_{'-'.join(sources)}"


def first_day_after_current_month(today: date | None = None) -> date:
    """The first day of next month (UTC): no report range may reach past it."""
    today = today or datetime.now(UTC).date()
    return date(today.year + 1, 1, 1) if today.month == 12 else date(today.year, today.month + 1, 1)


def check_limits(request: ReportRequest, today: date | None = None) -> ReportRequest:
    """Refuse a range reaching past the current month or longer than ``MAX_RANGE_DAYS``, and sources
    this deployment does not ingest (``TAXIFLOW_INGEST_SOURCES``).

    Not part of ``ReportRequest`` itself: "the current month" moves, and a request accepted last
    month must stay readable (by the gate, the renderer) after it. Every door calls this once.
    """
    limit = first_day_after_current_month(today)
    if request.start_date >= limit:
        raise InvalidRequest(
            "start_date", request.start_date.isoformat(), DATE_ALLOWED,
            problem=f"{request.start_date.isoformat()!r} is after the current month (no trips "
                    f"recorded yet; the latest allowed start is {(limit - timedelta(days=1)).isoformat()})",
        )
    if request.end_date > limit:
        raise InvalidRequest(
            "end_date", request.end_date.isoformat(), DATE_ALLOWED,
            problem=f"{request.end_date.isoformat()!r} is after the current month (the latest "
                    f"allowed end_date is {limit.isoformat()}, excluded)",
        )
    not_ingested = [source for source in request.sources if source not in ingest_sources()]
    if not_ingested:
        raise InvalidRequest(
            "sources", list(request.sources), list(ingest_sources()),
            problem=f"{', '.join(not_ingested)} {'is' if len(not_ingested) == 1 else 'are'} not ingested by "
                    f"this deployment ({INGEST_SOURCES_ENV} lists {', '.join(ingest_sources())}): the report "
                    "would wait for data that never comes",
            allowed_label="sources ingested here",
        )
    days = (request.end_date - request.start_date).days
    if days > MAX_RANGE_DAYS:
        raise InvalidRequest(
            "end_date", request.end_date.isoformat(), RANGE_ALLOWED,
            problem=f"the range {request.start_date.isoformat()} .. {request.end_date.isoformat()} "
                    f"is {days} days, more than the maximum of {MAX_RANGE_DAYS}",
        )
    return request


def _check_borough(value: Any) -> str:
    if value is None:
        raise InvalidRequest("borough", value, BOROUGHS, problem="is required")
    if not isinstance(value, str) or value not in BOROUGHS:
        raise InvalidRequest("borough", value, BOROUGHS)
    return value


def _parse_date(field: str, value: Any) -> date:
    if value is None:
        raise InvalidRequest(field, value, DATE_ALLOWED, problem="is required")
    if isinstance(value, datetime):
        # A timestamp would silently drop its time of day (and zone); make the caller say a day.
        raise InvalidRequest(field, value, DATE_ALLOWED, problem=f"{value.isoformat()!r} is not a date")
    if isinstance(value, date):
        parsed = value
    elif isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(
                field, value, DATE_ALLOWED, problem=f"{value!r} is not a calendar date"
            ) from None
    else:
        raise InvalidRequest(field, value, DATE_ALLOWED, problem=f"{value!r} is not a YYYY-MM-DD date")
    if parsed < FIRST_MONTH:
        raise InvalidRequest(
            field,
            value,
            DATE_ALLOWED,
            problem=f"{parsed.isoformat()!r} is before TLC's first trip records",
        )
    return parsed


def _parse_sources(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_REPORT_SOURCES
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidRequest("sources", value, SOURCES_ALLOWED, problem=f"{value!r} is not a list")
    if len(value) == 0:
        return DEFAULT_REPORT_SOURCES
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or item not in SOURCES:
            raise InvalidRequest(
                "sources", value, SOURCES_ALLOWED, problem=f"{item!r} is not a known source"
            )
        if item in seen:
            raise InvalidRequest("sources", value, SOURCES_ALLOWED, problem=f"{item!r} is listed twice")
        seen.add(item)
    # One canonical order, so equal requests compare equal and name the same sources the same way.
    return tuple(name for name in SOURCE_NAMES if name in seen)


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidRequest("name", value, NAME_ALLOWED)
    if value.startswith(RESERVED_NAME_PREFIX):
        raise InvalidRequest(
            "name", value, NAME_ALLOWED,
            problem=f"{value!r} starts with {RESERVED_NAME_PREFIX!r}, reserved for the weekly summaries",
        )
    return value


@dataclass(frozen=True)
class ReportRequest:
    """A validated report request: trips starting in ``borough`` on days in ``[start_date, end_date)``.

    Constructing one directly validates it too, so code holding a ``ReportRequest`` can trust it.
    """

    borough: str
    start_date: date
    end_date: date
    sources: tuple[str, ...] = DEFAULT_REPORT_SOURCES
    name: str | None = None

    def __post_init__(self) -> None:
        _check_borough(self.borough)
        start = _parse_date("start_date", self.start_date)
        end = _parse_date("end_date", self.end_date)
        if end <= start:
            raise InvalidRequest(
                "end_date",
                self.end_date,
                f"a date after start_date {start.isoformat()} (the end day is not included)",
                problem=(
                    f"{end.isoformat()!r} is not after start_date {start.isoformat()!r}"
                ),
            )
        sources = _parse_sources(self.sources)
        name = default_name(self.borough, start, end, sources) if self.name is None else _check_name(self.name)
        object.__setattr__(self, "start_date", start)
        object.__setattr__(self, "end_date", end)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "name", name)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None) -> ReportRequest:
        """Validate a mapping as it arrives from conf/JSON; raises ``InvalidRequest`` naming the field."""
        if conf is None:
            conf = {}
        if not isinstance(conf, Mapping):
            raise InvalidRequest(
                "conf", conf, REQUEST_KEYS, problem=f"{conf!r} is not an object", allowed_label="allowed keys"
            )
        unknown = [key for key in conf if key not in REQUEST_KEYS]
        if unknown:
            listed = ", ".join(repr(key) for key in unknown)
            raise InvalidRequest(
                "conf",
                unknown[0] if len(unknown) == 1 else unknown,
                REQUEST_KEYS,
                problem=f"unknown key{'s' if len(unknown) > 1 else ''} {listed}",
                allowed_label="allowed keys",
            )
        name = conf.get("name")
        if name == "":
            name = None  # an empty form field means "use the default name"
        return cls(
            borough=_check_borough(conf.get("borough")),
            start_date=_parse_date("start_date", conf.get("start_date")),
            end_date=_parse_date("end_date", conf.get("end_date")),
            sources=_parse_sources(conf.get("sources")),
            name=name,
        )

    def to_conf(self) -> dict[str, Any]:
        """The JSON-safe mapping ``from_conf`` accepts; round-trips to an equal request."""
        return {
            "borough": self.borough,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "sources": list(self.sources),
            "name": self.name,
        }

    @property
    def months(self) -> list[str]:
        """The months ``YYYY-MM`` the date range touches (what the ingest gate waits for)."""
        return months_covering(self.start_date, self.end_date)

    @property
    def last_day(self) -> date:
        """The last day included in the range (``end_date`` is excluded)."""
        return date.fromordinal(self.end_date.toordinal() - 1)
