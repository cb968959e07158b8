"""Shared fixtures: the project's own simulator over real HTTP, and an exporter in front of it."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import dataclass

import httpx
import hypothesis
import pytest

from pingaway_exporter import logs
from pingaway_exporter.cli import build_target, web_app
from pingaway_exporter.config.flags import load
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.demo.simulator import Simulator
from pingaway_exporter.metrics.collector import CollectorOptions
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.upstream.auth import SessionAuth
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.server import ExporterServer

# The helpers in tests/helpers/ assert too: rewrite those asserts so a failure shows the values.
pytest.register_assert_rewrite("tests.helpers")

# Every property test in the suite is reproducible: derandomized (its examples are a function of the test alone,
# the same on every machine and clock), no example database, and the failing example's blob printed, so a red
# CI can be replayed as it ran. PINGAWAY_HYPOTHESIS_EXPLORE=1 draws fresh random examples, to hunt for bugs.
if os.environ.get("PINGAWAY_HYPOTHESIS_EXPLORE") != "1":
    hypothesis.settings.register_profile("pingaway-reproducible", derandomize=True, database=None, print_blob=True)
    hypothesis.settings.load_profile("pingaway-reproducible")

from tests.helpers.clock import WEDNESDAY_1015  # noqa: E402
from tests.helpers.figures import FIGURES  # noqa: E402
from tests.helpers.served import Served  # noqa: E402

_REPORTED: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "teardown" and FIGURES:
        report = outcome.get_result()
        report.user_properties.extend(("figure", line) for line in FIGURES)
        FIGURES.clear()


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _REPORTED.extend(value for key, value in report.user_properties if key == "figure")


def pytest_terminal_summary(terminalreporter):
    if _REPORTED:
        terminalreporter.section("measured figures")
        for line in _REPORTED:
            terminalreporter.write_line(line)


@pytest.fixture
def clean_env(monkeypatch):
    """This process's environment without any ``PINGAWAY_*`` variable, for tests that run ``main()`` in process."""
    for key in list(os.environ):
        if key.startswith("PINGAWAY_"):
            monkeypatch.delenv(key)


@pytest.fixture
def sim():
    simulator = Simulator(clock=lambda: WEDNESDAY_1015).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def served():
    """``served(config, ...)``: a ``tests.helpers.served.Served`` exporter of that config file, closed after."""
    made = []

    def make(*args, **kwargs):
        s = Served(*args, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """main() points the root logger at the sys.stderr of its test; later threads must not write to it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def log_output():
    """Everything the exporter logs, at debug level, formatted as it would reach stderr."""
    stream = io.StringIO()
    handler = logs.setup("debug", "logfmt", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


class _Unmasked(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.name} {record.getMessage()} {getattr(record, 'fields', '')}"


@pytest.fixture
def unmasked_log(log_output):
    """The same records as ``log_output`` before any redaction: what would reach stderr without the mask.

    A secret scan of ``log_output`` alone cannot tell "never logged" from "logged and masked"; comparing the
    two streams can.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Unmasked())
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)


@dataclass
class Running:
    server: ExporterServer
    target: Target
    sim: Simulator | None

    @property
    def url(self) -> str:
        return self.server.url(self.server.options.telemetry_path)

    def get(self, path: str | None = None, timeout: float = 15.0, **kw) -> httpx.Response:
        return httpx.get(self.server.url(path) if path else self.url, timeout=timeout, **kw)

    @property
    def session(self) -> SessionAuth | None:
        return self.target.client.session


@pytest.fixture
def pki(tmp_path):
    """A throwaway CA with a server, a client and a stranger's (another CA's) certificate, for real TLS."""
    pytest.importorskip("cryptography", reason="the test extra installs cryptography for the throwaway CA")
    from tests.helpers.certs import CA

    ca = CA(tmp_path)
    return {"ca": ca, "server": ca.issue("server"), "client": ca.issue("client", client=True,
                                                                      dns=("prometheus.example",), ips=()),
            "stranger": CA(tmp_path, "other CA").issue("stranger", client=True, dns=("prometheus.example",), ips=())}


@pytest.fixture
def app_server():
    """``start(web_config=None, ready=True, loaded=True, **app)``: an ExporterServer with no target of its own
    (only /probe targets, if the app declares any), serving in this process; stopped after the test. With
    ``loaded=False`` it answers as while the config file loads, until ``server.load`` is called."""
    servers: list[ExporterServer] = []

    def start(web_config=None, ready: bool = True, loaded: bool = True, **app) -> ExporterServer:
        server = ExporterServer(("127.0.0.1", 0), None, WebApp(web_config=web_config, **app), loaded=loaded)
        if ready:
            server.ready.set()
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def exporter_factory():
    """An exporter in front of a simulator, in this process, built by the production wiring: the flags are
    parsed by ``config.flags.load`` and the target and the web side built by ``cli.build_target`` and
    ``cli.web_app``, with the production defaults except ``min_interval`` (0 here: every scrape makes its
    upstream call unless a test asks for the cache)."""
    started: list[Running] = []

    def make(sim: Simulator | None = None, *, url: str | None = None, token: str | None = None,
             token_file: str | None = None, options: CollectorOptions | None = None,
             timeout: float = 5.0, offset: float = 0.5, clock=None, max_body: int = 64 << 20,
             username: str | None = None, password: str | None = None, password_file: str | None = None,
             bearer: bool = True, opaque: bool = False, warn_before: float = 7 * 86400,
             web_config=None, config=None, lifecycle: bool = False, limits: Limits | None = None,
             min_interval: float = 0.0) -> Running:
        """An exporter in front of ``sim``. With ``username``, Basic login is configured too;
        ``bearer=False`` leaves the token out so that the session is the only way in."""
        collector = options or CollectorOptions()
        argv = ["--pingaway.url", url or sim.url, "--pingaway.timeout", f"{timeout:g}s",
                "--web.timeout-offset", f"{offset:g}s", "--pingaway.max-response-size", str(max_body),
                "--pingaway.token-expiry-warning", f"{warn_before:g}s", "--pingaway.min-interval", f"{min_interval:g}s",
                "--collector.profile-limit", str(collector.profile_limit)]
        argv += [] if collector.per_extension else ["--no-collector.extensions"]
        argv += ["--collector.extensions.email"] if collector.include_email else []
        argv += ["--pingaway.token-opaque"] if opaque else []
        argv += ["--web.enable-lifecycle"] if lifecycle else []
        environ: dict[str, str] = {}
        if token_file is not None:
            argv += ["--pingaway.token-file", token_file]
        elif bearer:
            environ["PINGAWAY_TOKEN"] = token if token is not None else sim.issue_token()
        if username is not None:
            argv += ["--pingaway.username", username]
            if password_file:
                argv += ["--pingaway.password-file", password_file]
            else:
                environ["PINGAWAY_PASSWORD"] = password
        cfg = load(argv, environ)
        # Tokens are judged on the clock they were issued on: the simulator's pinned clock, not the real one.
        clock = clock or (sim.clock if sim is not None else time.time)
        target, _ = build_target(cfg, clock=clock)
        reloader = config if config is not None else SettingsReloader()
        web = web_app(cfg, target, None, reloader, None)
        web.web_config = web_config  # a WebConfig the test built (--web.config.file takes a path)
        web.limits = limits or web.limits
        server = ExporterServer(("127.0.0.1", 0), target, web)
        server.ready.set()
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        running = Running(server, target, sim)
        started.append(running)
        return running

    yield make
    for r in started:
        r.server.shutdown()
        r.server.server_close()
        r.target.client.close()
