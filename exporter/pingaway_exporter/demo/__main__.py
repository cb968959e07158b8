"""``python -m pingaway_exporter.demo``: the simulator on a port of its own, for contributors.

Point a real Prometheus, a second exporter or a load tool at it. It prints the API URL and a token it
accepts (a throwaway, signed with a key made at start, valid only against this process), then serves until
interrupted. Fault modes are switched over HTTP (``POST /_sim/fault``; see docs/development.md).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.simulator import Simulator


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pingaway_exporter.demo",
                                description="Run the Pingaway simulator on its own port (no exporter).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=18080, help="port to listen on; 0 picks a free one (default 18080)")
    p.add_argument("--users", type=int, default=60, help="people in the simulated domain (default 60)")
    p.add_argument("--seed", default="pingaway", help="seed of the simulated office (default pingaway)")
    p.add_argument("--timezone", default="Europe/Stockholm", help="the office's zone (default Europe/Stockholm)")
    p.add_argument("--token-file", type=Path, help="also write the accepted token to this file (mode 0600)")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port: {args.port} is not a port (0 to 65535)")
    if not 1 <= args.users <= 1_000_000:
        p.error(f"--users: {args.users} is not between 1 and 1000000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        sim = Simulator(Domain(size=args.users, seed=args.seed, timezone=args.timezone)).start(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; pick another with --port",
              file=sys.stderr)
        return 2
    token = sim.issue_token()
    if args.token_file is not None:
        args.token_file.touch(mode=0o600)
        args.token_file.chmod(0o600)  # touch() leaves an existing file's mode as it was, e.g. 0644
        args.token_file.write_text(token + "\n", encoding="ascii")
    print(f"simulator: {sim.url}", flush=True)
    print(f"token: {token}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
