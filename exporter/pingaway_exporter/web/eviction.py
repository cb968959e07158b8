"""Which connection the port closes at its connection cap (or when out of descriptors): what matters is spared.

In order, the first kind present gives the victim:

1. a connection that has sent nothing for ``SLOW_AFTER`` seconds or more,
   the oldest first (idle sockets held open);
2. one that has been open ``SLOW_AFTER`` seconds or more without completing
   a request, the one that sent least per second first (slowloris);
3. any other connection that has sent nothing, again the oldest first: the
   one that has had longest to send its first byte and has not. Under a
   flood of empty connections each then lives as long as the cap lets one
   live (cap / rate), a scraper's connection accepted a moment before its
   head arrived included, so a client that the scheduler holds for a moment
   between its connect and its first write is not closed for it (the newest
   first, as here before, gave it only until the next accept);
4. any other that has not completed a request, the one that sent least;
5. a complete request still waiting for a worker (``cancel`` withdraws it);
6. an idle keep-alive connection, the one idle longest.

So a scraper whose head arrives at a normal pace, or that has already
completed a request (Prometheus keeps its connection open), goes last; a
connection being answered is never chosen (its write deadline bounds it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pingaway_exporter.web.connection import Conn, State

SLOW_AFTER = 1.0  # seconds: a head still incomplete after this is arriving slowly, and an empty one is idle


def pick(conns: Iterable[Conn], empty: Iterable[Conn], now: float, cancel: Callable[[Conn], bool]) -> Conn | None:
    """The connection to close, or None if every open connection is being answered."""
    empties = list(empty)  # insertion order: oldest first
    unsent = set(empties)
    if empties and now - empties[0].opened >= SLOW_AFTER:
        return empties[0]
    all_conns = list(conns)
    fresh = [c for c in all_conns
             if c.state in (State.HANDSHAKE, State.HEAD) and c.proto.requests == 0 and c not in unsent]
    slow = [c for c in fresh if now - c.opened >= SLOW_AFTER]
    if slow:
        return min(slow, key=lambda c: (c.proto.received / max(now - c.opened, 1e-3), c.opened))
    if empties:
        return empties[0]
    if fresh:
        return min(fresh, key=lambda c: (c.proto.received, c.opened))
    waiting = next((c for c in all_conns if c.state == State.WORKER and cancel(c)), None)
    if waiting is not None:
        return waiting
    idle = [c for c in all_conns if c.state == State.IDLE]
    return min(idle, key=lambda c: c.deadline) if idle else None
