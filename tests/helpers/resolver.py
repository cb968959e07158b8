"""Resolvers for tests of ``upstream/resolve.py``: one held back until the test releases it, and what
``getaddrinfo`` answers for a list of addresses."""

from __future__ import annotations

import socket
import threading

WAIT = 10.0  # seconds: only so that a test that never releases its lookup fails rather than hangs


def infos(*addresses: str, port: int = 80) -> list[tuple[object, ...]]:
    """What getaddrinfo answers for these addresses."""
    return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses]


class HeldLookup:
    """A resolver that does not answer until released; notes every name it was asked."""

    def __init__(self, answer: list[tuple[object, ...]] | None = None) -> None:
        self.asked: list[str] = []
        self.release = threading.Event()
        self.answer = answer if answer is not None else infos("192.0.2.7")

    def __call__(self, host: str, port: int, *args: object) -> list[tuple[object, ...]]:
        self.asked.append(host)
        assert self.release.wait(WAIT), "the test never released the lookup"
        return self.answer
