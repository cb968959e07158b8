"""--web.config.file follows the file while serving: a reload in its own thread, never stalling the port."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from pingaway_exporter.config import webconfig
from pingaway_exporter.web.rate_limit import RateLimiter

pytest.importorskip("cryptography", reason="the test extra installs cryptography for the throwaway CA")
from tests.helpers.tls import PASSWORD, USER, bcrypt_hash, write_config


def test_a_removed_user_is_refused_on_an_open_keep_alive_connection(sim, exporter_factory, tmp_path):
    path = write_config(tmp_path, f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n"
                                  f"  other: {bcrypt_hash('x')}\n")
    exp = exporter_factory(sim, web_config=webconfig.load(path))
    with httpx.Client(auth=(USER, PASSWORD), timeout=10) as client:  # one keep-alive connection
        assert client.get(exp.server.url("/-/ready")).status_code == 200
        time.sleep(1.1)  # a new mtime for certain
        write_config(tmp_path, f"basic_auth_users:\n  other: {bcrypt_hash('x')}\n")
        changed = time.monotonic()
        while client.get(exp.server.url("/-/ready")).status_code != 401:
            assert time.monotonic() - changed < 3.0, "the removed user still had access after 3 s"
            time.sleep(0.1)


def test_scrapes_answer_while_a_reload_takes_seconds(sim, exporter_factory, tmp_path):
    path = write_config(tmp_path, f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n")
    exp = exporter_factory(sim, web_config=webconfig.load(path))
    loading, release = threading.Event(), threading.Event()

    def slow_load(p: str) -> webconfig.WebConfig:  # a slow disk: the read takes seconds
        loading.set()
        release.wait(20)
        return webconfig.load(p)

    exp.server.web_config_watch.loader = slow_load
    time.sleep(1.1)
    write_config(tmp_path, f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n  new: {bcrypt_hash('n')}\n")
    assert loading.wait(10), "the change was not noticed"
    try:
        for _ in range(3):  # new connections each time: accept, read and answer all go on during the load
            assert httpx.get(exp.url, auth=(USER, PASSWORD), timeout=5).status_code == 200
        # the new file is not in force until its load has finished
        assert httpx.get(exp.server.url("/-/ready"), auth=("new", "n"), timeout=5).status_code == 401
    finally:
        release.set()
    end = time.monotonic() + 10
    while httpx.get(exp.server.url("/-/ready"), auth=("new", "n"), timeout=5).status_code != 200:
        assert time.monotonic() < end, "the new config never came into force"
        time.sleep(0.1)


def test_rate_limiter_is_a_token_bucket_as_golang_x_time_rate():
    now = [100.0]
    limiter = RateLimiter(1.0, 2, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(3)] == [True, True, False]  # starts full: burst tokens
    now[0] += 0.5
    assert not limiter.allow()
    now[0] += 0.5
    assert limiter.allow() and not limiter.allow()  # one token per interval
    now[0] += 60
    assert [limiter.allow() for _ in range(3)] == [True, True, False]  # never more than burst
    never = RateLimiter(1.0, 0, clock=lambda: now[0])
    now[0] += 3600
    assert not never.allow()  # burst 0: nothing is ever allowed, as rate.Limiter


def test_rate_limit_answers_429(sim, exporter_factory, tmp_path):
    path = write_config(tmp_path, "rate_limit:\n  interval: 1s\n  burst: 0\n")  # the toolkit's own case
    exp = exporter_factory(sim, web_config=webconfig.load(path))
    assert httpx.get(exp.server.url("/-/healthy"), timeout=5).status_code == 429
    path = write_config(tmp_path, "rate_limit:\n  interval: 0\n  burst: 0\n", name="off.yml")
    assert webconfig.load(path).rate_limit is None  # interval 0: no limiter, as the toolkit
