"""Keep the process's memory footprint close to what it actually uses.

A scrape of a 50,000-extension domain briefly holds a ~15 MB body and tens
of MB of records, then frees them. glibc's malloc raises its mmap threshold
after freeing a large block, so later large buffers come from the heap and
the freed pages are never handed back: resident memory ratchets up to the
worst scrape plus fragmentation. Pinning the threshold keeps large buffers
in their own mappings, returned to the kernel the moment they are freed.

The threshold is 1 MiB, not glibc's starting 128 KiB: a buffer in its own
mapping costs a page fault for each of its pages every time it is made (the
kernel hands out fresh, zeroed pages), and a 1,000-user scrape made several
such buffers (its 280 KB body, a few rendered families): about 170 faults
in each of its two busy threads and 1.5 ms of CPU a scrape (per-thread
figures from ``/proc``, 2026-12-07; docs/performance.md). Buffers
up to 1 MiB now reuse the heap; the heap keeps at most ``4 x`` the
threshold free before it is trimmed. Only glibc has ``mallopt``; elsewhere
this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("pingaway_exporter.memory")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def tune_malloc(mmap_threshold: int = 1024 * 1024) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 4 * mmap_threshold))
    log.debug("malloc tuned", extra={"fields": {"mmap_threshold": mmap_threshold, "ok": ok}})
    return ok
