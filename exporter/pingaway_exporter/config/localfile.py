"""The one bounded reader of local files: the config files, the web-config and its certificates, and secret files.

A FIFO would block ``open()`` until a writer appears and ``read()`` until it closes; a device like /dev/zero
never ends; a file may grow while it is read. ``read_regular`` refuses all three before they cost anything.
"""

from __future__ import annotations

import os
import stat


class Refused(Exception):
    """A local file that ``read_regular`` would not read: ``reason`` is "type" (see ``mode``), "size" (the
    ``size`` fstat gave) or "grew" (more bytes arrived than fstat said)."""

    def __init__(self, reason: str, mode: int = 0, size: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.mode, self.size = reason, mode, size


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without ever blocking.

    A FIFO would block ``open()`` until a writer appears and ``read()`` until it closes; a device like
    /dev/zero never ends. So the file is opened with O_NONBLOCK and checked with ``fstat`` before a single
    byte is read, and the read stops one byte past the limit. Raises ``OSError`` or ``Refused``; the config
    file and the secret files word their own messages.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("type", mode=st.st_mode)
        if st.st_size > limit:
            raise Refused("size", size=st.st_size)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise Refused("grew")
    finally:
        os.close(fd)
    return b"".join(chunks)
