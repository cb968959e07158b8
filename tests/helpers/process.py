"""The real exporter as a child process, free loopback ports, and ``StderrHold``: a child's stderr that stops
the child at its first line until the test lets it go."""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx

from tests.helpers.tools import without_pingaway_env


class ExporterProcess:
    """The real exporter as its own process: in front of a simulator in this one, or with ``--demo``."""

    def __init__(self, sim, *extra: str, no_token: bool = False, env: dict[str, str] | None = None,
                 auth=None) -> None:
        env = without_pingaway_env(env)
        upstream: list[str] = []
        if sim is not None:
            upstream = ["--pingaway.url", sim.url]
            if not no_token:
                env["PINGAWAY_TOKEN"] = sim.issue_token(issued_at=time.time())
        # A free port is free only until someone else binds it: another worker, or another suite on the same
        # machine. A start that lost that race (the child says so and exits 1) is made again on another port.
        for attempt in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pingaway_exporter", *upstream,
                 "--web.listen-address", f"127.0.0.1:{self.port}", *extra],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.base = f"http://127.0.0.1:{self.port}"
            err = self._wait_ready(auth)
            if err is None:
                return
            assert "Address already in use" in err and attempt < 4, err

    def _wait_ready(self, auth) -> str | None:
        """None once ``/-/ready`` says 200; the child's stderr if it exited first."""
        end = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.base + "/-/ready", timeout=2, auth=auth).status_code == 200:
                    return None
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                return self.proc.stderr.read().decode()
            assert time.monotonic() < end, "exporter did not become ready"
            time.sleep(0.05)

    def status(self, key: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err.decode()


# For ``cli.main`` run in a test's own process: the port opens before the config file is read, so a start that
# a bad config ends has bound a port first; this one is any free loopback port, never the default on every address.
ANY_PORT = ("--web.listen-address", "127.0.0.1:0")


def ephemeral_ports() -> range:
    """The ports the kernel hands out for ``bind(0)`` and for every outgoing connection's local end."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = (int(part) for part in fh.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


_GIVEN: collections.deque[int] = collections.deque(maxlen=64)  # the ports this process handed out lately


def free_port() -> int:
    """A loopback port that is free now, for a child process to bind.

    Chosen at random below the ephemeral range, not by ``bind(0)``: a port from that range, once released, is
    the kernel's to give to the next outgoing connection of any process on the machine (every HTTP client of
    every test worker, and of another suite running beside this one), so a child binding it a moment later
    could find it taken. Below the range only callers of this function pick ports: each pytest-xdist worker in
    a share of its own (so the workers of one suite never pick alike), at random in it (so a second suite
    beside this one rarely does), never one this process handed out among its last 64 (a test may pick
    several before it starts anything on them). The choice uses the operating system's randomness, not
    ``random``: pytest-randomly seeds that alike in every worker.
    """
    choices = _share(_below_ephemeral())
    if not choices:  # an ephemeral range that covers nearly every port: the kernel's choice, and the retries
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(100):
        port = choices[secrets.randbelow(len(choices))]
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.append(port)
        return port
    raise AssertionError(f"no free loopback port in {choices.start}-{choices.stop - 1} after 100 tries")


def _below_ephemeral() -> range:
    """Up to 12,288 ports outside the ephemeral range: below it, or above it when it starts too low."""
    ephemeral = ephemeral_ports()
    if ephemeral.start - 1024 >= 4096:
        return range(max(1024, ephemeral.start - 12288), ephemeral.start)
    if 65536 - ephemeral.stop >= 4096:
        return range(ephemeral.stop, min(65536, ephemeral.stop + 12288))
    return range(0)


def _share(ports: range) -> range:
    """This pytest-xdist worker's share of ``ports`` (all of them outside xdist)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 0):
        return ports
    index, size = int(worker[2:]) % int(count), len(ports) // int(count)
    return ports[index * size:(index + 1) * size] if size >= 256 else ports


class StderrHold:
    """A pipe for a child's stderr, full before the child starts: the child's first write to stderr blocks, in
    whichever thread makes it, until ``release`` starts reading.

    The exporter's main thread logs "port open; loading the config" right after the port opens and before it
    reads the config file, so a child started with ``stderr=hold.fd`` is stopped there, with the port open
    and nothing loaded, for as long as the test likes: no timing, no sleep. Threads that write nothing to
    stderr (the server's, answering /-/healthy and /-/ready) run on. If the exporter ever logs before the
    port opens, the port never answers and the test fails on its deadline instead of passing unseen.
    """

    def __init__(self) -> None:
        self._read, self.fd = os.pipe()
        os.set_blocking(self.fd, False)
        self.filler = 0
        for size in (4096, 1):  # whole pages, then byte by byte: a write of any size then blocks
            self.filler += _fill(self.fd, b"#" * size)
        os.set_blocking(self.fd, True)  # the child shares this open file: its writes must block, not fail
        self._chunks: list[bytes] = []
        self._reader: threading.Thread | None = None

    def started(self) -> None:
        """The child has its copy of the write end; close ours, so reading ends when the child does."""
        os.close(self.fd)

    def release(self) -> None:
        """Read the pipe from now on (in a thread): the child's writes go through again."""
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while chunk := os.read(self._read, 65536):
            self._chunks.append(chunk)
        os.close(self._read)

    def so_far(self) -> str:
        """What the child has written to stderr since ``release`` (the filler left out), for a failure's message."""
        return b"".join(self._chunks)[self.filler:].decode(errors="replace")

    def text(self, timeout: float = 30.0) -> str:
        """All the child wrote to stderr, once it has exited (the filler left out)."""
        if self._reader is None:
            self.release()
        assert self._reader is not None
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "the child's stderr did not end"
        data = b"".join(self._chunks)
        assert data[:self.filler] == b"#" * self.filler
        return data[self.filler:].decode(errors="replace")


def _fill(fd: int, data: bytes) -> int:
    """Write ``data`` to the non-blocking ``fd`` again and again until it would block; the bytes written."""
    written = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            written += os.write(fd, data)
    return written
