"""Name resolution that ends by the scrape's deadline.

``socket.getaddrinfo`` has no timeout: a resolver that does not answer holds
its caller for as long as the system's settings let it try (five seconds a
name server and attempt by default, more with ``options timeout:``). Every
other step of an upstream call ends by the deadline (``network``), and an
upstream call runs on its scrape's own thread when it can
(``scrape.coalesce``), so the lookup runs on a thread of its own and the call
waits for it only until the deadline. Lookups of one host and port share
that thread, and at most ``limit`` run at once: a resolver that hangs costs
a bounded number of threads, not one a scrape. A literal address is not
looked up at all.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

Lookup = Callable[..., list[tuple[Any, ...]]]  # socket.getaddrinfo's signature


class _Running:
    __slots__ = ("addresses", "done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.addresses: list[str] = []
        self.error = ""


class Resolver:
    """Addresses for a host name, by a deadline; ``lookup`` is ``socket.getaddrinfo`` (tests give their own)."""

    def __init__(self, limit: int = 16, lookup: Lookup = socket.getaddrinfo) -> None:
        self.limit = limit
        self._lookup = lookup
        self._lock = threading.Lock()
        self._running: dict[tuple[str, int], _Running] = {}

    @property
    def running(self) -> int:
        """Lookups whose thread has not finished (answered or not)."""
        return len(self._running)

    def addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The addresses of ``host``, in ``getaddrinfo``'s order; a literal address as it is. ``TimeoutError``
        when the lookup does not finish within ``timeout`` seconds (None: however long it takes), ``OSError``
        when it fails or when ``limit`` lookups are running already."""
        if _literal(host):
            return [host]
        key = (host, port)
        with self._lock:
            running = self._running.get(key)
            if running is None:
                if len(self._running) >= self.limit:
                    raise OSError(f"{self.limit} name lookups are still running (is the resolver answering?); "
                                  f"not starting another for {host}")
                running = self._running[key] = _Running()
                try:
                    threading.Thread(target=self._run, args=(key, running), name=f"resolve-{host}"[:64],
                                     daemon=True).start()
                except RuntimeError as exc:  # no thread to be had: this lookup never runs, so it is not kept
                    del self._running[key]
                    raise OSError(f"cannot start the name lookup of {host}: {exc}") from None
        if not running.done.wait(timeout):
            raise TimeoutError(f"the name lookup of {host} did not finish before the scrape deadline")
        if running.error:
            raise OSError(running.error)
        return running.addresses

    def _run(self, key: tuple[str, int], running: _Running) -> None:
        try:
            infos = self._lookup(key[0], key[1], 0, socket.SOCK_STREAM)
            running.addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            if not running.addresses:
                running.error = f"no address found for {key[0]}"
        except Exception as exc:  # handed to every waiter as an OSError of its text (gaierror is one)
            running.error = str(exc) or type(exc).__name__
        finally:
            with self._lock:
                if self._running.get(key) is running:
                    del self._running[key]
            running.done.set()


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 address may carry its zone
    except ValueError:
        return False
    return True
