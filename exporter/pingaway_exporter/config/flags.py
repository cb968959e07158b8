"""Command-line flags, their ``PINGAWAY_*`` environment twins, and resolving them into a ``Flags``.

Flags follow the Prometheus exporter style (``--web.listen-address``,
``--log.level``). Every flag has an environment twin, named by dropping a
leading ``pingaway.`` and upper-casing the rest under ``PINGAWAY_``
(``--web.listen-address`` -> ``PINGAWAY_WEB_LISTEN_ADDRESS``); a flag given
on the command line wins. Secrets are never flag *values*, because the
command line is visible in ``ps``: only the path of a file, or an
environment variable, carries them. Each value is parsed by a function of
``config.values``; ``--web.config.file`` is read by ``config.webconfig``.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from pingaway_exporter import __version__
from pingaway_exporter.config import values
from pingaway_exporter.config.errors import ConfigError, WebConfigError
from pingaway_exporter.config.redact import shorten
from pingaway_exporter.config.secret import SecretSource
from pingaway_exporter.config.values import DEFAULT_MAX_KEYWORD_LISTS, DEFAULT_MAX_SERIES, DEFAULT_PORT, format_duration
from pingaway_exporter.config.webconfig import WebConfig
from pingaway_exporter.config.webconfig import load as load_web_config

DEFAULT_URL = "https://admin.pingaway.se/api/"
# Upstream calls in flight across all targets: 5,000 domains at a 60 s interval through a 200 ms upstream keep
# about 17 busy; 32 leaves twice that (bench/capacity_bench.py, docs/performance.md). Each slot is at most one
# upstream connection.
DEFAULT_MAX_CONCURRENT = 32
# Pingaway asks for about one call a minute. 30 s serves an HA pair scraping
# every 15 s with about two upstream calls a minute between them, and a
# flood of /metrics with the same two.
DEFAULT_MIN_INTERVAL = 30.0


# -- the flag table -------------------------------------------------------------

@dataclass(frozen=True)
class Flag:
    flag: str
    dest: str
    parse: Callable[[str], object]
    default: object
    help: str
    metavar: str = "VALUE"
    switch: bool = False  # a boolean flag with a --no- form

    @property
    def env(self) -> str:
        name = self.flag.removeprefix("--").removeprefix("pingaway.")
        return "PINGAWAY_" + re.sub(r"[.\-]", "_", name).upper()


FLAGS: tuple[Flag, ...] = (
    Flag("--pingaway.url", "url", values.api_url, DEFAULT_URL,
         "Pingaway API root; extensions/ is fetched below it.", "URL"),
    Flag("--pingaway.token-file", "token_file", str, None,
         "File holding the API token (a JWT). Re-read when it changes. PINGAWAY_TOKEN may hold the token itself.",
         "PATH"),
    Flag("--pingaway.token-opaque", "token_opaque", values.boolean, False,
         "Accept a token that is not a JWT (some API families issue opaque tokens); it has no expiry metrics.",
         switch=True),
    Flag("--pingaway.token-expiry-warning", "token_expiry_warning", values.duration, 7 * 86400.0,
         "Log a warning once a day when the token expires sooner than this.", "DURATION"),
    Flag("--pingaway.username", "username", values.username, None,
         "Log in at auth/login with HTTP Basic as this user when there is no usable token; "
         "the password comes from --pingaway.password-file or PINGAWAY_PASSWORD.", "USER"),
    Flag("--pingaway.password-file", "password_file", str, None,
         "File holding the password for --pingaway.username. Re-read when it changes.", "PATH"),
    Flag("--pingaway.timeout", "timeout", values.duration, 10.0,
         "Upper bound for one scrape and for one upstream call, connect to last byte; a scrape's "
         "X-Prometheus-Scrape-Timeout-Seconds shortens only that scrape's own answer.", "DURATION"),
    Flag("--pingaway.timezone", "timezone", values.timezone, "Europe/Stockholm",
         "Time zone of the API's local 'until' timestamps.", "ZONE"),
    Flag("--pingaway.max-response-size", "max_body", values.size, 64 << 20,
         "Largest decoded response body accepted from the API.", "SIZE"),
    Flag("--pingaway.min-interval", "min_interval", values.nonneg_duration, DEFAULT_MIN_INTERVAL,
         "Serve the last good result to scrapes closer together than this, instead of asking upstream "
         "again (0 = every scrape asks upstream). Keeps a flood of scrapes, HA pairs and dashboards within "
         "the vendor's fair use; pingaway_data_age_seconds shows the age of what is served.", "DURATION"),
    Flag("--pingaway.max-series", "max_series", values.positive_int, DEFAULT_MAX_SERIES,
         "Most series one scrape may build: a body whose records could make more (6 per record) answers "
         "pingaway_up 0 with reason too_many_series.", "N"),
    Flag("--pingaway.max-keyword-lists", "max_keyword_lists", values.positive_int, DEFAULT_MAX_KEYWORD_LISTS,
         "Most distinct keyWords lists one scrape may hold: past it, pingaway_up 0 with reason "
         "too_many_keyword_lists.", "N"),
    Flag("--pingaway.max-concurrent-requests", "max_concurrent", values.positive_int, DEFAULT_MAX_CONCURRENT,
         "Most upstream requests in flight at once, across all targets (size: twice targets / scrape interval "
         "x upstream latency).", "N"),
    Flag("--web.listen-address", "listen", values.listen_address, ("", DEFAULT_PORT),
         "Address to serve on; ':PORT' listens on all interfaces (IPv6 and IPv4).", "HOST:PORT"),
    Flag("--web.telemetry-path", "telemetry_path", values.url_path, "/metrics",
         "Path that serves the metrics.", "PATH"),
    Flag("--web.timeout-offset", "timeout_offset", values.nonneg_duration, 0.5,
         "Subtracted from Prometheus's X-Prometheus-Scrape-Timeout-Seconds to leave room for the answer.",
         "DURATION"),
    Flag("--web.enable-lifecycle", "enable_lifecycle", values.boolean, False,
         "Enable POST /-/reload (as in Prometheus); SIGHUP reloads either way.", switch=True),
    Flag("--web.max-connections", "max_connections", values.positive_int, 512,
         "Most open client connections; at the cap the oldest idle one is closed. Held 128 below the "
         "open-files limit (ulimit -n).", "N"),
    Flag("--web.config.file", "web_config_file", str, None,
         "exporter-toolkit web-config.yml: TLS (tls_server_config) and Basic auth (basic_auth_users).", "PATH"),
    Flag("--collector.extensions", "per_extension", values.boolean, True,
         "Export per-extension series (pingaway_extension_*). Turn off for large or privacy-sensitive domains.",
         switch=True),
    Flag("--collector.extensions.email", "include_email", values.boolean, False,
         "Add an email label to pingaway_extension_info. Personal data: off unless asked for.", switch=True),
    Flag("--collector.profile-limit", "profile_limit", values.positive_int, 50,
         "Most distinct profile names on pingaway_profile_users; the rest are summed as 'other'.", "N"),
    Flag("--config.file", "config_file", values.file_path, None,
         "YAML file with staffing groups, opening hours and holidays. Reloaded on SIGHUP and POST /-/reload.",
         "PATH"),
    Flag("--log.level", "log_level", values.choice("debug", "info", "warn", "error"), "info",
         "Only log messages at this level or above: debug, info, warn, error.", "LEVEL"),
    Flag("--log.format", "log_format", values.choice("logfmt", "json"), "logfmt", "Log line format: logfmt or json.",
         "FORMAT"),
    Flag("--demo", "demo", values.boolean, False,
         "Serve data from the embedded Pingaway simulator; needs no account or token.", switch=True),
)

TOKEN_ENV = "PINGAWAY_TOKEN"  # noqa: S105 -- the name of a variable, not a secret
PASSWORD_ENV = "PINGAWAY_PASSWORD"  # noqa: S105 -- the name of a variable, not a secret


@dataclass(frozen=True)
class Flags:
    url: str
    token: SecretSource | None = field(repr=True)
    timeout: float
    timezone: str
    max_body: int
    listen: tuple[str, int]
    telemetry_path: str
    timeout_offset: float
    per_extension: bool
    include_email: bool
    profile_limit: int
    log_level: str
    log_format: str
    demo: bool
    check: bool = False
    enable_lifecycle: bool = False  # --web.enable-lifecycle: POST /-/reload
    max_connections: int = 512  # --web.max-connections
    config_file: str | None = None  # --config.file; read by config/file.py, not here
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)  # field -> where it came from
    token_opaque: bool = False
    token_expiry_warning: float = 7 * 86400.0
    username: str | None = None
    password: SecretSource | None = None
    web_config: WebConfig | None = None
    min_interval: float = DEFAULT_MIN_INTERVAL
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    max_series: int = DEFAULT_MAX_SERIES
    max_keyword_lists: int = DEFAULT_MAX_KEYWORD_LISTS


class _QuietParser(argparse.ArgumentParser):
    """argparse that never echoes a value: ``--pingaway.password hunter2`` must not print the password."""

    def error(self, message: str) -> NoReturn:
        if ": invalid choice: " in message or "ambiguous option" in message:
            message = message.split(":", 1)[0] + ": not accepted (value not shown)"
        self.fail(message)

    def fail(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _close_flag(word: str, known: list[str]) -> str | None:
    """The known flag nearest to a mistyped one (``--pingaway.token_file``, ``-pingaway.token-file``)."""
    name = "--" + word.lstrip("-").replace("_", "-").lower()
    if name in known:
        return name
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return match[0] if match else None


def unknown_words(words: list[str], known: list[str]) -> str:
    """The error for words argparse did not take: each unknown flag by name with a close match; values only
    counted, never shown (a stray word may be a pasted token or password)."""
    flags = [w.split("=", 1)[0] for w in words if w.startswith("-")]
    count = sum(not w.startswith("-") for w in words) + sum("=" in w for w in words if w.startswith("-"))
    hidden = f"{count} value{'s' if count != 1 else ''}, not shown"
    if not flags:
        return f"unexpected argument{'s' if count != 1 else ''} ({hidden}); the only command is 'check', " \
               "and every value follows its flag"
    parts = []
    for flag in flags:
        near = _close_flag(flag, known)
        parts.append(f"unknown flag {flag}" + (f" (did you mean {near}?)" if near else ""))
    return "; ".join(parts) + (f" ({hidden})" if count else "") + "; see --help"


def build_parser() -> _QuietParser:
    parser = _QuietParser(
        prog="pingaway-exporter",
        description="Prometheus exporter for the Pingaway cloud switchboard. "
                    "Every flag can also be set through the environment variable shown with it; "
                    "a flag on the command line wins.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # Otherwise "--pingaway.password X" would be taken for --pingaway.password-file, and a
        # secret typed as a flag value would be used as a path and shown in the error.
        allow_abbrev=False,
        epilog="commands:\n  check    fetch once with the given flags, print a summary, exit non-zero on failure;\n"
               "           it may stand anywhere on the line: 'pingaway-exporter --demo check'",
    )
    # No choices=: a stray word (the value of a mistyped flag) would be refused as "argument check" instead of
    # naming the flag; load() sorts the words out.
    parser.add_argument("command", nargs="*", metavar="check",
                        help="Fetch once, print a summary and exit non-zero on failure, instead of serving.")
    for f in FLAGS:
        shown = default_text(f)
        text = f"{f.help} [env {f.env}" + (f"; default {shown}]" if shown is not None else "]")
        if f.switch:
            parser.add_argument(f.flag, dest=f.dest, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        else:
            parser.add_argument(f.flag, dest=f.dest, default=None, metavar=f.metavar, help=text)
    parser.add_argument("--check", action="store_true", default=False,
                        help="Fetch once, print a summary and exit non-zero on failure (same as 'check').")
    parser.add_argument("--version", action="version", version=f"pingaway-exporter {__version__}")
    return parser


def default_text(f: Flag) -> str | None:
    """A flag's default as a person would type it, for --help; None when there is none to show."""
    value = f.default
    if value is None:
        return None
    if f.switch:
        return "on" if value else "off"
    if f.parse in (values.duration, values.nonneg_duration):
        return format_duration(float(value))  # type: ignore[arg-type]
    if f.parse is values.size and isinstance(value, int) and value and value % (1 << 20) == 0:
        return f"{value >> 20}MiB"
    if isinstance(value, tuple):
        host, port = value
        return f"{host}:{port}" if host else f":{port} (all interfaces)"
    return str(value)


def load(argv: list[str], environ: Mapping[str, str]) -> Flags:
    """Build the config from argv and the environment, or raise ``ConfigError``."""
    parser = build_parser()
    ns, extra = parser.parse_known_args(list(argv))
    words = [w for w in ns.command if w != "check"] + [w for w in extra if w != "check"]
    check = "check" in ns.command or "check" in extra
    if words:
        known = [f.flag for f in FLAGS] + [f"--no-{f.flag[2:]}" for f in FLAGS if f.switch]
        parser.fail(unknown_words(words, [*known, "--check", "--version", "--help"]))
    # Each value has the type its Flag's parser returns; the Flags fields of the same names, declare them.
    parsed: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in FLAGS:
        raw = getattr(ns, f.dest)
        if raw is not None:
            where = f.flag
            if f.switch:
                parsed[f.dest] = bool(raw)
                sources[f.dest] = where
                continue
        elif f.env in environ:
            raw, where = environ[f.env], f.env
        else:
            parsed[f.dest] = f.default
            sources[f.dest] = "default"
            continue
        try:
            parsed[f.dest] = f.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {shorten(str(exc), 300)}") from None  # scrubbed and bounded
        sources[f.dest] = where
    token_file = parsed.pop("token_file")
    password = resolve_password(parsed["username"], parsed.pop("password_file"), sources, environ)
    # With --config.file, credentials may instead belong to the targets it declares;
    # main() checks that once the file has been read.
    token = resolve_token(token_file, sources.get("token_file", "default"), environ,
                          bool(parsed["demo"]) or password is not None or parsed.get("config_file") is not None)
    parsed["password"] = password
    parsed["web_config"] = resolve_web_config(parsed.pop("web_config_file"), sources.get("web_config_file", ""))
    return Flags(token=token, check=check or ns.check, sources=sources, **parsed)


NO_CREDENTIALS = ("no token: set --pingaway.token-file, PINGAWAY_TOKEN_FILE or PINGAWAY_TOKEN, "
                  "or --pingaway.username with a password, or declare targets in --config.file (or try --demo)")


def resolve_token(token_file: str | None, where: str, environ: Mapping[str, str], demo: bool) -> SecretSource | None:
    if token_file is not None:
        if where == "PINGAWAY_TOKEN_FILE" and environ.get(TOKEN_ENV):
            raise ConfigError("PINGAWAY_TOKEN and PINGAWAY_TOKEN_FILE are both set; keep one")
        if not token_file:
            raise ConfigError(f"{where}: empty path")
        return SecretSource(f"token file ({where})", path=str(token_file))
    if environ.get(TOKEN_ENV):
        return SecretSource(f"token ({TOKEN_ENV})", value=environ[TOKEN_ENV])
    if demo:
        return None
    raise ConfigError(NO_CREDENTIALS)


def resolve_password(user: str | None, password_file: str | None, sources: Mapping[str, str],
                     environ: Mapping[str, str]) -> SecretSource | None:
    """The password for Basic login: a file (re-read on change) or PINGAWAY_PASSWORD, never a flag value."""
    where = sources.get("password_file", "default")
    source = None
    if password_file is not None:
        if where == "PINGAWAY_PASSWORD_FILE" and environ.get(PASSWORD_ENV):
            raise ConfigError("PINGAWAY_PASSWORD and PINGAWAY_PASSWORD_FILE are both set; keep one")
        if not password_file:
            raise ConfigError(f"{where}: empty path")
        source = SecretSource(f"password file ({where})", path=str(password_file))
    elif environ.get(PASSWORD_ENV):
        where = PASSWORD_ENV
        source = SecretSource(f"password ({PASSWORD_ENV})", value=environ[PASSWORD_ENV])
    if user is None and source is not None:
        raise ConfigError(f"{where}: a password is set but no user name; set --pingaway.username")
    if user is not None and source is None:
        raise ConfigError(f"{sources.get('username')}: no password; set --pingaway.password-file, "
                          f"PINGAWAY_PASSWORD_FILE or {PASSWORD_ENV}")
    return source


def resolve_web_config(path: str | None, where: str) -> WebConfig | None:
    if path is None:
        return None
    if not path:
        raise ConfigError(f"{where}: empty path")
    try:
        return load_web_config(str(path), where)
    except WebConfigError as exc:
        raise ConfigError(str(exc)) from None
