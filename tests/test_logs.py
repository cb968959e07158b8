"""logs: logfmt and JSON lines, field quoting, and redaction of secrets in both formats.

Each test formats LogRecords it builds itself (at a pinned ``created`` time), so nothing depends on the
clock or on what other tests logged. tests/config/test_secret.py covers redaction end to end.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from pingaway_exporter import logs
from pingaway_exporter.config.secret import Secret

pytestmark = pytest.mark.unit

CREATED = 1_805_000_000.25  # 2027-03-14T04:53:20.250Z


def record(msg: str, *args: object, name: str = "pingaway_exporter.scrape", level: int = logging.WARNING,
           fields: dict | None = None, exc: BaseException | None = None) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, (type(exc), exc, None) if exc else None)
    rec.created = CREATED
    rec.msecs = 250.0
    if fields is not None:
        rec.fields = fields
    return rec


def logfmt(rec: logging.LogRecord) -> str:
    return logs.LogfmtFormatter().format(rec)


def as_json(rec: logging.LogRecord) -> dict:
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line
    return json.loads(line)


def test_logfmt_line():
    line = logfmt(record("scrape failed", fields={"reason": "timeout", "took": 1.5, "n": 3}))
    assert line == ('ts=2027-03-14T04:53:20.250Z level=warn logger=scrape msg="scrape failed" '
                    "reason=timeout took=1.5 n=3")


@pytest.mark.parametrize(("value", "rendered"), [
    ("plain", "plain"),
    ("two logfmt-only words", '"two logfmt-only words"'),
    ("", '""'),
    ('say "hi"', r'"say \"hi\""'),
    ("back\\slash", r'"back\\slash"'),
    ("line\nbreak", r'"line\nbreak"'),
    ("tab\there", r'"tab\there"'),
    ("a=b", '"a=b"'),
])
def test_logfmt_quotes_what_needs_quoting(value, rendered):
    assert logfmt(record("m", fields={"v": value})).endswith(f" v={rendered}")


def test_logfmt_values_that_are_not_strings():
    line = logfmt(record("m", fields={"none": None, "list": [1, "a"], "ratio": 0.25}))
    assert line.endswith(' none=null list="[1, \\"a\\"]" ratio=0.25')


def test_one_line_per_event_even_with_an_exception():
    line = logfmt(record("could not parse", exc=ValueError("bad\nbody")))
    assert "\n" not in line
    assert line.endswith(r'err="ValueError: bad\nbody"')


def test_levels_and_logger_names():
    assert " level=error " in logfmt(record("x", level=logging.CRITICAL))
    assert " level=debug " in logfmt(record("x", level=logging.DEBUG))
    assert " logger=main " in logfmt(record("x", name="pingaway_exporter"))
    assert " logger=httpx " in logfmt(record("x", name="httpx"))


def test_fields_never_replace_the_standard_keys():
    line = logfmt(record("real", fields={"msg": "forged", "level": "debug"}))
    assert ' msg=real ' in line + " " and "forged" not in line and " level=warn " in line


def test_json_line():
    out = as_json(record("targets ready %s", "now", fields={"targets": 2, "name": "växel"}))
    assert out == {"ts": "2027-03-14T04:53:20.250Z", "level": "warn", "logger": "scrape",
                   "msg": "targets ready now", "targets": 2, "name": "växel"}


def test_a_known_secret_is_redacted_in_both_formats():
    secret = Secret("tok-4f9a1c2e7b")
    rec = record("sent %s", secret.reveal(), fields={"header": f"Bearer {secret.reveal()}"})
    line = logfmt(rec)
    assert secret.reveal() not in line
    assert line.count(logs.REDACTED) == 2
    out = as_json(rec)
    assert out["msg"] == f"sent {logs.REDACTED}" and out["header"] == f"Bearer {logs.REDACTED}"


def test_a_jwt_signature_alone_is_redacted():
    header_claims = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0"
    token = Secret(f"{header_claims}.c2lnbmF0dXJlLXBhcnQtb2YtaXQ")
    line = logfmt(record("upstream echoed %s", "c2lnbmF0dXJlLXBhcnQtb2YtaXQ"))
    assert "c2lnbmF0dXJlLXBhcnQtb2YtaXQ" not in line and logs.REDACTED in line
    assert token  # keep the Secret (and its registration) alive for the test


@pytest.mark.parametrize("text", [
    "request headers:\nAuthorization: Basic dW5rbm93bjp2YWx1ZQ==",
    "response headers:\nset-cookie: sid=never-registered-value; Path=/",
    "Cookie: sid=never-registered-value",
])
def test_credential_headers_are_masked_by_name_even_when_unregistered(text):
    line = logfmt(record("%s", text, name="httpcore.http11", level=logging.DEBUG))
    assert "dW5rbm93bjp2YWx1ZQ==" not in line and "never-registered-value" not in line
    assert logs.REDACTED in line


def test_httpcore_header_tuples_are_masked_by_name():
    text = "send_request_headers.started request=<Request [b'GET']> headers=[(b'Host', b'api'), " \
           "(b'Authorization', b'Bearer never-registered-token')]"
    line = logfmt(record("%s", text, name="httpcore.http11", level=logging.DEBUG))
    assert "never-registered-token" not in line
    assert "(b'Authorization', b'" + logs.REDACTED + "')" in line
    assert "(b'Host', b'api')" in line, "other headers stay readable"


def test_setup_routes_every_logger_through_one_handler():
    stream = io.StringIO()
    handler = logs.setup("info", "json", stream=stream)
    root = logging.getLogger()
    assert root.handlers == [handler] and root.level == logging.INFO
    assert logging.getLogger("httpx").level == logging.WARNING
    logging.getLogger("pingaway_exporter.web").info("listening", extra={"fields": {"address": "[::]:10035"}})
    logging.getLogger("pingaway_exporter.web").debug("not shown at info")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["address"] == "[::]:10035"


def test_setup_at_debug_lets_the_http_libraries_speak():
    logs.setup("debug", "logfmt", stream=io.StringIO())
    assert logging.getLogger("httpx").level == logging.DEBUG
    assert logging.getLogger("httpcore").level == logging.DEBUG


@pytest.mark.parametrize("raw", ["\r", "\n", "\x1b", "\x00", "\x9b", "\x7f", "\u2028"])
def test_control_characters_are_escaped_in_both_formats(raw):
    """P10: a request line with CR, ESC, NUL or U+009B cannot forge a line or reach a terminal raw."""
    rec = record(f"GET /{raw}level=error x", fields={"path": f"/a{raw}b"})
    for line in (logfmt(rec), logs.JsonFormatter().format(rec)):
        assert raw not in line
    assert as_json(rec)["path"] == f"/a{raw}b"  # escaped, not lost


def test_a_short_secret_never_masks_the_lines_keys():
    """U6: session cookies `sid=level`, `x=scrape`, `y=error` are too short to scrub; every key stays."""
    secrets = [Secret(v) for v in ("level", "scrape", "error", "msg")]
    rec = record("scrape failed", fields={"target": "default", "reason": "error"})
    line = logfmt(rec)
    assert line.startswith("ts=") and " level=warn logger=scrape " in line and 'msg="scrape failed"' in line
    assert set(as_json(rec)) == {"ts", "level", "logger", "msg", "target", "reason"}
    assert "<redacted>" not in line
    del secrets
