"""Loaded (through PYTHONPATH) only by .ci/run's shifted-clock runs, into every Python process they start.

libfaketime 0.9.10, Debian 12's, mistranslates ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...)`` when the
monotonic clock is left real (``FAKETIME_DONT_FAKE_MONOTONIC=1``): it shifts the absolute deadline by the fake
offset and the kernel answers EINVAL (wolfcw/libfaketime#426). CPython 3.11 and later implement ``time.sleep``
with exactly that call, so under the tool every ``time.sleep`` raises ``OSError: [Errno 22]``. Every other wait
(``select``, lock and condition timeouts, socket timeouts) is unaffected. This puts a ``select``-based sleep in
its place, so that the suite tests the exporter and not the tool. Nothing else changes: the exporter itself
still calls ``time.sleep``, and outside these runs this file is never on the path.
"""

import os
import select
import time

if os.environ.get("FAKETIME") and "faketime" in os.environ.get("LD_PRELOAD", ""):
    _deadline_clock = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        end = _deadline_clock() + seconds
        while True:  # select may return early on a signal; sleep the rest, as time.sleep does
            left = end - _deadline_clock()
            if left <= 0:
                return
            select.select([], [], [], left)

    time.sleep = _sleep
