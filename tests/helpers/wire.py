"""Raw bytes over a loopback socket, for tests of the port's HTTP framing and of clients that never read."""

from __future__ import annotations

import contextlib
import socket


def exchange(port: int, data: bytes, quiet: float = 2.0) -> tuple[bytes, bool]:
    """Send ``data``; (everything read, whether the server closed) until it closes or is quiet for ``quiet`` s."""
    out = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=quiet) as s:
        s.sendall(data)
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            return bytes(out), False
        except ConnectionResetError:
            pass
    return bytes(out), True


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic credentials (RFC 7617: UTF-8, then base64)."""
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def tiny_reader(port: int, request: bytes) -> socket.socket:
    """A connection with a 1 KiB receive buffer that sends ``request`` and never reads (until a test does)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        s.send(request)
    return s


def read_answer(s: socket.socket, timeout: float = 30.0) -> tuple[bytes, bytes]:
    """(head, body) of one Content-Length answer read from ``s``; the body is short if the server cut it."""
    s.settimeout(timeout)
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(data), b""
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    rest = bytearray(body)
    with contextlib.suppress(OSError):
        while len(rest) < length and (chunk := s.recv(min(1 << 20, length - len(rest)))):
            rest += chunk
    return head, bytes(rest)
