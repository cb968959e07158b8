"""logfmt or JSON log lines, one per event, with secrets scrubbed.

Exporters in the Prometheus ecosystem log in logfmt (go-kit / slog style:
``ts=... level=warn msg="scrape failed" reason=timeout``); JSON is there for
log pipelines that want it. Tracebacks are not printed: a failing upstream
is an expected event, described in one line. Every value (the message, each
field, every string inside a list or mapping) has any known secret value
replaced with ``<redacted>`` before it is escaped, including lines from httpx
and httpcore at debug level; the line's own keys (``level``, ``msg``) are never
scrubbed, so a secret that happens to be a common word cannot take a line's
structure with it (docs/security.md, U6; secrets under eight characters are not
scrubbed at all, see ``config.redact``). Control characters (C0, DEL, C1 such
as U+009B, and the Unicode line separators) are escaped in both formats, so
no text from a request or from upstream can forge a line or drive a terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

from pingaway_exporter.config.redact import REDACTED
from pingaway_exporter.config.redact import scrub as scrub_secrets

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
          logging.CRITICAL: "error"}


# httpcore logs response headers at debug level the moment they arrive, which
# is before the exporter has read a new session cookie and registered it; so
# the values of credential headers are masked by name as well as by value.
_CREDENTIAL_HEADERS = r"(?:set-cookie|cookie|authorization|proxy-authorization)"
_HEADER_TUPLE = re.compile(r"""(b?(['"])""" + _CREDENTIAL_HEADERS + r"""\2,\s*b?(['"]))(.*?)(\3\))""", re.I)
# A header name starts a line (fields are scrubbed before they are escaped).
_HEADER_LINE = re.compile(r"(?:(?<=\\n)|(?<![\w-]))(" + _CREDENTIAL_HEADERS + r")(:\s*)([^\n\r]+)", re.I)


def scrub_log_text(text: str) -> str:
    """Known secret values (and long runs of them) and credential header values replaced by ``<redacted>``.

    Applied to each field *before* it is escaped for logfmt or JSON (a
    secret holding a quote or a backslash would otherwise no longer match
    once escaped), and once more to the finished line.
    """
    text = scrub_secrets(text)
    text = _HEADER_TUPLE.sub(lambda m: m.group(1) + REDACTED + m.group(5), text)
    return _HEADER_LINE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


def _scrub_value(value: object, depth: int = 0) -> object:
    """Every string in ``value`` scrubbed; numbers, booleans and None as they are; anything else as its text."""
    if isinstance(value, str):
        return scrub_log_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth < 8 and isinstance(value, (list, tuple)):
        return [_scrub_value(v, depth + 1) for v in value]
    if depth < 8 and isinstance(value, dict):
        return {scrub_log_text(str(k)): _scrub_value(v, depth + 1) for k, v in value.items()}
    return scrub_log_text(str(value))


# Control characters a log line must never carry raw: C0 (with CR, LF, ESC, NUL), DEL, C1 (U+009B is a
# terminal's CSI) and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")


def _escape_control(m: re.Match[str]) -> str:
    ch = m.group(0)
    return _SHORT.get(ch) or f"\\u{ord(ch):04x}"


def _key(key: object) -> str:
    """A field name as logfmt and JSON consumers expect it: our keys are plain; anything else is replaced."""
    text = key if isinstance(key, str) else str(key)
    return _KEY_CHARS.sub("_", text[:64]) or "_"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    out: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": _NAMES.get(record.levelno, "info"),
        "logger": record.name.removeprefix("pingaway_exporter.") if record.name != "pingaway_exporter" else "main",
        "msg": scrub_log_text(record.getMessage()),
    }
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        for key, value in extra.items():
            out.setdefault(_key(key), _scrub_value(value))
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        out.setdefault("err", scrub_log_text(f"{type(exc).__name__}: {exc}"))
    return out


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) if not isinstance(
        value, (int, float)) else repr(value)
    if text == "" or any(ch in text for ch in ' ="\\') or _CONTROL.search(text):
        return '"' + _CONTROL.sub(_escape_control, text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # json.dumps escapes C0 itself; DEL, C1 and U+2028/9 only occur inside strings, where \uXXXX is JSON.
        return _CONTROL.sub(_escape_control, json.dumps(_fields(record), ensure_ascii=False, default=str))


def setup(level: str = "info", fmt: str = "logfmt", stream: TextIO | None = None) -> logging.Handler:
    """Route every logger (ours and the libraries') through one scrubbing handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # httpx logs every request at INFO; that is one line per scrape of noise.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    return handler
