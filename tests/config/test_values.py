"""config/values.py in process: the value parsers behind every flag, environment variable and config field.

Each parser returns the value or raises ``ValueError`` whose text names the problem and quotes the input (cut
short), so the caller only has to add where the text came from.
"""

from __future__ import annotations

import pytest

from pingaway_exporter.config.values import (
    DEFAULT_PORT,
    MAX_COUNT,
    MAX_DURATION,
    MAX_SIZE,
    api_url,
    boolean,
    choice,
    duration,
    file_path,
    format_duration,
    iso_utc,
    listen_address,
    nonneg_duration,
    positive_int,
    size,
    timezone,
    url_path,
    username,
)

pytestmark = pytest.mark.unit


# ---- durations ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("10", 10.0),
    ("2.5", 2.5),
    (" 15 ", 15.0),  # surrounding blanks are not part of the value
    ("500ms", 0.5),
    ("10s", 10.0),
    ("1m", 60.0),
    ("1m30s", 90.0),
    ("1.5h", 5400.0),
    ("2h30m", 9000.0),
    ("7d", 7 * 86400.0),
    ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4 + 0.005),
    ("3650d", MAX_DURATION),  # the longest accepted, exactly
])
def test_duration_reads_numbers_and_prometheus_units(text, seconds):
    assert duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten", "10x", "s", "10 s", "1m 30s", "-", "1w", "1y", "10S", "m10"])
def test_duration_refuses_what_is_not_one(text):
    with pytest.raises(ValueError, match=r"is not a duration \(e\.g\. 10s, 500ms, 1m\)") as info:
        duration(text)
    assert repr(text.strip()) in str(info.value)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "9" * 400 + "d"])
def test_duration_refuses_nan_and_infinity(text):
    with pytest.raises(ValueError, match="is not a finite duration"):
        duration(text)


@pytest.mark.parametrize("text", ["0", "0s", "0ms", "0.0", "-1", "-0.5"])
def test_duration_must_be_positive(text):
    with pytest.raises(ValueError, match="must be greater than zero"):
        duration(text)


@pytest.mark.parametrize("text", ["1e308", "3651d", "87601h", str(MAX_DURATION + 1), "99999999999999999999d"])
def test_duration_refuses_past_ten_years_and_names_the_bound(text):
    with pytest.raises(ValueError, match="is longer than the longest duration accepted, 3650d"):
        duration(text)


def test_a_long_duration_is_quoted_cut_short():
    text = "1" * 100 + "d"
    with pytest.raises(ValueError, match="is longer than the longest duration accepted") as info:
        duration(text)
    message = str(info.value)
    assert message.startswith(repr("1" * 36) + "...")
    assert len(message) < 120, "a message never quotes an unbounded value"


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("0s", 0.0), (" 0 ", 0.0), ("5s", 5.0), ("250ms", 0.25)])
def test_nonneg_duration_allows_zero(text, seconds):
    assert nonneg_duration(text) == seconds


@pytest.mark.parametrize(("text", "why"), [("-1", "greater than zero"), ("nan", "not a finite duration"),
                                           ("soon", "not a duration")])
def test_nonneg_duration_refuses_the_rest_as_duration_does(text, why):
    with pytest.raises(ValueError, match=why):
        nonneg_duration(text)


# ---- sizes and counts ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("1024", 1024),
    ("1KiB", 1024),
    ("64MiB", 64 << 20),
    ("2GiB", 2 << 30),
    ("2KB", 2000),
    ("5MB", 5_000_000),
    ("1GB", 10**9),
    ("4096B", 4096),
    (" 8 MiB ", 8 << 20),  # blanks around and between
    ("1024GiB", MAX_SIZE),  # the largest accepted, exactly
])
def test_size_reads_bytes_and_units(text, value):
    assert size(text) == value


@pytest.mark.parametrize("text", ["", "MiB", "1.5MiB", "-1024", "1 TiB", "64mib", "64 M", "0x400", "1e6"])
def test_size_refuses_what_is_not_one(text):
    with pytest.raises(ValueError, match=r"is not a size \(e\.g\. 64MiB, 1048576\)"):
        size(text)


@pytest.mark.parametrize("text", ["0", "1023", "1023B", "1KB"])
def test_size_below_one_kib_is_refused(text):
    with pytest.raises(ValueError, match="is smaller than 1KiB"):
        size(text)


@pytest.mark.parametrize("text", ["1025GiB", str(MAX_SIZE + 1), "9" * 21, "9" * 5000 + "GiB"])
def test_size_past_one_tib_is_refused_and_the_message_stays_short(text):
    with pytest.raises(ValueError, match="is larger than the largest size accepted, 1TiB") as info:
        size(text)
    assert len(str(info.value)) < 120


@pytest.mark.parametrize(("text", "value"), [("1", 1), (" 42 ", 42), (str(MAX_COUNT), MAX_COUNT)])
def test_positive_int(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize(("text", "why"), [
    ("0", "must be at least 1"),
    ("-3", "must be at least 1"),
    ("1.5", "is not a whole number"),
    ("ten", "is not a whole number"),
    ("", "is not a whole number"),
    (str(MAX_COUNT + 1), f"larger than the largest count accepted, {MAX_COUNT}"),
    ("9" * 5000, f"larger than the largest count accepted, {MAX_COUNT}"),  # refused before int() reads it
])
def test_positive_int_refusals_name_the_problem(text, why):
    with pytest.raises(ValueError, match=why) as info:
        positive_int(text)
    assert len(str(info.value)) < 120


# ---- booleans, choices, names -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "On", " true "])
def test_boolean_true(text):
    assert boolean(text) is True


@pytest.mark.parametrize("text", ["0", "false", "No", "off", "", "  "])
def test_boolean_false(text):
    assert boolean(text) is False


@pytest.mark.parametrize("text", ["2", "tru", "y", "enabled"])
def test_boolean_refuses_the_rest(text):
    with pytest.raises(ValueError, match=r"is not a boolean \(true/false\)"):
        boolean(text)


def test_choice_lowercases_and_names_the_options():
    level = choice("debug", "info", "warn")
    assert level(" INFO ") == "info"
    with pytest.raises(ValueError, match="'loud' is not one of debug, info, warn"):
        level("loud")


@pytest.mark.parametrize(("text", "value"), [("alice", "alice"), (" bob ", "bob"), ("ünïcode", "ünïcode")])
def test_username(text, value):
    assert username(text) == value


@pytest.mark.parametrize(("text", "why"), [("", "empty user name"), ("   ", "empty user name"),
                                           ("a:b", "cannot hold ':'"), ("a\x01b", "control characters"),
                                           ("a\tb", "control characters")])
def test_username_refusals(text, why):
    with pytest.raises(ValueError, match=why):
        username(text)


def test_file_path_keeps_the_text_and_refuses_blank():
    assert file_path(" /etc/token ") == " /etc/token "  # only the blank check: the path is the caller's
    for text in ("", "  "):
        with pytest.raises(ValueError, match="empty path"):
            file_path(text)


# ---- URLs, paths, addresses ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "url"), [
    ("https://api.example.com/v1", "https://api.example.com/v1/"),  # a trailing slash so paths join below it
    ("https://api.example.com/v1/", "https://api.example.com/v1/"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
    (" http://[::1]:9/api ", "http://[::1]:9/api/"),
])
def test_api_url(text, url):
    assert api_url(text) == url


@pytest.mark.parametrize(("text", "why"), [
    ("ftp://example.com/", "is not an http(s) URL"),
    ("example.com/api", "is not an http(s) URL"),
    ("https:///path", "is not an http(s) URL"),
    ("", "is not an http(s) URL"),
    ("https://user:pw@example.com/", "must not carry credentials; use a token file"),
    ("https://user@example.com/", "must not carry credentials"),
    ("https://example.com/api?x=1", "must not have a query or fragment"),
    ("https://example.com/api#top", "must not have a query or fragment"),
])
def test_api_url_refusals_name_the_problem(text, why):
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        api_url(text)


def test_api_url_never_quotes_the_credentials_it_refuses():
    with pytest.raises(ValueError, match="must not carry credentials") as info:
        api_url("https://user:hunter2@example.com/")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("text", ["http://127.0.0.1:abc/", "http://127.0.0.1:99999/", "https://example.com:-1/"])
def test_api_url_refuses_a_port_that_is_not_one(text):
    # Accepted once, such a URL reached safe_url() at start-up and ended the exporter with a traceback.
    with pytest.raises(ValueError, match="port") as info:
        api_url(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(("text", "address"), [
    (f":{DEFAULT_PORT}", ("", DEFAULT_PORT)),
    ("127.0.0.1:9100", ("127.0.0.1", 9100)),
    ("localhost:80", ("localhost", 80)),
    ("[::1]:443", ("::1", 443)),
    ("[::]:65535", ("::", 65535)),
    (" 0.0.0.0:1 ", ("0.0.0.0", 1)),
])
def test_listen_address(text, address):
    assert listen_address(text) == address


@pytest.mark.parametrize("text", ["10035", "host", "host:", ":port", "::1:80", "[::1]", "[::1]80", "a:b:1",
                                  "host:123456"])
def test_listen_address_refuses_what_is_not_host_port(text):
    with pytest.raises(ValueError, match=rf"is not host:port \(e\.g\. :{DEFAULT_PORT} or 127\.0\.0\.1:"):
        listen_address(text)


def test_listen_address_refuses_a_port_past_65535():
    with pytest.raises(ValueError, match="port 65536 is out of range"):
        listen_address("127.0.0.1:65536")


@pytest.mark.parametrize("text", ["/metrics", "/", "/a/b-c_d.e"])
def test_url_path(text):
    assert url_path(text) == text


@pytest.mark.parametrize("text", ["metrics", "", "/a?b", "/a#b", "/a b"])
def test_url_path_refusals(text):
    with pytest.raises(ValueError, match="is not a URL path starting with '/'"):
        url_path(text)


# ---- time zones ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Europe/Stockholm", "UTC", "America/Argentina/Buenos_Aires"])
def test_timezone_keeps_a_known_zone(text):
    assert timezone(text) == text


@pytest.mark.parametrize("text", ["", "Europe", "Mars/Olympus", "../../etc/passwd", "/etc/localtime",
                                  "Europe/Stockholm\0", "a" * 300, "x" * 250])
def test_timezone_refuses_an_unknown_zone_with_one_message(text):
    with pytest.raises(ValueError, match=r"is not a known IANA time zone \(e\.g\. Europe/Stockholm\)") as info:
        timezone(text)
    assert len(str(info.value)) < 160, "a long name is quoted cut short"


# ---- formatting ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "0.5s"), (1, "1s"), (59, "59s"), (60, "1m"), (90, "90s"), (120, "2m"), (3600, "1h"), (5400, "90m"),
    (86400, "1d"), (90000, "25h"), (MAX_DURATION, "3650d"),
])
def test_format_duration_picks_the_largest_whole_unit(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["1m30s", "2h", "7d", "500ms", "45s"])
def test_format_duration_reads_back_as_the_same_duration(text):
    assert duration(format_duration(duration(text))) == duration(text)


@pytest.mark.parametrize(("ts", "text"), [
    (None, "never"),
    (0, "1970-01-01T00:00:00Z"),
    (1_796_376_600.0, "2026-12-04T09:30:00Z"),
    (1_796_376_600.999, "2026-12-04T09:30:00Z"),  # whole seconds: the fraction is dropped, never rounded up
])
def test_iso_utc(ts, text):
    assert iso_utc(ts) == text



@pytest.mark.parametrize("zero", ["0", "0.0", "0s", "0.0s", "0ms", "0m0s", " 0 "])
def test_zero_is_zero_however_it_is_written_where_zero_is_allowed(zero):
    assert nonneg_duration(zero) == 0.0
    with pytest.raises(ValueError, match="greater than zero"):
        duration(zero)


def test_a_non_zero_duration_is_read_as_usual_where_zero_is_allowed():
    assert nonneg_duration("1m30s") == 90.0
    with pytest.raises(ValueError, match="not a duration"):
        nonneg_duration("-1s")


# ---- numbers are ASCII --------------------------------------------------------------------------------------

# float() and int() read these as 5, 10 and 1000; no flag, field or header here means them.
FOREIGN = {"arabic-indic": "\u0665", "fullwidth": "\uff15", "devanagari": "\u096b", "underscore": "1_0"}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize(("parse", "form"), [
    (duration, "{}"), (duration, "{}s"), (duration, "1m{}s"), (nonneg_duration, "{}"), (nonneg_duration, "{}ms"),
    (size, "{}024"), (size, "{}MiB"), (positive_int, "{}"),
    (listen_address, ":{}"), (listen_address, "127.0.0.1:909{}"),
], ids=lambda v: getattr(v, "__name__", v))
def test_a_number_in_other_digits_is_refused_by_every_parser(parse, form, kind):
    text = form.format(FOREIGN[kind])
    with pytest.raises(ValueError, match="is not") as info:
        parse(text)
    assert repr(text.strip()) in str(info.value)
