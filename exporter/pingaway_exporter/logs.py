"""logfmt or JSON log lines, one per event, with secrets scrubbed.

Exporters in the Prometheus ecosystem log in logfmt (go-kit / slog style:
``ts=... level=warn msg="scrape failed" reason=timeout``); JSON is there for
log pipelines that want it. Tracebacks are not printed: a failing upstream
is an expected event, described in one line. A last-line-of-defence filter
replaces any known secret value with ``<redacted>`` in whatever reaches the
handler, including lines from httpx and httpcore at debug level.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

from .config.redact import REDACTED
from .config.redact import scrub as scrub_secrets

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


def scrub(text: str) -> str:
    """Known secret values (and long runs of them) and credential header values replaced by ``<redacted>``.

    Applied to each field *before* it is escaped for logfmt or JSON (a
    secret holding a quote or a backslash would otherwise no longer match
    once escaped), and once more to the finished line.
    """
    text = scrub_secrets(text)
    text = _HEADER_TUPLE.sub(lambda m: m.group(1) + REDACTED + m.group(5), text)
    return _HEADER_LINE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


def _scrub_value(value: object) -> object:
    if isinstance(value, str):
        return scrub(value)
    return value  # numbers, lists, mappings: the finished line is scrubbed again


def _fields(record: logging.LogRecord) -> dict[str, object]:
    out: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": _NAMES.get(record.levelno, "info"),
        "logger": record.name.removeprefix("pingaway_exporter.") if record.name != "pingaway_exporter" else "main",
        "msg": scrub(record.getMessage()),
    }
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        for key, value in extra.items():
            out.setdefault(key, _scrub_value(value))
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        out.setdefault("err", scrub(f"{type(exc).__name__}: {exc}"))
    return out


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) if not isinstance(
        value, (int, float)) else repr(value)
    if text == "" or any(ch in text for ch in ' ="\\\n\t') :
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub_secrets(" ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items()))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub_secrets(json.dumps(_fields(record), ensure_ascii=False, default=str))


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
