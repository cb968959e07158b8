"""web.routes: each route through an in-process server (``exporter_factory``, or an ExporterServer without a
target), what they say while the config file loads, and ``scrape_budget``."""

from __future__ import annotations

import gzip
import threading
import time
from urllib.parse import parse_qs

import httpx
import pytest

from pingaway_exporter.config import webconfig
from pingaway_exporter.config.file import load_file
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.simulator import Simulator
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.routes import LOADING, SCRAPE_TIMEOUT_HEADER, scrape_budget, target_names
from pingaway_exporter.web.server import ExporterServer
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.metrics_util import samples, value
from tests.helpers.probe import ProbeExporter
from tests.helpers.tls import PASSWORD, USER, bcrypt_hash, write_config

pytestmark = pytest.mark.unit

WAIT = 15.0
OPENMETRICS = "application/openmetrics-text; version=1.0.0"




def get(server: ExporterServer, path: str, **kw) -> httpx.Response:
    return httpx.get(server.url(path), timeout=WAIT, **kw)


def test_the_landing_page(sim, exporter_factory):
    running = exporter_factory(sim)
    resp = running.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Pingaway Exporter</h1>" in resp.text and 'href="/metrics"' in resp.text


def test_metrics_scrapes_the_target(sim, exporter_factory):
    resp = exporter_factory(sim).get()
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    parsed = samples(resp.text)
    assert value(parsed, "pingaway_up") == 1
    assert "process_cpu_seconds_total" in resp.text  # the runtime metrics come along


def test_metrics_in_openmetrics_and_gzip(sim, exporter_factory):
    running = exporter_factory(sim)
    with httpx.Client(timeout=WAIT) as client:
        resp = client.get(running.url, headers={"Accept": OPENMETRICS, "Accept-Encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.text.endswith("# EOF\n")  # httpx has undone the gzip


def test_head_on_metrics_makes_no_upstream_call(sim, exporter_factory):
    running = exporter_factory(sim)
    resp = httpx.head(running.url, headers={"Accept-Encoding": "gzip"}, timeout=WAIT)
    assert resp.status_code == 200 and resp.headers["content-encoding"] == "gzip"
    assert running.target.last_outcome is None


def test_metrics_without_a_target_says_what_runs(app_server):
    resp = get(app_server(), "/metrics")
    assert resp.status_code == 200
    assert "pingaway_up" not in resp.text
    assert "process_cpu_seconds_total" in resp.text


def test_a_custom_telemetry_path(app_server):
    server = app_server(telemetry_path="/custom")
    assert get(server, "/custom").status_code == 200
    assert get(server, "/metrics").status_code == 404


@pytest.mark.parametrize(("query", "says"), [
    ("", "exactly one target=NAME"),
    ("?target=", "exactly one target=NAME"),
    ("?target=a&target=b", "exactly one target=NAME"),
    ("?target=acme", "unknown target 'acme'"),
])
def test_probe_errors(app_server, query, says):
    resp = get(app_server(), "/probe" + query)
    assert resp.status_code == 400
    assert says in resp.text
    if "unknown" in says:
        assert "(none are declared)" in resp.text


def test_probe_does_not_echo_a_long_name_whole(app_server):
    resp = get(app_server(), "/probe?target=" + "x" * 500)
    assert resp.status_code == 400 and "x" * 64 in resp.text and "x" * 65 not in resp.text


def test_healthy_and_ready(app_server):
    server = app_server()
    assert (get(server, "/-/healthy").status_code, get(server, "/-/healthy").text) == (200, "Healthy\n")
    assert get(server, "/-/ready").status_code == 200
    server.ready.clear()
    resp = get(server, "/-/ready")
    assert (resp.status_code, resp.text) == (503, "Not ready\n")


def test_sd_without_declared_targets_is_an_empty_list(app_server):
    resp = get(app_server(), "/sd")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == []


def test_unknown_paths_and_methods(app_server):
    server = app_server()
    assert get(server, "/nope").status_code == 404
    assert httpx.post(server.url("/metrics"), timeout=WAIT).status_code == 405
    assert httpx.post(server.url("/metrics"), timeout=WAIT).headers["allow"] == "GET, HEAD"
    assert httpx.post(server.url("/nope"), timeout=WAIT).status_code == 404
    resp = httpx.request("DELETE", server.url("/metrics"), timeout=WAIT)
    assert resp.status_code == 501 and "DELETE" in resp.text


def test_reload_is_post_only(app_server):
    resp = get(app_server(enable_lifecycle=True), "/-/reload")
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"


def test_reload_without_lifecycle_is_forbidden(app_server):
    resp = httpx.post(app_server().url("/-/reload"), timeout=WAIT)
    assert resp.status_code == 403 and "--web.enable-lifecycle" in resp.text


def reloader(tmp_path, text: str) -> SettingsReloader:
    path = tmp_path / "pingaway.yml"
    path.write_text(text)
    return SettingsReloader(str(path), load_file(str(path)))


def test_reload_with_lifecycle_reloads_the_config(app_server, tmp_path):
    config = reloader(tmp_path, "{}\n")
    server = app_server(enable_lifecycle=True, config=config)
    resp = httpx.post(server.url("/-/reload"), timeout=WAIT)
    assert resp.status_code == 200
    assert config.last_reload_successful


def test_a_failed_reload_is_a_500_and_keeps_the_config(app_server, tmp_path):
    config = reloader(tmp_path, "{}\n")
    before = config.current
    server = app_server(enable_lifecycle=True, config=config)
    (tmp_path / "pingaway.yml").write_text("colour: red\n")
    resp = httpx.post(server.url("/-/reload"), timeout=WAIT)
    assert resp.status_code == 500 and "colour" in resp.text
    assert config.current is before and not config.last_reload_successful


@pytest.mark.parametrize(("header", "budget"), [
    (None, 10.0),  # no header: the cap
    ("", 10.0),
    ("nonsense", 10.0),
    ("-3", 10.0),
    ("60", 10.0),  # more than the cap: the cap
    ("5", 4.5),  # the offset kept back
    ("0.6", 0.3),  # tiny: half of itself, not less
])
def test_scrape_budget(header, budget):
    assert scrape_budget(header, 10.0, 0.5) == pytest.approx(budget)


def test_scrape_budget_is_never_zero():
    assert scrape_budget("0.001", 10.0, 0.5) == pytest.approx(0.01)


def test_the_scrape_timeout_header_is_prometheus_own():
    assert SCRAPE_TIMEOUT_HEADER == "X-Prometheus-Scrape-Timeout-Seconds"


def test_gzip_body_is_valid_on_the_wire(sim, exporter_factory):
    running = exporter_factory(sim)
    with httpx.Client(timeout=WAIT) as client, client.stream(
            "GET", running.url, headers={"Accept-Encoding": "gzip"}) as resp:
        raw = b"".join(resp.iter_raw())
    assert b"pingaway_up 1" in gzip.decompress(raw)


def test_a_cached_probe_is_answered_while_every_worker_is_busy(tmp_path):
    """/probe from the min-interval cache is answered by the selector thread (the bytes of the answer it serves
    are kept): with the one worker held by a scrape waiting on a slow upstream, a cached target still
    answers, and before the other."""
    slow, quick = (Simulator(clock=lambda: WEDNESDAY_1015).start() for _ in range(2))
    slow.set_payload(Domain(size=3).extensions(WEDNESDAY_1015))
    quick.set_payload(Domain(size=5).extensions(WEDNESDAY_1015))
    exp = ProbeExporter(tmp_path, {"slow": slow, "quick": quick}, limits=Limits(workers=1),
                        extra={"quick": {"min_interval": "300s"}})
    try:
        first = exp.probe("quick")
        assert value(samples(first.text), "pingaway_scrape_cached") == 0
        slow.set_fault("slow_headers", delay=5.0, remaining=1)
        slow_answered = threading.Event()

        def hold_the_worker() -> None:
            exp.probe("slow", scrape_timeout="4")
            slow_answered.set()

        holder = threading.Thread(target=hold_the_worker)
        holder.start()
        deadline = time.monotonic() + WAIT
        while slow.stats.in_flight == 0 and time.monotonic() < deadline:  # the worker is in the slow scrape
            time.sleep(0.01)
        assert slow.stats.in_flight == 1
        cached = exp.probe("quick")
        answered_first = not slow_answered.is_set()
        holder.join(WAIT)
        assert cached.status_code == 200 and answered_first
        got = samples(cached.text)
        assert value(got, "pingaway_scrape_cached") == 1
        assert value(got, "pingaway_users") == value(samples(first.text), "pingaway_users")
        assert quick.request_count() == 1
        moment = ("pingaway_scrape_cached ", "pingaway_data_age_seconds ", "pingaway_scrape_duration_seconds ")
        assert [line for line in cached.text.splitlines() if not line.startswith(moment)] == \
            [line for line in first.text.splitlines() if not line.startswith(moment)]
        assert value(got, "pingaway_data_age_seconds") > value(samples(first.text), "pingaway_data_age_seconds")
    finally:
        exp.close()
        slow.stop()
        quick.stop()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/metrics"), ("HEAD", "/metrics"), ("GET", "/probe?target=acme"), ("GET", "/sd"), ("GET", "/"),
    ("POST", "/-/reload"),
])
def test_while_the_config_loads_every_route_but_health_says_retry(app_server, method, path):
    server = app_server(ready=False, loaded=False, enable_lifecycle=True)
    resp = httpx.request(method, server.url(path), timeout=WAIT)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    if method != "HEAD":
        assert resp.text == LOADING and "still loading; retry" in resp.text


def test_while_the_config_loads_the_fixed_answers_stay(app_server):
    server = app_server(ready=False, loaded=False)
    assert (get(server, "/-/healthy").status_code, get(server, "/-/ready").status_code) == (200, 503)
    assert get(server, "/nope").status_code == 404
    assert httpx.post(server.url("/metrics"), timeout=WAIT).status_code == 405
    assert httpx.request("DELETE", server.url("/sd"), timeout=WAIT).status_code == 501


def test_while_the_config_loads_auth_comes_first(app_server, tmp_path):
    """With Basic auth a request goes to a worker (bcrypt); there too: 401 without the password, 503 with it."""
    web = webconfig.load(write_config(tmp_path, f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n"))
    server = app_server(web, ready=False, loaded=False)
    assert get(server, "/metrics").status_code == 401
    assert get(server, "/metrics", auth=(USER, "wrong")).status_code == 401
    resp = get(server, "/metrics", auth=(USER, PASSWORD))
    assert (resp.status_code, resp.text) == (503, LOADING)
    assert get(server, "/-/ready", auth=(USER, PASSWORD)).status_code == 503
    assert get(server, "/-/healthy", auth=(USER, PASSWORD)).status_code == 200
    server.load(None, WebApp(web_config=web))
    assert get(server, "/metrics", auth=(USER, PASSWORD)).status_code == 200


@pytest.mark.unit
@pytest.mark.parametrize("query", [
    "target=shop", "target=", "target=a%20b", "target=a+b", "target=a&target=b", "other=1&target=x", "x=1",
    "target=v%C3%A4xel", "", "target=a=b", "target=%ZZ", "target=a;b", "target=x&"])
def test_target_names_read_as_parse_qs_does(query):
    assert target_names(query) == parse_qs(query, keep_blank_values=True).get("target", [])
