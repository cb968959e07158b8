"""web/workers.py in process: the bounded worker pool that turns requests into responses.

Real threads on a real pool; ``done`` collects what comes back. Every wait has a generous bound in
seconds, only so that a broken pool fails instead of hanging.
"""

from __future__ import annotations

import gc
import queue
import socket
import threading
import time
import weakref

import pytest

from pingaway_exporter.web.connection import Conn, State
from pingaway_exporter.web.protocol import Protocol, Request, Response
from pingaway_exporter.web.workers import WorkerPool

pytestmark = pytest.mark.unit

WAIT = 10.0  # seconds: only so that a broken pool fails rather than hangs


class Died(BaseException):
    """What ends a worker thread, as KeyboardInterrupt or SystemExit would."""


@pytest.fixture
def sock():
    s = socket.socket()
    yield s
    s.close()


def conn(sock: socket.socket) -> Conn:
    return Conn(sock, ("127.0.0.1", 1), 0.0, State.WORKER, Protocol(1024, 64), 0.0)


def request(target: str) -> Request:
    return Request("GET", target, "1.1", [("host", "x")])


class Harness:
    def __init__(self, size: int, handle) -> None:
        self.returned: queue.Queue[tuple[Conn, Request, Response]] = queue.Queue()
        self.pool = WorkerPool(size, handle, lambda c, r, resp: self.returned.put((c, r, resp)))

    def next(self) -> tuple[Conn, Request, Response]:
        return self.returned.get(timeout=WAIT)


def echo(req: Request) -> Response:
    return Response.text(200, req.target)


def test_a_request_is_answered_and_handed_back_with_its_connection(sock):
    h = Harness(2, echo)
    c, r = conn(sock), request("/metrics")
    h.pool.submit(c, r)
    got_c, got_r, resp = h.next()
    assert got_c is c and got_r is r
    assert resp.status == 200 and b"".join(resp.body) == b"/metrics"
    h.pool.stop()


def test_at_most_size_requests_are_handled_at_once_and_all_are_answered(sock):
    inside, most, lock = [0], [0], threading.Lock()
    three_in, release = threading.Event(), threading.Event()

    def handle(req: Request) -> Response:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            if inside[0] == 3:
                three_in.set()
        release.wait(WAIT)
        with lock:
            inside[0] -= 1
        return echo(req)

    h = Harness(3, handle)
    for i in range(12):
        h.pool.submit(conn(sock), request(f"/{i}"))
    assert three_in.wait(WAIT)
    assert h.returned.empty(), "all three workers are busy: nothing else was answered"
    release.set()
    answered = sorted(b"".join(h.next()[2].body).decode() for _ in range(12))
    assert answered == sorted(f"/{i}" for i in range(12))
    assert most[0] == 3
    h.pool.stop()


def test_an_exception_is_a_500_and_the_worker_carries_on(sock, caplog):
    def handle(req: Request) -> Response:
        if req.target == "/boom":
            raise RuntimeError("bug")
        return echo(req)

    h = Harness(1, handle)
    h.pool.submit(conn(sock), request("/boom"))
    _, _, resp = h.next()
    assert resp.status == 500 and resp.close
    assert "unexpected error serving a request" in caplog.text
    h.pool.submit(conn(sock), request("/after"))
    assert h.next()[2].status == 200
    h.pool.stop()


def test_a_worker_ended_by_a_base_exception_hands_back_a_500_and_is_replaced(sock, monkeypatch):
    ended: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: ended.append(args.exc_value))
    served_by: list[threading.Thread] = []

    def handle(req: Request) -> Response:
        served_by.append(threading.current_thread())
        if req.target == "/die":
            raise Died
        return echo(req)

    h = Harness(1, handle)
    c = conn(sock)
    h.pool.submit(c, request("/die"))
    got_c, _, resp = h.next()
    assert got_c is c and resp.status == 500 and resp.close, "the connection is handed back all the same"
    served_by[0].join(WAIT)
    assert not served_by[0].is_alive()
    assert len(ended) == 1 and isinstance(ended[0], Died)
    for i in range(3):  # a pool of one, whose only thread died, still answers
        h.pool.submit(conn(sock), request(f"/{i}"))
        assert b"".join(h.next()[2].body) == f"/{i}".encode()
    assert served_by[1] is not served_by[0] and served_by[1].is_alive()
    h.pool.stop()


def test_a_cancelled_request_is_skipped_and_a_taken_one_cannot_be_cancelled(sock):
    started, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def handle(req: Request) -> Response:
        seen.append(req.target)
        if req.target == "/first":
            started.set()
            release.wait(WAIT)
        return echo(req)

    h = Harness(1, handle)
    first, second, third = conn(sock), conn(sock), conn(sock)
    h.pool.submit(first, request("/first"))
    assert started.wait(WAIT)
    h.pool.submit(second, request("/second"))
    assert h.pool.cancel(first) is False, "a worker already has it"
    assert h.pool.cancel(second) is True
    release.set()
    h.pool.submit(third, request("/third"))
    assert h.next()[0] is first
    assert h.next()[0] is third
    assert seen == ["/first", "/third"]
    assert h.returned.empty(), "the cancelled request is never handed back"
    h.pool.stop()


def test_a_connection_submitted_again_after_a_cancel_is_served(sock):
    h = Harness(1, echo)
    c = conn(sock)
    assert h.pool.cancel(c) is True  # withdrawn before its request was queued
    h.pool.submit(c, request("/again"))  # a new request on it clears the withdrawal
    assert h.next()[0] is c
    h.pool.stop()


def test_stop_ends_every_worker_after_its_request(sock):
    threads: list[threading.Thread] = []
    busy, release = threading.Event(), threading.Event()

    def handle(req: Request) -> Response:
        threads.append(threading.current_thread())
        if req.target == "/slow":
            busy.set()
            release.wait(WAIT)
        return echo(req)

    h = Harness(2, handle)
    h.pool.submit(conn(sock), request("/slow"))
    assert busy.wait(WAIT)
    h.pool.submit(conn(sock), request("/quick"))
    assert b"".join(h.next()[2].body) == b"/quick"
    h.pool.stop()
    release.set()
    assert b"".join(h.next()[2].body) == b"/slow", "the request being served is answered"
    for t in set(threads):
        t.join(WAIT)
        assert not t.is_alive()
    assert len(set(threads)) == 2


def test_a_worker_waiting_for_its_next_request_holds_nothing_of_the_last(sock):
    """An answer can be megabytes of chunks: once handed back, the worker that made it keeps no reference."""
    kept: list[weakref.ref[Response]] = []
    handed = threading.Event()

    def done(_conn: Conn, _req: Request, resp: Response) -> None:
        kept.append(weakref.ref(resp))
        handed.set()

    pool = WorkerPool(1, lambda req: Response(200, [], (b"x" * (1 << 20),)), done)
    pool.submit(conn(sock), request("/metrics"))
    assert handed.wait(WAIT)
    end = time.monotonic() + WAIT
    while kept[0]() is not None and time.monotonic() < end:  # the worker lets go once its hand-back returns
        gc.collect()
        time.sleep(0.01)
    assert kept[0]() is None, "the idle worker still holds the answer it handed back"
    pool.stop()
