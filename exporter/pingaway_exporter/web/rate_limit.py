"""``rate_limit`` of ``--web.config.file``: the token bucket of golang.org/x/time/rate, as exporter-toolkit uses it.

The toolkit makes ``rate.NewLimiter(rate.Every(interval), burst)`` and answers 429 Too Many Requests when
``Allow()`` is false, before Basic auth and on every path. The bucket starts full (``burst`` tokens), gains
one token per ``interval`` up to ``burst``, and each request takes one; with ``burst`` 0 no request is ever
allowed (``rate.Limiter`` allows nothing when its burst is 0 and its limit finite).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """``allow()`` is ``rate.Limiter.Allow()`` for ``rate.Every(interval)`` and ``burst``."""

    def __init__(self, interval: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("interval must be above 0")
        self.interval, self.burst = interval, burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter(interval={self.interval}, burst={self.burst})"

    def allow(self) -> bool:
        """Take a token if there is one."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._last = max(self._last, now)
            self._tokens = min(float(self.burst), self._tokens + elapsed / self.interval)
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
