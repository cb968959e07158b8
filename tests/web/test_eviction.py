"""web/eviction.py in process: which connection goes at the connection cap.

Connections are built as the transport keeps them: a ``Conn`` with its ``Protocol`` fed the bytes the client
sent (``received``, and ``requests`` once a head is complete), ``empty`` the ones that have sent nothing, in
the order they were accepted. ``now`` is passed in: nothing reads a clock.
"""

from __future__ import annotations

import socket

import pytest

from pingaway_exporter.web.connection import Conn, State
from pingaway_exporter.web.eviction import SLOW_AFTER, pick
from pingaway_exporter.web.protocol import Protocol

pytestmark = pytest.mark.unit

NOW = 1000.0
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def sock():
    s = socket.socket()  # never used by pick: each Conn needs one
    yield s
    s.close()


class World:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conns: list[Conn] = []
        self.cancelled: list[Conn] = []
        self.refuse_cancel: set[Conn] = set()

    def conn(self, age: float, sent: bytes = b"", state: State = State.HEAD, *, complete: bool = False,
             deadline: float = NOW + 60) -> Conn:
        proto = Protocol(8192, 1024)
        proto.feed(sent)
        if complete:
            assert proto.next() is not None
        c = Conn(self.sock, ("127.0.0.1", 1), deadline, state, proto, NOW - age)
        self.conns.append(c)
        return c

    def cancel(self, c: Conn) -> bool:
        if c in self.refuse_cancel:
            return False
        self.cancelled.append(c)
        return True

    def pick(self) -> Conn | None:
        empty = [c for c in self.conns if c.proto.received == 0]
        return pick(self.conns, empty, NOW, self.cancel)


@pytest.fixture
def world(sock):
    return World(sock)


def test_nothing_open_nothing_to_close(world):
    assert world.pick() is None


def test_an_empty_connection_idle_a_second_goes_first_the_oldest(world):
    world.conn(5, b"GET /metr")  # slow and incomplete
    world.conn(0.5, REQUEST, State.IDLE, complete=True)
    oldest = world.conn(3)
    world.conn(2)
    assert world.pick() is oldest


def test_an_empty_connection_under_a_second_old_is_spared_while_a_slow_one_is_there(world):
    """A scraper's connection may be accepted a moment before its head arrives (under load, more than 50 ms):
    a trickling head goes before it."""
    fresh_empty = world.conn(SLOW_AFTER / 2)
    slow = world.conn(SLOW_AFTER * 2, b"GET / HT")
    assert world.pick() is slow
    world.conns.remove(slow)
    assert world.pick() is fresh_empty  # with nothing slow, it goes after all


def test_slow_connections_go_least_bytes_per_second_first(world):
    a = world.conn(10, b"x" * 100)  # 10 B/s
    b = world.conn(2, b"x" * 4)  # 2 B/s: least per second, though not least in total age
    c = world.conn(4, b"x" * 40)  # 10 B/s
    assert world.pick() is b
    world.conns.remove(b)
    assert world.pick() is a, "of equal rates, the older goes first"
    assert c in world.conns


def test_a_head_arriving_at_a_normal_pace_outlasts_a_slow_one(world):
    quick = world.conn(SLOW_AFTER / 2, b"GET / HTTP/1.1\r\n")  # not slow yet, sent more
    slow = world.conn(SLOW_AFTER, b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n")
    assert world.pick() is slow
    world.conns.remove(slow)
    assert world.pick() is quick


def test_among_fresh_incomplete_heads_the_one_that_sent_least_goes(world):
    world.conn(0.2, b"GET /metrics HTTP/1.1\r\n")
    least = world.conn(0.1, b"GE")
    world.conn(0.3, b"GET /")
    assert world.pick() is least


def test_a_tls_handshake_counts_as_an_incomplete_request(world):
    world.conn(0.3, b"x" * 300, State.HANDSHAKE)
    hs = world.conn(0.3, b"x" * 10, State.HANDSHAKE)
    assert world.pick() is hs


def test_connections_that_completed_a_request_go_after_every_incomplete_one(world):
    idle = world.conn(100, REQUEST, State.IDLE, complete=True, deadline=NOW + 1)
    waiting = world.conn(100, REQUEST, State.WORKER, complete=True)
    incomplete = world.conn(0.1, b"G" * 500)
    assert world.pick() is incomplete
    assert world.cancelled == [], "no queued request withdrawn while an incomplete one could go"
    world.conns.remove(incomplete)
    assert world.pick() is waiting and world.cancelled == [waiting]
    world.conns.remove(waiting)
    assert world.pick() is idle


def test_a_request_a_worker_already_has_is_never_chosen(world):
    taken = world.conn(10, REQUEST, State.WORKER, complete=True)
    world.refuse_cancel.add(taken)
    idle = world.conn(1, REQUEST, State.IDLE, complete=True)
    assert world.pick() is idle
    world.conns.remove(idle)
    assert world.pick() is None


def test_the_idle_connection_idle_longest_goes(world):
    world.conn(50, REQUEST, State.IDLE, complete=True, deadline=NOW + 30)
    longest = world.conn(1, REQUEST, State.IDLE, complete=True, deadline=NOW + 5)  # its keep-alive ends first
    world.conn(20, REQUEST, State.IDLE, complete=True, deadline=NOW + 40)
    assert world.pick() is longest


def test_a_connection_being_answered_is_never_chosen(world):
    world.conn(100, REQUEST, State.WRITING, complete=True)
    world.conn(100, REQUEST, State.WRITING, complete=True)
    assert world.pick() is None


def test_among_empty_connections_under_a_second_old_the_oldest_goes_first(world):
    """A flood of empty connections: each lives as long as the cap lets one live, so a scraper's connection
    accepted a moment before its head arrives outlasts every older one, not only until the next accept."""
    oldest = world.conn(SLOW_AFTER / 2)
    world.conn(SLOW_AFTER / 5)
    scraper = world.conn(SLOW_AFTER / 1000)  # the newest: its head not yet sent
    for _ in range(2):
        victim = world.pick()
        assert victim is not scraper
        world.conns.remove(victim)
    assert oldest not in world.conns
    assert world.pick() is scraper  # the last empty one left


def test_a_flood_at_the_cap_gives_each_empty_connection_the_same_time_to_send(world):
    """Accept after accept at the cap, the one that has waited longest goes: a connection accepted among a
    stream of empty ones stays until every one accepted before it has gone."""
    cap = 16
    for i in range(cap):
        world.conn(SLOW_AFTER / 10 - i * 1e-4)  # accepted 0.1 ms apart
    scraper = world.conns[-1]
    closed = 0
    while (victim := world.pick()) is not scraper:
        world.conns.remove(victim)
        world.conn(SLOW_AFTER / 10 - (cap + closed) * 1e-4)  # the next of the flood, accepted in its place
        closed += 1
    assert closed == cap - 1
