"""Raw bytes over a loopback socket, for tests of the port's HTTP framing."""

from __future__ import annotations

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


def basic_auth_header(user: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic credentials (RFC 7617: UTF-8, then base64)."""
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
