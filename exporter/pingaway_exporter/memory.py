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

The heap still keeps what a large scrape freed in its middle (the rendered
answer's chunks, below the threshold), where the top-of-heap trim does not
reach: about 12 MiB after a 50,000-user scrape, which the next one's body
(its own mapping) then comes on top of. ``release_free_heap`` (glibc's
``malloc_trim``) hands those pages back; a target calls it before the
upstream call that follows a large body. It costs 0.1-1 ms at 50,000 users
and lowered the peak RSS of a 50,000-user scrape from 79.8 to 75 MiB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("pingaway_exporter.memory")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_malloc(mmap_threshold: int = 1024 * 1024) -> bool:
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 4 * mmap_threshold))
    log.debug("malloc tuned", extra={"fields": {"mmap_threshold": mmap_threshold, "ok": ok}})
    return ok


_TRIM: list[object] = []  # glibc's malloc_trim once looked up (None: not glibc)


def release_free_heap() -> bool:
    """Hand the heap's free pages back to the kernel (glibc's ``malloc_trim(0)``); False where there is none."""
    if not _TRIM:
        libc = _libc()
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim.argtypes = (ctypes.c_size_t,)
            trim.restype = ctypes.c_int
        _TRIM.append(trim)
    trim = _TRIM[0]
    if trim is None:
        return False
    trim(0)  # type: ignore[operator]
    return True
