"""An embedded Pingaway API over real HTTP, for ``--demo`` and for the tests.

It serves the published payload shape (or the flat one) from ``demo.domain``,
checks bearer JWTs it issued itself and Basic logins at ``auth/login`` with a
session cookie, and can be switched into the failure modes the exporter must
survive: refused, reset, slow, trickling, truncated, HTML, error statuses,
429 with and without ``Retry-After``, corrupt gzip, huge and endless bodies.
Tests drive it through the Python API; a human can too, through
``POST /_sim/fault`` with a JSON body such as ``{"mode": "status", "status": 503}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

from .domain import Domain

log = logging.getLogger("pingaway_exporter.simulator")

FAULT_MODES = ("none", "status", "slow_headers", "slow_body", "truncated", "reset", "reset_mid_body", "html",
               "gzip_corrupt", "huge", "endless", "not_list", "json_body", "bad_records",
               # hostile upstreams: headers at one byte per `delay`; a body of `size` zero bytes
               # compressed `layers` times (Content-Encoding: gzip, gzip); the request's credentials
               # reflected in a redirect Location, the reason phrase and the error body; raw bytes
               "trickle_headers", "gzip_bomb", "reflect", "raw_body")


@dataclass
class Fault:
    mode: str = "none"
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0  # slow_headers: before anything; slow_body: between chunks
    size: int = 0  # huge: body bytes
    chunked: bool = False  # huge: without Content-Length
    body: Any = None  # json_body: served as JSON; bad_records: records to add
    remaining: int | None = None  # apply to this many requests, then back to normal
    release: threading.Event | None = None  # slow_headers: answer as soon as this is set (delay still bounds it)
    layers: int = 2  # gzip_bomb: how many times the body is gzipped
    headers: dict[str, str] | None = None  # status, raw_body: extra response headers

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; one of {', '.join(FAULT_MODES)}")


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    logins: int = 0
    # Every Authorization header value received, so tests can prove where a credential went.
    authorizations: set[str] = field(default_factory=set)
    # trickle_headers: (monotonic start, monotonic time the client closed or None) per connection
    trickles: list[list[float | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Simulator:
    """The fake upstream. Start with ``start()``; its API root is ``url``."""

    def __init__(self, domain: Domain | None = None, *, clock: Callable[[], float] = time.time,
                 shape: str = "nested", users: dict[str, str] | None = None) -> None:
        self.domain = domain or Domain()
        self.clock = clock
        self.shape = shape
        self.key = secrets.token_bytes(64)
        self.users = dict(users or {})
        self.sessions: set[str] = set()
        self.opaque_tokens: set[str] = set()
        self.issued_sessions: list[str] = []  # every session ever handed out, for leak scans in tests
        self.login_fault: int | None = None  # when set, auth/login answers this HTTP status
        self.login_reflect = False  # when set, auth/login reflects the Basic credentials (see Fault "reflect")
        # The Set-Cookie a login answers with; "{session}" is replaced by the new session id.
        self.login_cookie = "session={session}; Path=/; HttpOnly"
        self.fault = Fault()
        self.payload: list[Any] | None = None  # when set, served instead of the live domain
        self._payload_body: tuple[list[Any], bytes] | None = None
        self.stats = Stats()
        self.last_served: list[Any] | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------

    def issue_token(self, subject: str | None = None, *, expires_in: float | None = 30 * 86400,
                    issued_at: float | None = None, extra: dict[str, Any] | None = None) -> str:
        """A JWT this simulator accepts, shaped like the vendor's (HS512, sub/aud/iss/iat/jti)."""
        now = self.clock() if issued_at is None else issued_at
        claims: dict[str, Any] = {
            "sub": subject or (self.domain.people[0].extension if self.domain.people else "08000000"),
            "aud": "pingaway-api", "iss": "pingaway-simulator", "iat": int(now), "jti": secrets.token_hex(8),
        }
        if expires_in is not None:
            claims["exp"] = int(now + expires_in)
        claims.update(extra or {})
        return jwt.encode(claims, self.key, algorithm="HS512")

    def issue_opaque_token(self) -> str:
        """A token that is not a JWT, as some API families issue; accepted only by this simulator instance."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.opaque_tokens.add(token)
        return token

    def set_fault(self, mode: str = "none", **kwargs: Any) -> None:
        with self._lock:
            self.fault = Fault(mode=mode, **kwargs)

    def set_payload(self, payload: list[Any] | None) -> None:
        with self._lock:
            self.payload = payload
            self._payload_body = None

    def _static_body(self, payload: list[Any]) -> bytes:
        """The serialised static payload, made once: large benchmark domains are not re-encoded per request."""
        with self._lock:
            if self._payload_body is None or self._payload_body[0] is not payload:
                self._payload_body = (payload, json.dumps(payload, ensure_ascii=False).encode("utf-8"))
            return self._payload_body[1]

    def request_count(self, path: str = "/api/extensions/") -> int:
        with self.stats.lock:
            return self.stats.requests[path]

    def expire_sessions(self) -> None:
        with self._lock:
            self.sessions.clear()

    def _take_fault(self) -> Fault:
        with self._lock:
            fault = self.fault
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.fault = Fault()
            return fault

    def current_payload(self) -> list[Any]:
        with self._lock:
            if self.payload is not None:
                return self.payload
        return self.domain.extensions(self.clock(), self.shape)

    # -- serving ------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        handler = type("BoundHandler", (_Handler,), {"sim": self})
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="simulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "simulator not started"  # noqa: S101 -- a test helper's precondition
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/api/"

    def __enter__(self) -> Simulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- auth ---------------------------------------------------------------------

    def authorized(self, headers: Message) -> bool:
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self._lock:
                if auth[7:] in self.opaque_tokens:
                    return True
            return self.token_valid(auth[7:])
        cookie = headers.get("Cookie", "")
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session":
                with self._lock:
                    return value.strip('"') in self.sessions
        return False

    def token_valid(self, token: str) -> bool:
        """Signature by PyJWT; ``exp`` and ``nbf`` against this simulator's own clock.

        PyJWT judges time claims by the real clock, and since 2.10 it also refuses an ``iat`` in the
        future. A simulator on a shifted clock (``--demo``, pinned tests) issues tokens in its own time,
        so it must judge them in that time too, or it would refuse the tokens it issued itself.
        """
        try:
            claims = jwt.decode(token, self.key, algorithms=["HS512"],
                                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.PyJWTError:
            return False
        now = self.clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, (int, float)) and now >= exp:
            return False
        return not (isinstance(nbf, (int, float)) and now < nbf)

    def login(self, headers: Message) -> str | None:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if user not in self.users or not secrets.compare_digest(self.users[user].encode("utf-8"),
                                                                  password.encode("utf-8")):
            return None
        session = secrets.token_urlsafe(24)
        with self._lock:
            self.sessions.add(session)
            self.issued_sessions.append(session)
        with self.stats.lock:
            self.stats.logins += 1
        return session


_BOMBS: dict[tuple[int, int], bytes] = {}


def gzip_bomb(size: int, layers: int) -> bytes:
    """``size`` zero bytes gzipped ``layers`` times (1 GiB twice is about 1.8 KB); made once per shape."""
    key = (size, layers)
    if key not in _BOMBS:

        def gz(chunks: list[bytes]) -> bytes:
            c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            out = bytearray()
            for chunk in chunks:
                out += c.compress(chunk)
            out += c.flush()
            return bytes(out)

        zero = bytes(1 << 20)
        whole, rest = divmod(size, len(zero))
        data = gz([zero] * whole + [bytes(rest)])
        for _ in range(layers - 1):
            data = gz([data])
        _BOMBS[key] = data
    return _BOMBS[key]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:  # clients hanging up is normal here
        log.debug("simulator connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "PingawaySimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator " + format, *args)

    # -- plumbing -------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
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
        fault = self.sim._take_fault()
        if fault.mode == "reset":
            self._reset()
            return
        if fault.mode == "slow_headers":
            if fault.release is not None:
                fault.release.wait(fault.delay)
            else:
                time.sleep(fault.delay)
        if fault.mode == "trickle_headers":
            self._trickle(fault)
            return
        if fault.mode == "reflect":
            self._reflect(fault)
            return
        if fault.mode == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            if fault.headers:
                headers = {**(headers or {}), **fault.headers}
            body = fault.body if isinstance(fault.body, (bytes, str)) else json.dumps(
                {"error": f"simulated HTTP {fault.status}"})
            self._send(fault.status, body.encode() if isinstance(body, str) else body, headers=headers)
            return
        if not self.sim.authorized(self.headers):
            self._json(401, {"error": "unauthorized"})
            return
        rest = path[len("/api/extensions"):].strip("/")
        payload = self.sim.current_payload()
        if rest == "me" or rest:
            self._one(rest, payload)
            return
        self._list(payload, fault)

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
        if mode == "bad_records":
            payload = list(payload) + list(fault.body or [42, {"name": "no number"}])
        elif mode == "not_list":
            payload = {"error": "simulated", "data": payload[:1]}  # type: ignore[assignment]
        elif mode == "json_body":
            payload = fault.body
        self.sim.last_served = payload if isinstance(payload, list) else None
        if mode == "none" and payload is self.sim.payload:
            body = self.sim._static_body(payload)
        else:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if mode == "html":
            self._send(200, b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
                       "text/html; charset=utf-8")
        elif mode == "truncated":
            half = body[: len(body) // 2]
            self._send(200, half)
        elif mode == "reset_mid_body":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._reset()
        elif mode == "gzip_corrupt":
            self._send(200, b"\x1f\x8b\x08\x00" + secrets.token_bytes(64), headers={"Content-Encoding": "gzip"})
        elif mode == "slow_body":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 16):
                self.wfile.write(body[i:i + 16])
                self.wfile.flush()
                time.sleep(fault.delay)
        elif mode in ("huge", "endless"):
            self._stream(body, fault)
        elif mode == "gzip_bomb":
            self._send(200, gzip_bomb(fault.size, fault.layers),
                       headers={"Content-Encoding": ", ".join(["gzip"] * fault.layers)})
        elif mode == "raw_body":
            self._send(200, fault.body if isinstance(fault.body, bytes) else str(fault.body).encode("utf-8"),
                       headers=fault.headers)
        else:
            self._send(200, body)

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
