"""Opening hours: DST changes, Swedish holidays, nights across midnight, closed dates.

Every instant is given in UTC and the expectation is the Stockholm wall
clock's answer, so a schedule that used a fixed UTC offset would fail on one
side of each DST change.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from pingaway_exporter.config.file import parse
from pingaway_exporter.config.schedule import HolidayCalendar
from tests.helpers.fixtures import STOCKHOLM

pytestmark = pytest.mark.unit


def schedule(opening_hours, **group):
    settings = parse({"groups": [{"name": "g", "keywords": ["g"], "opening_hours": opening_hours, **group}]})
    return settings.groups[0].schedule


def utc(y, mo, d, h, mi=0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp()


def local(y, mo, d, h, mi=0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=STOCKHOLM).timestamp()


# -- DST: last Sunday of March (2026-03-29, 02:00 CET -> 03:00 CEST) --------------

@pytest.mark.parametrize(("when", "expected"), [
    (utc(2026, 3, 29, 5, 59), False),  # 07:59 CEST
    (utc(2026, 3, 29, 6, 0), True),    # 08:00 CEST (a fixed UTC+1 would say 07:00)
    (utc(2026, 3, 29, 14, 59), True),  # 16:59 CEST
    (utc(2026, 3, 29, 15, 0), False),  # 17:00 CEST (a fixed UTC+1 would say 16:00, open)
])
def test_spring_forward_sunday(when, expected):
    assert schedule({"sun": ["08:00-17:00"]}, holidays=False).is_open(when) is expected


# -- DST: last Sunday of October (2026-10-25, 03:00 CEST -> 02:00 CET) ------------

@pytest.mark.parametrize(("when", "expected"), [
    (utc(2026, 10, 25, 6, 59), False),  # 07:59 CET (a fixed UTC+2 would say 08:59, open)
    (utc(2026, 10, 25, 7, 0), True),    # 08:00 CET
    (utc(2026, 10, 25, 15, 59), True),  # 16:59 CET
    (utc(2026, 10, 25, 16, 0), False),  # 17:00 CET
])
def test_fall_back_sunday(when, expected):
    assert schedule({"sun": ["08:00-17:00"]}, holidays=False).is_open(when) is expected


def test_night_shift_across_both_dst_changes():
    night = schedule({"sat": ["22:00-06:00"]}, holidays=False)
    # March: Saturday 22:00 CET to Sunday 06:00 CEST, seven real hours.
    assert not night.is_open(utc(2026, 3, 28, 20, 59))  # 21:59 CET
    assert night.is_open(utc(2026, 3, 28, 21, 0))       # 22:00 CET
    assert night.is_open(utc(2026, 3, 29, 1, 30))       # 03:30 CEST, just after the jump
    assert night.is_open(utc(2026, 3, 29, 3, 59))       # 05:59 CEST
    assert not night.is_open(utc(2026, 3, 29, 4, 0))    # 06:00 CEST (UTC+1 would say 05:00)
    # October: Saturday 22:00 CEST to Sunday 06:00 CET, nine real hours.
    assert night.is_open(utc(2026, 10, 24, 20, 0))      # 22:00 CEST
    assert night.is_open(utc(2026, 10, 25, 4, 59))      # 05:59 CET
    assert not night.is_open(utc(2026, 10, 25, 5, 0))   # 06:00 CET (UTC+2 would say 07:00)


def test_the_hour_that_does_not_exist_and_the_hour_that_happens_twice():
    small_hours = schedule({"sun": ["02:00-03:00"]}, holidays=False)
    # 2026-03-29: the clock goes from 01:59:59 CET to 03:00 CEST, so 02:00-03:00 never happens.
    assert not small_hours.is_open(utc(2026, 3, 29, 0, 59))
    assert not small_hours.is_open(utc(2026, 3, 29, 1, 0))
    # 2026-10-25: 02:00-03:00 happens twice, first in CEST, then in CET; open both times.
    assert small_hours.is_open(utc(2026, 10, 25, 0, 30))
    assert small_hours.is_open(utc(2026, 10, 25, 1, 30))
    assert not small_hours.is_open(utc(2026, 10, 25, 2, 0))


# -- Swedish holidays --------------------------------------------------------------

OFFICE = {"mon-fri": ["08:00-17:00"]}


@pytest.mark.parametrize(("day", "name"), [
    (date(2026, 6, 19), "midsommarafton"),
    (date(2026, 12, 24), "julafton"),
    (date(2026, 12, 31), "nyårsafton"),
    (date(2027, 6, 25), "midsommarafton 2027"),
    (date(2027, 12, 24), "julafton 2027 (a Friday)"),
    (date(2026, 1, 6), "trettondedag jul"),
    (date(2026, 4, 3), "långfredagen"),
    (date(2026, 4, 6), "annandag påsk"),
    (date(2026, 5, 1), "första maj"),
    (date(2026, 5, 14), "kristi himmelsfärdsdag"),
])
def test_weekday_holidays_close_the_office(day, name):
    office = schedule(OFFICE)
    assert day.weekday() < 5, name
    assert not office.is_open(local(day.year, day.month, day.day, 10)), name
    assert schedule(OFFICE, holidays=False).is_open(local(day.year, day.month, day.day, 10)), name


@pytest.mark.parametrize("day", [date(2026, 6, 18), date(2026, 12, 23), date(2026, 12, 30), date(2026, 4, 2)])
def test_the_day_before_is_an_ordinary_day(day):
    assert schedule(OFFICE).is_open(local(day.year, day.month, day.day, 10))


def test_only_public_holidays_when_asked():
    """categories: [public] drops the de facto holidays: midsommarafton and julafton are workdays again."""
    settings = parse({"holidays": {"country": "SE", "categories": ["public"]},
                      "groups": [{"name": "g", "keywords": ["g"], "opening_hours": OFFICE}]})
    office = settings.groups[0].schedule
    assert office.is_open(local(2026, 6, 19, 10)) and office.is_open(local(2026, 12, 24, 10))
    assert not office.is_open(local(2026, 12, 25, 10))  # juldagen is public


def test_the_documented_swedish_closed_days_2026():
    """Exactly the dates the README lists under "Holidays"."""
    calendar = HolidayCalendar("SE", None, ("public", "de_facto"))
    assert set(calendar.names(2026)) == {date(2026, m, d) for m, d in [
        (1, 1), (1, 6), (4, 3), (4, 5), (4, 6), (5, 1), (5, 14), (5, 24), (6, 6), (6, 19), (6, 20),
        (10, 31), (12, 24), (12, 25), (12, 26), (12, 31)]}


# -- nights across midnight, closed dates ---------------------------------------------

def test_night_range_belongs_to_the_day_it_starts():
    night = schedule({"mon-sun": ["22:00-06:00"]})
    assert night.is_open(local(2026, 12, 23, 23))       # an ordinary Wednesday night
    assert night.is_open(local(2026, 12, 24, 3))        # ... runs into julafton morning
    assert not night.is_open(local(2026, 12, 24, 23))   # julafton's own night is closed
    assert not night.is_open(local(2026, 12, 25, 3))    # ... through to its end
    assert not night.is_open(local(2026, 12, 25, 23))   # juldagen night: closed too
    assert night.is_open(local(2026, 12, 27, 23))       # Sunday 27th: ordinary again
    assert not night.is_open(local(2026, 12, 23, 12))   # daytime: closed
    assert not night.is_open(local(2026, 12, 23, 6))    # 06:00 is the end, exclusive


def test_weekend_night_only_on_friday():
    night = schedule({"fri": ["20:00-02:00"]}, holidays=False)
    assert night.is_open(local(2026, 11, 27, 21))       # Friday
    assert night.is_open(local(2026, 11, 28, 1, 59))    # Saturday morning, from Friday
    assert not night.is_open(local(2026, 11, 28, 2))
    assert not night.is_open(local(2026, 11, 28, 21))   # Saturday has no range of its own
    assert not night.is_open(local(2026, 11, 26, 23))   # nor has Thursday


def test_closed_dates():
    office = schedule(OFFICE, closed_dates=["2026-11-27", date(2026, 12, 7)])
    assert office.is_open(local(2026, 11, 26, 10))
    assert not office.is_open(local(2026, 11, 27, 10))   # a string date
    assert not office.is_open(local(2026, 12, 7, 10))    # an unquoted YAML date
    assert office.is_open(local(2026, 12, 8, 10))


def test_closed_date_cancels_its_night_but_not_the_one_before():
    night = schedule({"mon-sun": ["22:00-06:00"]}, holidays=False, closed_dates=["2026-11-27"])
    assert night.is_open(local(2026, 11, 27, 3))        # from Thursday's night
    assert not night.is_open(local(2026, 11, 27, 23))
    assert not night.is_open(local(2026, 11, 28, 3))
    assert night.is_open(local(2026, 11, 28, 23))


def test_always_and_missing_days():
    always = schedule("always", holidays=False)
    assert all(always.is_open(local(2026, 12, 24, h)) for h in range(24))
    assert not schedule("always").is_open(local(2026, 12, 24, 12))  # holidays still close it by default
    weekdays = schedule({"mon-fri": ["00:00-24:00"]}, holidays=False)
    assert weekdays.is_open(local(2026, 11, 27, 23, 59)) and not weekdays.is_open(local(2026, 11, 28, 0))


def test_group_zone_overrides_the_default():
    helsinki = schedule(OFFICE, timezone="Europe/Helsinki", holidays=False)
    assert helsinki.is_open(local(2026, 11, 26, 7, 30))       # 08:30 in Helsinki
    assert not helsinki.is_open(local(2026, 11, 26, 16, 30))  # 17:30 in Helsinki


def test_day_ranges_wrap_and_days_can_be_closed_explicitly():
    shifts = schedule({"fri-mon": ["10:00-14:00"], "tue": "closed", "wed": [], "thu": "12:00-13:00"},
                      holidays=False)
    opened = {d: shifts.is_open(local(2026, 11, 23 + d, 11)) for d in range(7)}  # Mon 23rd .. Sun 29th
    assert opened == {0: True, 1: False, 2: False, 3: False, 4: True, 5: True, 6: True}
    assert shifts.is_open(local(2026, 11, 26, 12, 30))
