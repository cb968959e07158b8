"""config/hours.py in process: ``opening_hours`` and ``holidays`` of ``--config.file``, read by hand.

Every refusal is a ``SchemaError`` whose ``path`` names the key (``groups[0].opening_hours.mon[1]``) and
whose ``why`` says what is wrong, so these tests check both.
"""

from __future__ import annotations

from datetime import date

import pytest

from pingaway_exporter.config.errors import SchemaError
from pingaway_exporter.config.file_schema import HolidaysSchema
from pingaway_exporter.config.hours import NOT_A_DAY, days, holiday_calendar, minute, opening_hours, spans
from pingaway_exporter.config.schedule import DAY_MINUTES, Span

pytestmark = pytest.mark.unit

OH = "groups[0].opening_hours"
HOL = "holidays"


def hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def refused(call, *args, **kw) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        call(*args, **kw)
    return info.value


# ---- the week -----------------------------------------------------------------------------------------------

def test_always_is_every_day_all_day():
    assert opening_hours("always", OH) == ((Span(0, DAY_MINUTES),),) * 7


def test_a_mapping_sets_the_days_it_names_and_leaves_the_rest_closed():
    week = opening_hours({"mon-fri": "08:00-17:00", "sat": ["10:00-12:00", "13:00-15:00"]}, OH)
    assert len(week) == 7
    assert week[:5] == ((Span(hm("08:00"), hm("17:00")),),) * 5
    assert week[5] == (Span(hm("10:00"), hm("12:00")), Span(hm("13:00"), hm("15:00")))
    assert week[6] == ()  # not named: closed


def test_closed_and_null_close_a_day():
    week = opening_hours({"mon": "closed", "tue": None, "wed": "00:00-24:00"}, OH)
    assert week[0] == () and week[1] == ()
    assert week[2] == (Span(0, DAY_MINUTES),)


def test_a_range_past_midnight_is_kept_as_overnight():
    (span,) = opening_hours({"fri": "22:00-06:00"}, OH)[4]
    assert span == Span(hm("22:00"), hm("06:00")) and span.overnight


def test_long_day_names_and_case_are_accepted():
    assert opening_hours({"Monday": "09:00-10:00", "SUNDAY": "09:00-10:00"}, OH) == \
        opening_hours({"mon": "09:00-10:00", "sun": "09:00-10:00"}, OH)


@pytest.mark.parametrize(("key", "expected"), [
    ("mon", [0]),
    ("sunday", [6]),
    ("mon-fri", [0, 1, 2, 3, 4]),
    ("fri-mon", [4, 5, 6, 0]),  # wraps past Sunday
    ("sat-sun", [5, 6]),
    ("wed-wed", [2]),
    ("tue-mon", [1, 2, 3, 4, 5, 6, 0]),
    (" Thu-Saturday ", [3, 4, 5]),
])
def test_days(key, expected):
    assert days(key, OH) == expected


@pytest.mark.parametrize("key", ["mo", "weekdays", "mon-fri-sat", "-fri", "mon-xyz", "", "mån", 1, None,
                                 "mon-", "mon - ", "-"])
def test_days_refuses_what_is_not_a_day_and_names_the_key(key):
    err = refused(days, key, OH)
    assert err.path == f"{OH}.{key}" and err.why == NOT_A_DAY
    assert str(err) == f"{OH}.{key}: {NOT_A_DAY}"


def test_a_bad_day_key_in_the_mapping_names_the_key():
    err = refused(opening_hours, {"mon": "09:00-17:00", "funday": "09:00-17:00"}, OH)
    assert err.path == f"{OH}.funday" and "is not a day name" in err.why


@pytest.mark.parametrize(("raw", "first", "again"), [
    ({"mon-fri": "08:00-17:00", "wed": "closed"}, "mon-fri", "wed"),
    ({"mon": "08:00-17:00", "monday": "09:00-10:00"}, "mon", "monday"),
    ({"fri-mon": "08:00-17:00", "sun": "closed"}, "fri-mon", "sun"),  # Sunday is inside the wrapped range
])
def test_a_day_set_twice_is_refused_naming_both_keys(raw, first, again):
    err = refused(opening_hours, raw, OH)
    assert err.path == f"{OH}.{again}"
    assert "is already set by" in err.why and repr(first) in err.why


@pytest.mark.parametrize("raw", ["sometimes", "", 24, ["mon"], None])
def test_opening_hours_is_always_or_a_mapping(raw):
    err = refused(opening_hours, raw, OH)
    assert err.path == OH
    assert err.why.startswith("must be 'always' or a mapping of days")


# ---- the ranges of one day ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("closed", ()),
    (None, ()),
    ([], ()),
    ("08:00-17:00", (Span(480, 1020),)),
    (" 8:00 - 9:30 ", (Span(480, 570),)),  # one-digit hours and blanks around the dash
    (["00:00-01:00", "23:00-24:00"], (Span(0, 60), Span(1380, DAY_MINUTES))),
    ("23:59-00:00", (Span(1439, 0),)),
])
def test_spans(raw, expected):
    assert spans(raw, f"{OH}.mon") == expected


@pytest.mark.parametrize(("raw", "where", "why"), [
    ({"from": "08:00"}, f"{OH}.mon", "must be a list of time ranges"),
    (8, f"{OH}.mon", "must be a list of time ranges"),
    (["08:00-12:00", 13], f"{OH}.mon[1]", "13 is not a time range HH:MM-HH:MM"),
    (["08:00"], f"{OH}.mon[0]", "'08:00' is not a time range HH:MM-HH:MM"),
    (["08:00-12:00-13:00"], f"{OH}.mon[0]", "is not a time range HH:MM-HH:MM"),
    (["08:00-12:00", "9-17"], f"{OH}.mon[1]", "'9' is not HH:MM"),
    (["25:00-26:00"], f"{OH}.mon[0]", "'25:00' is not HH:MM"),
    (["08:60-09:00"], f"{OH}.mon[0]", "'08:60' is not HH:MM"),
    (["08:00-24:01"], f"{OH}.mon[0]", "'24:01' is not HH:MM"),
    (["08:00-8:5"], f"{OH}.mon[0]", "'8:5' is not HH:MM"),
    (["24:00-08:00"], f"{OH}.mon[0]", "24:00 can only end a range"),
    (["09:00-09:00"], f"{OH}.mon[0]", "is empty; a whole day is 00:00-24:00"),
    (["00:00-00:00"], f"{OH}.mon[0]", "is empty; a whole day is 00:00-24:00"),
])
def test_spans_refusals_name_the_item(raw, where, why):
    err = refused(spans, raw, f"{OH}.mon")
    assert err.path == where
    assert why in err.why


def test_a_bad_range_inside_the_week_names_the_day_key_and_index():
    err = refused(opening_hours, {"mon-fri": ["08:00-12:00", "13:00-77:00"]}, OH)
    assert err.path == f"{OH}.mon-fri[1]" and err.why == "'77:00' is not HH:MM"


@pytest.mark.parametrize(("text", "end", "value"), [
    ("00:00", False, 0), ("9:05", False, 545), ("23:59", False, 1439), ("24:00", True, DAY_MINUTES),
    ("00:00", True, 0),
])
def test_minute(text, end, value):
    assert minute(text, "p", end=end) == value


def test_a_long_bad_time_is_quoted_cut_short():
    err = refused(minute, "9" * 500, "p", end=False)
    assert err.path == "p" and err.why.endswith("is not HH:MM") and len(err.why) < 100


# ---- holidays -----------------------------------------------------------------------------------------------

def test_the_default_calendar_is_swedish_public_and_de_facto_holidays():
    cal = holiday_calendar(HolidaysSchema(), HOL)
    assert (cal.country, cal.subdivision, cal.categories) == ("SE", None, ("public", "de_facto"))
    assert date(2026, 12, 25) in cal  # Christmas Day
    assert date(2026, 12, 24) in cal  # Christmas Eve: a de facto holiday in Sweden
    assert date(2026, 12, 22) not in cal


def test_country_is_case_insensitive_and_subdivision_is_kept():
    cal = holiday_calendar(HolidaysSchema(country="de", subdivision="BY", categories=["public"]), HOL)
    assert (cal.country, cal.subdivision, cal.categories) == ("DE", "BY", ("public",))
    assert date(2026, 1, 6) in cal  # Epiphany: a public holiday in Bavaria, not in all of Germany


def test_default_categories_are_only_those_the_country_has():
    cal = holiday_calendar(HolidaysSchema(country="DE"), HOL)
    assert cal.categories == ("public",)  # Germany has no de_facto category


def test_repeated_categories_are_kept_once_in_order():
    cal = holiday_calendar(HolidaysSchema(categories=["bank", "public", "bank"]), HOL)
    assert cal.categories == ("bank", "public")


def test_an_unquoted_no_gets_its_own_message():
    err = refused(holiday_calendar, HolidaysSchema(country=False), HOL)
    assert err.path == "holidays.country"
    assert 'write "NO" in quotes' in err.why


@pytest.mark.parametrize("country", ["XX", "", "Sweden", True])
def test_an_unknown_country_is_refused(country):
    err = refused(holiday_calendar, HolidaysSchema(country=country), HOL)
    assert err.path == "holidays.country"
    assert err.why == f"{country!r} is not a country code the holidays package knows (e.g. SE)"


@pytest.mark.parametrize(("subdivision", "shown"), [("XX", "'XX'"), ("by", "'by'"), (7, "'7'")])
def test_an_unknown_subdivision_is_refused(subdivision, shown):
    err = refused(holiday_calendar, HolidaysSchema(country="DE", subdivision=subdivision), HOL)
    assert err.path == "holidays.subdivision"
    assert err.why == f"{shown} is not a subdivision of DE"


def test_an_empty_category_list_names_the_known_ones():
    err = refused(holiday_calendar, HolidaysSchema(categories=[]), HOL)
    assert err.path == "holidays.categories"
    assert err.why.startswith("must be a non-empty list of: ") and "public" in err.why and "de_facto" in err.why


def test_an_unknown_category_names_its_index():
    err = refused(holiday_calendar, HolidaysSchema(country="DE", categories=["public", "de_facto"]), HOL)
    assert err.path == "holidays.categories[1]"
    assert err.why.startswith("'de_facto' is not a category of DE: ") and "public" in err.why


@pytest.mark.parametrize("text", ["\u0660\u0668:\u0660\u0660", "\uff10\uff18:00", "08:\u0966\u0966", "\u0968\u0967:00"])
def test_a_time_in_digits_of_another_script_is_refused(text):
    """``int`` reads Arabic-Indic, fullwidth and Devanagari digits; HH:MM here is ASCII only."""
    with pytest.raises(SchemaError, match="is not HH:MM"):
        minute(text, "p", end=False)
