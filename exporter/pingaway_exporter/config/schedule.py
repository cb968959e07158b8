"""Opening hours: is a group open at a given instant?

PromQL's time functions are UTC-only and know nothing of holidays, so the
exporter answers this question itself and publishes it as
``pingaway_group_open``. Everything is wall-clock time in the group's zone:
"08:00-17:00" means 08:00 to 17:00 on the office clock, on both sides of a
DST change. A range whose end is not after its start ("22:00-06:00") runs
past midnight and belongs to the day it starts, so a closed day (holiday,
closed date) also cancels the night that follows it, and a night that began
on an open day runs to its end even if the next day is closed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAY_MINUTES = 24 * 60
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Span:
    """Minutes after local midnight; ``end <= start`` means it runs past midnight."""

    start: int
    end: int

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


class HolidayCalendar:
    """Closed days from the ``holidays`` package, computed once per year.

    ``holidays`` fills its dict lazily on lookup, which is not safe under
    concurrent scrapes; a frozen set per year, built under a lock, is.
    """

    def __init__(self, country: str, subdivision: str | None, categories: tuple[str, ...]) -> None:
        self.country = country
        self.subdivision = subdivision
        self.categories = categories
        self._years: dict[int, frozenset[date]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HolidayCalendar({self.country!r}, {self.subdivision!r}, {self.categories!r})"

    def __contains__(self, day: date) -> bool:
        return day in self.year(day.year)

    def year(self, year: int) -> frozenset[date]:
        days = self._years.get(year)
        if days is None:
            with self._lock:
                days = self._years.get(year)
                if days is None:
                    days = frozenset(self.names(year))
                    self._years[year] = days
        return days

    def names(self, year: int) -> dict[date, str]:
        """The closed days of ``year`` with their English names (for docs and tests)."""
        import holidays  # noqa: PLC0415 -- a slow import, needed only for the names

        options: dict[str, Any] = {"subdiv": self.subdivision, "years": year, "categories": self.categories,
                                   "language": "en_US"}
        cal = holidays.country_holidays(self.country, **options)
        if getattr(cal, "include_sundays", False):
            # holidays 0.88 to 0.9x counted every Swedish (and Norwegian) Sunday as a holiday by default; later
            # releases do not. Weekly opening hours already say whether Sunday is open, so ask for the calendar
            # without them, which gives the same days on every release.
            cal = type(cal)(include_sundays=False, **options)  # type: ignore[call-arg]  # only those releases' classes take it
        return dict(cal.items())


@dataclass(frozen=True)
class Schedule:
    """A weekly schedule in one zone, with closed days; immutable, so shared freely."""

    zone: ZoneInfo
    week: tuple[tuple[Span, ...], ...]  # index 0 = Monday
    closed_dates: frozenset[date] = frozenset()
    holidays: HolidayCalendar | None = None

    @classmethod
    def always(cls, zone: ZoneInfo, **kw: Any) -> Schedule:
        whole = (Span(0, DAY_MINUTES),)
        return cls(zone, (whole,) * 7, **kw)

    def closed_on(self, day: date) -> bool:
        return day in self.closed_dates or (self.holidays is not None and day in self.holidays)

    def is_open(self, now: float) -> bool:
        local = datetime.fromtimestamp(now, self.zone)
        minute = local.hour * 60 + local.minute
        today = local.date()
        if not self.closed_on(today):
            for span in self.week[today.weekday()]:
                if span.start <= minute and (span.overnight or minute < span.end):
                    return True
        yesterday = today - timedelta(days=1)
        for span in self.week[yesterday.weekday()]:
            if span.overnight and minute < span.end and not self.closed_on(yesterday):
                return True
        return False

    def next_change(self, now: float, horizon_days: int = 400) -> float | None:
        """When ``is_open`` next differs from ``is_open(now)`` (Unix time), or None within ``horizon_days``.

        A change can only happen where a span starts or ends or at local midnight (a closed date or a holiday
        begins or ends there); those moments are tried in order and ``is_open`` decides."""
        state = self.is_open(now)
        first = datetime.fromtimestamp(now, self.zone).date()
        for offset in range(horizon_days + 1):
            day = first + timedelta(days=offset)
            spans = (*self.week[day.weekday()], *self.week[(day - timedelta(days=1)).weekday()])
            for m in sorted({0} | {edge % DAY_MINUTES for span in spans for edge in (span.start, span.end)}):
                at = datetime(day.year, day.month, day.day, m // 60, m % 60, tzinfo=self.zone).timestamp()
                if at > now and self.is_open(at) != state:
                    return at
        return None
