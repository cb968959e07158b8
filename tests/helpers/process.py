"""The real exporter as a child process, and free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.helpers.tools import without_pingaway_env


class ExporterProcess:
    """The real exporter as its own process: in front of a simulator in this one, or with ``--demo``."""

    def __init__(self, sim, *extra: str, no_token: bool = False, env: dict[str, str] | None = None,
                 auth=None) -> None:
        self.port = free_port()
        env = without_pingaway_env(env)
        upstream: list[str] = []
        if sim is not None:
            upstream = ["--pingaway.url", sim.url]
            if not no_token:
                env["PINGAWAY_TOKEN"] = sim.issue_token(issued_at=time.time())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pingaway_exporter", *upstream,
             "--web.listen-address", f"127.0.0.1:{self.port}", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.base = f"http://127.0.0.1:{self.port}"
        end = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.base + "/-/ready", timeout=2, auth=auth).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
