"""serving in process: the port answering while the loader runs, a refused load closing it, building the
declared targets, and the error that stops a start when one cannot be."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from pingaway_exporter.cli import load_all, web_app
from pingaway_exporter.config.flags import Flags, load
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.targetfiles import load_config
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import UpstreamSlots
from pingaway_exporter.serving import Loaded, serve, start_probe_targets
from pingaway_exporter.web.server import ExporterServer
from tests.helpers.process import ANY_PORT
from tests.helpers.served import URL, token_file, write

pytestmark = pytest.mark.unit


def test_start_pool_builds_every_declared_target(tmp_path):
    token_file(tmp_path / "tok")
    write(tmp_path / "c.yml", {"targets": [{"name": f"d{i}", "url": URL, "token_file": "tok"} for i in range(3)]})
    pool = TargetPool(SettingsReloader(str(tmp_path / "c.yml"), load_config(str(tmp_path / "c.yml"))),
                      TargetDefaults(token_opaque=True), UpstreamSlots(4))
    try:
        assert start_probe_targets(pool, str(tmp_path / "c.yml"))
        assert pool.names() == ["d0", "d1", "d2"]
    finally:
        pool.close()


def test_a_target_that_cannot_be_built_stops_the_start_with_its_name(tmp_path, capsys):
    token_file(tmp_path / "tok")
    write(tmp_path / "c.yml", {"targets": [{"name": "acme", "url": URL, "token_file": "tok"}]})
    pool = TargetPool(SettingsReloader(str(tmp_path / "c.yml"), load_config(str(tmp_path / "c.yml"))),
                      TargetDefaults(), UpstreamSlots(4))  # not opaque: the token is not a JWT
    try:
        assert not start_probe_targets(pool, str(tmp_path / "c.yml"))
    finally:
        pool.close()
    err = capsys.readouterr().err
    assert err.startswith("pingaway-exporter: error: ") and "acme" in err and "not a JWT" in err
    assert "opaque-token-0123456789" not in err


def declared(tmp_path, n: int = 3) -> Flags:
    """The flags of an exporter serving ``n`` declared targets (opaque tokens, nothing scraped), on any port."""
    token_file(tmp_path / "tok")
    write(tmp_path / "c.yml", {"targets": [{"name": f"d{i}", "url": URL, "token_file": "tok"} for i in range(n)]})
    return load(["--config.file", str(tmp_path / "c.yml"), "--pingaway.token-opaque", *ANY_PORT], {})


def opened(cfg: Flags) -> ExporterServer:
    """The port as ``cli`` opens it: the flags' settings only, not loaded."""
    return ExporterServer(cfg.listen, None, web_app(cfg, None, None, SettingsReloader(), None), loaded=False)


def statuses(server: ExporterServer, *paths: str) -> list[int]:
    return [httpx.get(server.url(path), timeout=10).status_code for path in paths]


def test_serve_answers_while_loading_then_serves_what_was_loaded(tmp_path):
    """The loader runs with the port answering (it asks the port itself); then /sd lists what it loaded."""
    cfg = declared(tmp_path)
    server = opened(cfg)
    seen: dict[str, list[int]] = {}
    before = signal.getsignal(signal.SIGTERM)

    def load_asking_the_port() -> Loaded:
        seen["loading"] = statuses(server, "/-/healthy", "/-/ready", "/metrics", "/sd")
        return load_all(cfg, time.time)

    def once_ready() -> None:
        if server.ready.wait(30):
            seen["ready"] = statuses(server, "/-/ready", "/metrics")
            seen["sd"] = [len(g["targets"]) for g in httpx.get(server.url("/sd"), timeout=10).json()]
        server.shutdown()  # as SIGTERM would

    watcher = threading.Thread(target=once_ready)
    watcher.start()
    assert serve(server, load_asking_the_port) == 0
    watcher.join(30)
    assert seen == {"loading": [200, 503, 503, 503], "ready": [200, 200], "sd": [3]}
    assert signal.getsignal(signal.SIGTERM) is before  # serve put the handlers back


def test_a_refused_load_closes_the_port_and_goes_up(tmp_path):
    """What the loader raises (cli's exit, its error printed) reaches the caller, once the port is closed."""
    cfg = declared(tmp_path)
    server = opened(cfg)
    url = server.url("/-/healthy")
    before = signal.getsignal(signal.SIGTERM)

    def refuse() -> Loaded:
        assert statuses(server, "/-/healthy", "/-/ready") == [200, 503]
        raise LookupError("refused")

    with pytest.raises(LookupError, match="refused"):
        serve(server, refuse)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=10)
    assert signal.getsignal(signal.SIGTERM) is before


def test_loaded_close_closes_every_target(tmp_path):
    run = load_all(declared(tmp_path), time.time)
    probes = run.pool.probes()
    assert [p.target.name for p in probes] == ["d0", "d1", "d2"]
    run.close()
    assert run.pool.names() == []
