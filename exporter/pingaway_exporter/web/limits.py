"""The bounds of the exporter's own port, and the connection cap they come to on this host.

Every resource a client can make the port spend has a limit here, and the
limits hold whatever clients send:

- ``max_connections``: open connections, at most; at the cap one is closed
  to make room: first a connection that has sent nothing (the oldest), then
  one that has never completed a request (the one that sent least), then a
  request still waiting for a worker, and only then an idle keep-alive
  connection that has completed requests (Prometheus's own). So a flood of
  empty sockets cannot lock a scraper out. The cap is further held
  ``fd_reserve`` below the process's ``RLIMIT_NOFILE``, leaving descriptors
  for upstream calls and files.
- ``max_header_bytes``: the request line and all headers together, counted as
  bytes arrive and before any parsing; more is answered 431 and closed.
- ``header_timeout``: a new connection (TLS handshake included) or a
  keep-alive request must deliver its whole head within this, however slowly
  the bytes trickle in (slowloris).
- ``idle_timeout``: a keep-alive connection may wait this long for its next
  request.
- ``workers``: threads computing answers, at most. A worker never waits on
  a client: it sends a small answer itself only when the socket takes all
  of it at once; otherwise the selector thread sends it, without blocking.
- ``queue_timeout``: a complete request may wait this long for a worker;
  past it the connection is closed.
- ``write_timeout``: a response must be taken by the client within this of
  its first byte (a slow upstream call before it does not count).
- ``max_unsent_bytes``: answers computed but not yet taken by their
  clients, all connections together, a chunk that many connections send
  (a cached answer's shared body) counted once; past it the slowest
  readers (fewest bytes taken per second) are cut first. One connection holds at most one
  answer: its next pipelined request is not read until that one is sent.
- ``max_body_bytes``: a request body up to this is read by the selector
  within the head deadline and discarded; a larger one (413), or one with
  ``Transfer-Encoding`` (411), is refused before it is read and the
  connection closed, so a body is never taken for the next request.
- ``max_empty_reads``: TLS records with no application data (KeyUpdate,
  renegotiation attempts, alerts) a connection may send per request; past
  it the connection is cut.
- ``accept_pause``: how long accepting pauses when ``accept`` fails for want
  of descriptors and no idle connection is left to close.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_connections: int = 512
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    idle_timeout: float = 120.0
    workers: int = 256
    queue_timeout: float = 30.0
    write_timeout: float = 60.0
    max_unsent_bytes: int = 256 * 1024 * 1024
    max_body_bytes: int = 64 * 1024
    max_empty_reads: int = 256
    fd_reserve: int = 128
    accept_pause: float = 0.1  # after EMFILE


def connection_cap(limits: Limits) -> int:
    """``max_connections``, lowered to stay ``fd_reserve`` below the soft RLIMIT_NOFILE."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        soft = resource.RLIM_INFINITY
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return limits.max_connections
    return max(8, min(limits.max_connections, soft - limits.fd_reserve))
