"""The simulator's request handler: its routes, and each failure mode as it goes out on the wire.

``GET /api/extensions/`` answers the payload (or one extension, or ``me``)
when the bearer token or session cookie is good, unless a fault is in
force; ``/api/auth/login`` logs in with Basic; ``POST /_sim/fault`` sets a
fault from JSON and ``GET /_sim/stats`` shows the request counts.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt

from pingaway_exporter.demo.faults import Fault, gzip_bomb
from pingaway_exporter.demo.simstate import SimulatorState

log = logging.getLogger("pingaway_exporter.simulator")


class Handler(BaseHTTPRequestHandler):
    sim: SimulatorState
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "PingawaySimulator/1"

    def setup(self) -> None:
        super().setup()
        with self.sim.stats.lock:
            self.sim.stats.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator " + format, *args)

    # -- plumbing -------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            # Set-Cookie lines joined by "\n" (sim.login_cookie) are sent as that many headers.
            for line in v.split("\n") if k.lower() == "set-cookie" else (v,):
                self.send_header(k, line)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), headers=headers)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    # -- routes ---------------------------------------------------------------

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with self.sim.stats.lock:
            self.sim.stats.requests[path] += 1
        if path == "/_sim/fault":
            try:
                spec = json.loads(raw or b"{}")
                self.sim.set_fault(**spec)
            except (ValueError, TypeError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, {"mode": self.sim.fault.mode})
            return
        if path.rstrip("/") == "/api/auth/login":
            self._login()
            return
        self._json(404, {"error": "not found"})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        sim = self.sim
        with sim.stats.lock:
            sim.stats.requests[path] += 1
            if self.headers.get("Authorization"):
                sim.stats.authorizations.add(self.headers["Authorization"])
            sim.stats.in_flight += 1
            sim.stats.max_in_flight = max(sim.stats.max_in_flight, sim.stats.in_flight)
        try:
            self._route(path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with sim.stats.lock:
                sim.stats.in_flight -= 1

    def _route(self, path: str) -> None:
        if path == "/_sim/stats":
            with self.sim.stats.lock:
                self._json(200, {"requests": dict(self.sim.stats.requests), "logins": self.sim.stats.logins})
            return
        if path.rstrip("/") == "/api/auth/login":
            self._login()
            return
        if not path.startswith("/api/extensions"):
            self._json(404, {"error": "not found"})
            return
        fault = self.sim.take_fault()
        if self._fault_before_auth(fault):
            return
        if not self.sim.authorized(self.headers):
            self._json(401, {"error": "unauthorized"})
            return
        rest = path[len("/api/extensions"):].strip("/")
        payload = self.sim.current_payload()
        if rest:
            self._one(rest, payload)
            return
        self._list(payload, fault)

    def _fault_before_auth(self, fault: Fault) -> bool:
        """Play a fault that answers before any credential is looked at; True when it answered."""
        if fault.mode == "slow_headers":  # then answers as usual
            if fault.release is not None:
                fault.release.wait(fault.delay)
            else:
                time.sleep(fault.delay)
            return False
        play: Callable[[], None] | None = {
            "reset": self._reset, "trickle_headers": lambda: self._trickle(fault),
            "reflect": lambda: self._reflect(fault), "status": lambda: self._status(fault)}.get(fault.mode)
        if play is None:
            return False
        play()
        return True

    def _status(self, fault: Fault) -> None:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        if fault.headers:
            headers = {**(headers or {}), **fault.headers}
        body = fault.body if isinstance(fault.body, (bytes, str)) else json.dumps(
            {"error": f"simulated HTTP {fault.status}"})
        self._send(fault.status, body.encode() if isinstance(body, str) else body, headers=headers)

    def _one(self, rest: str, payload: list[Any]) -> None:
        if rest == "me":
            token = self.headers.get("Authorization", "")[7:]
            try:
                rest = str(jwt.decode(token, options={"verify_signature": False}).get("sub", ""))
            except jwt.PyJWTError:
                rest = ""
        for item in payload:
            if isinstance(item, dict) and item.get("extension") == rest:
                self._json(200, item)
                return
        self._json(404, {"error": "no such extension"})

    def _list(self, payload: list[Any], fault: Fault) -> None:
        mode = fault.mode
        shaped = _PAYLOAD_FAULTS.get(mode)
        served: Any = shaped(payload, fault) if shaped is not None else payload
        self.sim.last_served = served if isinstance(served, list) else None
        if mode == "none" and served is self.sim.payload and isinstance(served, list):
            body = self.sim.static_body(served)
        else:
            body = json.dumps(served, ensure_ascii=False).encode("utf-8")
        send = {
            "html": lambda: self._send(200, b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
                                       "text/html; charset=utf-8"),
            "truncated": lambda: self._send(200, body[: len(body) // 2]),
            "reset_mid_body": lambda: self._in_parts(body, fault),
            "slow_body": lambda: self._in_parts(body, fault),
            "stray_response": lambda: self._in_parts(body, fault),
            "gzip_corrupt": lambda: self._send(200, b"\x1f\x8b\x08\x00" + secrets.token_bytes(64),
                                               headers={"Content-Encoding": "gzip"}),
            "huge": lambda: self._stream(body, fault),
            "endless": lambda: self._stream(body, fault),
            "gzip_bomb": lambda: self._send(200, gzip_bomb(fault.size, fault.layers),
                                            headers={"Content-Encoding": ", ".join(["gzip"] * fault.layers)}),
            "raw_body": lambda: self._send(200, fault.body if isinstance(fault.body, bytes)
                                           else str(fault.body).encode("utf-8"), headers=fault.headers),
        }.get(mode)
        if send is None:
            self._send(200, body)
        else:
            send()

    def _in_parts(self, body: bytes, fault: Fault) -> None:
        """A well-framed answer whose body goes out in parts: half of it and then a reset (``reset_mid_body``),
        16 bytes per ``delay`` (``slow_body``), or whole with a second answer nobody asked for after it, on the
        same kept-alive connection (``stray_response``: in the same write, or ``delay`` seconds later)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault.mode == "reset_mid_body":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._reset()
        elif fault.mode == "slow_body":
            for i in range(0, len(body), 16):
                self.wfile.write(body[i:i + 16])
                self.wfile.flush()
                time.sleep(fault.delay)
        else:
            extra = json.dumps(fault.body if fault.body is not None else []).encode("utf-8")
            stray = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(extra)).encode() + b"\r\n\r\n" + extra)
            if fault.delay > 0:
                self.wfile.write(body)
                self.wfile.flush()
                time.sleep(fault.delay)
                body = b""
            self.wfile.write(body + stray)  # without a delay, the stray arrives with the real answer's last bytes

    def _trickle(self, fault: Fault) -> None:
        """Status line and headers one byte per ``fault.delay`` seconds, noting when the client hangs up."""
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 200
                + b"\r\nContent-Length: 2\r\n\r\n[]")
        entry: list[float | None] = [time.monotonic(), None]
        with self.sim.stats.lock:
            self.sim.stats.trickles.append(entry)
        self.close_connection = True
        try:
            for i in range(len(head)):
                self.wfile.write(head[i:i + 1])
                self.wfile.flush()
                end = time.monotonic() + fault.delay
                while time.monotonic() < end:
                    if self._peer_closed():
                        raise ConnectionResetError
                    time.sleep(0.05)
        except OSError:
            pass
        entry[1] = time.monotonic()

    def _peer_closed(self) -> bool:
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return peeked == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _reflect(self, fault: Fault) -> None:
        """Echo the credentials this request carried in a Location, the reason phrase and the body."""
        creds = " ".join(v for v in (self.headers.get("Authorization"), self.headers.get("Cookie")) if v)
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):  # and decoded, as a careless server would print them
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                creds += " " + base64.b64decode(auth[6:]).decode("utf-8")
        status = fault.status if fault.status != 500 else 302
        self.send_response(status, f"Denied {creds}".replace("\r", "").replace("\n", ""))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Location", f"https://login.example/?back={creds.replace(' ', '+')}".encode(
            "latin-1", "replace").decode("latin-1"))
        body = f"credentials not accepted: {creds}".encode("latin-1", "replace")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, body: bytes, fault: Fault) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        total = fault.size if fault.mode == "huge" else None
        if total is not None and not fault.chunked:
            self.send_header("Content-Length", str(total))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        filler = (b" " * 65535) + b"\n"
        sent = 0
        self.wfile.write(b"[")
        sent += 1
        while total is None or sent < total:
            chunk = filler if total is None else filler[: min(len(filler), total - sent)]
            self.wfile.write(chunk)
            sent += len(chunk)

    def _login(self) -> None:
        if self.sim.login_reflect:
            self._reflect(Fault("reflect"))
            return
        status = self.sim.login_fault
        if status is not None:
            self._json(status, {"error": f"simulated HTTP {status}"})
            return
        session = self.sim.login(self.headers)
        if session is None:
            self._json(401, {"error": "invalid credentials"},
                       headers={"WWW-Authenticate": 'Basic realm="pingaway"'})
            return
        self._json(200, {"status": "ok"}, headers={"Set-Cookie": self.sim.login_cookie.replace("{session}", session)})


# Faults that change what the list answer holds (then sent as usual, or as its own fault sends it).
_PAYLOAD_FAULTS: dict[str, Callable[[list[Any], Fault], Any]] = {
    "bad_records": lambda payload, fault: list(payload) + list(fault.body or [42, {"name": "no number"}]),
    "not_list": lambda payload, _fault: {"error": "simulated", "data": payload[:1]},
    "json_body": lambda _payload, fault: fault.body,
}
