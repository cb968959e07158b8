"""upstream/resolve.py: host names looked up by the deadline, on bounded threads; and the transport using it.

The lookups are functions the test holds back with an event, so "the resolver is not answering" is a fact,
not a race; one test asks the system's own resolver for ``localhost``. Waits in real seconds are short
(a lookup's timeout) or generous bounds that only a broken resolver would reach.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.network import DeadlineTransport, bounded_by
from pingaway_exporter.upstream.resolve import Resolver
from tests.helpers.resolver import HeldLookup, infos
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.unit

WAIT = 10.0


def test_a_literal_address_is_not_looked_up():
    def never(*args: object) -> list[tuple[object, ...]]:
        raise AssertionError("a literal address was looked up")

    r = Resolver(lookup=never)
    assert r.addresses("127.0.0.1", 80, 1.0) == ["127.0.0.1"]
    assert r.addresses("::1", 80, 1.0) == ["::1"]
    assert r.addresses("fe80::1%lo", 80, 1.0) == ["fe80::1%lo"]


def test_a_name_gives_its_addresses_in_the_resolvers_order_once_each():
    r = Resolver(lookup=lambda host, port, *a: infos("2001:db8::1", "192.0.2.1", "192.0.2.1", port=port))
    assert r.addresses("pbx.example", 443, 1.0) == ["2001:db8::1", "192.0.2.1"]
    wait_until(lambda: r.running == 0, "the lookup's thread ends")


def test_the_systems_resolver_answers_for_localhost():
    addresses = Resolver().addresses("localhost", 80, WAIT)
    assert {"127.0.0.1", "::1"} & set(addresses)


def test_a_failed_lookup_is_an_oserror_with_its_text_for_every_waiter():
    def fails(*args: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    r = Resolver(lookup=fails)
    with pytest.raises(OSError, match="Name or service not known"):
        r.addresses("nowhere.example", 80, WAIT)
    with pytest.raises(OSError, match="no address found"):
        Resolver(lookup=lambda *a: []).addresses("empty.example", 80, WAIT)


def test_a_lookup_that_does_not_answer_ends_at_the_timeout_and_is_shared_while_it_runs():
    lookup = HeldLookup()
    r = Resolver(lookup=lookup)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"name lookup of pbx\.example did not finish"):
        r.addresses("pbx.example", 443, 0.2)
    assert time.monotonic() - started < 2.0  # by its timeout, the resolver still silent
    with pytest.raises(TimeoutError):
        r.addresses("pbx.example", 443, 0.05)  # a second scrape waits for the same lookup
    assert lookup.asked == ["pbx.example"] and r.running == 1
    lookup.release.set()
    wait_until(lambda: r.running == 0, "the lookup ends once the resolver answers")
    assert r.addresses("pbx.example", 443, WAIT) == ["192.0.2.7"]
    assert lookup.asked == ["pbx.example", "pbx.example"]  # answers are not kept: the next connection asks again


def test_at_most_limit_lookups_run_at_once():
    lookup = HeldLookup()
    r = Resolver(limit=2, lookup=lookup)
    for host in ("a.example", "b.example"):
        with pytest.raises(TimeoutError):
            r.addresses(host, 443, 0.01)
    with pytest.raises(OSError, match="2 name lookups are still running"):
        r.addresses("c.example", 443, WAIT)  # at once: no third thread
    with pytest.raises(TimeoutError):
        r.addresses("a.example", 443, 0.01)  # a host already being looked up still joins its lookup
    assert lookup.asked == ["a.example", "b.example"]
    lookup.release.set()
    wait_until(lambda: r.running == 0, "the held lookups end")
    assert r.addresses("c.example", 443, WAIT) == ["192.0.2.7"]


# ---- the transport looks names up by the call's deadline ------------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@contextlib.contextmanager
def answering_once() -> Iterator[tuple[int, list[bytes]]]:
    """A server on 127.0.0.1 (only) that answers one request with ``OK``: its port, and the heads it read."""
    heads: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(WAIT)

        def serve() -> None:
            with contextlib.suppress(OSError):
                conn, _ = sock.accept()
                with conn:
                    conn.settimeout(WAIT)
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        buf += conn.recv(4096)
                    heads.append(buf)
                    conn.sendall(OK)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield sock.getsockname()[1], heads
        thread.join(WAIT)

def test_a_silent_resolver_ends_the_call_by_its_deadline():
    lookup = HeldLookup()
    transport = DeadlineTransport(resolver=Resolver(lookup=lookup))
    try:
        with httpx.Client(transport=transport, timeout=httpx.Timeout(3600.0)) as c, \
                bounded_by(Deadline(time.monotonic() + 0.3)):
            started = time.monotonic()
            with pytest.raises(httpx.ConnectTimeout, match=r"name lookup of pbx\.example"):
                c.get("http://pbx.example/api/extensions/")
            assert time.monotonic() - started < 2.0
    finally:
        lookup.release.set()
        transport.close()


def test_each_address_is_tried_in_turn_until_one_connects():
    with answering_once() as (port, heads):
        # nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1 only): refused, then the next address
        lookup = HeldLookup(infos("127.0.0.2", "127.0.0.1", port=port))
        lookup.release.set()
        transport = DeadlineTransport(resolver=Resolver(lookup=lookup))
        try:
            with httpx.Client(transport=transport, timeout=httpx.Timeout(WAIT)) as c:
                resp = c.get(f"http://pbx.example:{port}/extensions/")
            assert resp.status_code == 200 and resp.text == "ok"
        finally:
            transport.close()
    assert len(heads) == 1 and b"\r\nhost: pbx.example:" in heads[0].lower()  # the name, not the address


def test_when_no_address_connects_the_last_refusal_is_the_error():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    lookup = HeldLookup(infos("127.0.0.2", "127.0.0.1", port=port))
    lookup.release.set()
    transport = DeadlineTransport(resolver=Resolver(lookup=lookup))
    try:
        with httpx.Client(transport=transport, timeout=httpx.Timeout(WAIT)) as c, pytest.raises(httpx.ConnectError):
            c.get(f"http://pbx.example:{port}/extensions/")
    finally:
        transport.close()


def test_a_lookup_whose_thread_cannot_start_is_refused_and_not_kept(monkeypatch):
    r = Resolver(lookup=lambda host, port, *a: infos("192.0.2.9", port=port))

    def no_thread(self) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", no_thread)
        with pytest.raises(OSError, match=r"cannot start the name lookup of pbx\.example"):
            r.addresses("pbx.example", 443, WAIT)
    assert r.running == 0  # not left waiting for a thread that never ran
    assert r.addresses("pbx.example", 443, WAIT) == ["192.0.2.9"]  # the next try looks it up
