"""Shared test helpers: plain functions, classes and data that more than one test module uses.

Fixtures live in tests/conftest.py; everything else that two test modules share lives here, one module per
concern, so that no test module imports another:

- ``browser``: headless Chromium: render a page, read its DOM, decode its screenshots.
- ``clock``: the pinned instants time-dependent tests are judged at (``WEDNESDAY_1015``).
- ``certs``: a throwaway CA and certificates for real TLS.
- ``dashboard_util``: reading the Grafana dashboard's panels, queries and template variables.
- ``dockerfile``: a small Dockerfile parser and the .dockerignore matching rule.
- ``faults``: the upstream failure modes the simulator can play, and waiting for an abandoned call to end.
- ``figures``: ``FIGURES``, the figures tests measure, printed once at the end of the run.
- ``fixtures``: a hand-written payload whose every metric value is known in advance.
- ``metrics_util``: reading an exposition back into plain values.
- ``probe``: an exporter in /probe mode in front of several simulated upstreams.
- ``process``: the real exporter as a child process (``ExporterProcess``), and ``free_port``.
- ``promharness``: a real Prometheus: start it, wait for data, evaluate queries as Grafana sends them.
- ``tls``: --web.config.file files for TLS and Basic auth, and client SSL contexts that trust the test CA.
- ``tools``: ``need_tool`` for CI-installed programs, the real-clock and libfaketime environments, and
  ``without_pingaway_env``.
- ``wire``: raw bytes over a loopback socket, and the Basic ``Authorization`` value.
"""
