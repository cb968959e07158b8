"""Local input (docs/security.md, M4 and M7): secret files and config files are bounded local input.

A FIFO, a device or an alias bomb is answered with a clear error naming the
field, quickly and without a traceback, and the exporter recovers once the
file is fixed.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml

from pingaway_exporter.config.errors import ConfigError, SecretError, WebConfigError
from pingaway_exporter.config.file import load_file
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.secret import MAX_SECRET_FILE, SecretSource
from pingaway_exporter.config.webconfig import load as load_web_config
from pingaway_exporter.config.yamlload import MAX_CONFIG_BYTES
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import UpstreamSlots
from tests.helpers.figures import FIGURES
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import free_port
from tests.helpers.tools import without_pingaway_env

# 9 levels of 9 aliases: 9**9 = 387,420,489 strings from 353 bytes of YAML.
ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    + ["groups: *i"]) + "\n"


def exporter_env() -> dict:
    env = without_pingaway_env()
    return env


def run_exporter(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pingaway_exporter", *args], capture_output=True, text=True,
                          timeout=timeout, env=exporter_env())


# -- M4: secret files -----------------------------------------------------------

def test_a_fifo_token_file_fails_startup_at_once(tmp_path, sim):
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    proc = run_exporter("--pingaway.url", sim.url, "--pingaway.token-file", str(fifo), "--check")
    took = time.monotonic() - t0
    FIGURES.append(f"M4: FIFO token file -> exit {proc.returncode} with a clear error in {took:.2f} s (bound 10 s)")
    assert proc.returncode == 2 and took < 10
    assert "not a regular file (a FIFO)" in proc.stderr and str(fifo) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("path", "why"), [("/dev/zero", "a character device"), ("/dev/null", "a character device")])
def test_devices_are_refused_without_reading(path, why):
    with pytest.raises(SecretError) as info:
        SecretSource("token file", path=path).get()
    assert why in str(info.value)


def test_an_oversized_secret_file_is_refused(tmp_path):
    big = tmp_path / "token"
    big.write_bytes(b"x" * (MAX_SECRET_FILE + 1))
    with pytest.raises(SecretError) as info:
        SecretSource("token file", path=str(big)).get()
    assert f"{MAX_SECRET_FILE}-byte limit" in str(info.value)


def test_a_token_file_turned_fifo_at_runtime_gives_up_0_then_recovers(tmp_path, sim, exporter_factory):
    token = tmp_path / "token"
    token.write_text(sim.issue_token())
    exp = exporter_factory(sim, token_file=str(token), timeout=5.0)
    assert value(samples(exp.get().text), "pingaway_up") == 1
    token.unlink()
    os.mkfifo(token)  # a writer never comes
    t0 = time.monotonic()
    m = samples(exp.get(timeout=15).text)
    took = time.monotonic() - t0
    assert value(m, "pingaway_up") == 0 and value(m, "pingaway_scrape_error", reason="unauthorized") == 1
    assert "not a regular file" in exp.get("/").text
    token.unlink()
    token.write_text(sim.issue_token())
    assert value(samples(exp.get().text), "pingaway_up") == 1  # fixed: recovers with no restart
    FIGURES.append(f"M4: token file turned FIFO at runtime -> up 0 in {took:.2f} s, up 1 once fixed")
    assert took < 10


def test_a_targets_fifo_does_not_block_later_reloads(tmp_path, sim):
    token = tmp_path / "alpha.token"
    token.write_text(sim.issue_token())
    config = tmp_path / "config.yml"

    def write(path: str) -> None:
        config.write_text(yaml.safe_dump({"targets": [{"name": "alpha", "url": sim.url, "token_file": path}]}))

    write(str(token))
    reloader = SettingsReloader(str(config), load_file(str(config)))
    pool = TargetPool(reloader, TargetDefaults(), UpstreamSlots(2))
    reloader.validators.append(pool.validate)
    pool.start()
    try:
        fifo = tmp_path / "beta.token"
        os.mkfifo(fifo)
        write(str(fifo))
        results = []
        t = threading.Thread(target=lambda: results.append(reloader.reload()), daemon=True)
        t0 = time.monotonic()
        t.start()
        t.join(10)
        assert not t.is_alive(), "the reload hung on the FIFO"
        ok, message = results[0]
        assert not ok and "targets[0].token_file" in message and "FIFO" in message
        write(str(token))
        ok, message = reloader.reload()  # a later reload is not blocked
        took = time.monotonic() - t0
        assert ok, message
        assert pool.names() == ["alpha"]
    finally:
        pool.close()
    FIGURES.append(f"M4: target token file FIFO -> reload refused, next reload ok, {took:.2f} s in all")


# -- M7: YAML --------------------------------------------------------------------

def test_alias_bomb_in_config_file_is_a_short_error(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) < 500
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError) as info:
        load_file(str(path))
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    message = str(info.value)
    assert "aliases" in message and "line 2" in message and str(path) in message
    assert len(message) < 300
    assert grown < 50  # MiB
    FIGURES.append(f"M7: {len(ALIAS_BOMB.encode())}-byte alias bomb -> {len(message)}-character error, "
                   f"RSS +{grown:.0f} MiB")


def test_alias_bomb_at_startup_and_on_reload(tmp_path, sim):
    path = tmp_path / "config.yml"
    path.write_text(ALIAS_BOMB)
    proc = run_exporter("--pingaway.url", sim.url, "--config.file", str(path), "--check")
    assert proc.returncode == 2 and "aliases" in proc.stderr and len(proc.stderr) < 1000
    assert "Traceback" not in proc.stderr
    # On reload: the running config stays, the error is short.
    path.write_text("groups: []\n")
    port = free_port()
    env = exporter_env()
    env["PINGAWAY_TOKEN"] = sim.issue_token(issued_at=time.time())
    exp = subprocess.Popen([sys.executable, "-m", "pingaway_exporter", "--pingaway.url", sim.url, "--config.file",
                            str(path), "--web.listen-address", f"127.0.0.1:{port}"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert exp.poll() is None and time.monotonic() < end
            time.sleep(0.1)
        path.write_text(ALIAS_BOMB)
        exp.send_signal(signal.SIGHUP)
        end = time.monotonic() + 10
        while True:
            m = samples(httpx.get(base + "/metrics", timeout=10).text)
            if value(m, "pingaway_config_last_reload_successful") == 0:
                break
            assert time.monotonic() < end, "the reload never failed"
            time.sleep(0.2)
        with open(f"/proc/{exp.pid}/status") as fh:
            peak = int(next(line for line in fh if line.startswith("VmHWM:")).split()[1]) / 1024
    finally:
        exp.send_signal(signal.SIGTERM)
        _, err = exp.communicate(timeout=20)
    err = err.decode()
    line = next(x for x in err.splitlines() if "config reload failed" in x)
    assert "aliases" in line and len(line) < 1000 and "Traceback" not in err
    FIGURES.append(f"M7: alias bomb on SIGHUP -> reload refused, peak RSS {peak:.0f} MiB, {len(line)}-char log line")
    assert peak < 150


def test_alias_bomb_in_web_config(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(ALIAS_BOMB.replace("groups:", "basic_auth_users:"))
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(path))
    assert "aliases" in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize(("text", "field"), [
    ("? [a, b]\n: 1\n", "line 1"),  # a list as a key: PyYAML would hand back an unhashable key
    ("groups:\n  - {name: a, keywords: [x], ? {k: v} : 1}\n", "line 2"),
    ("groups:\n  - name: a\n    keywords: [x]\n    staffing_minimum: [" + "1," * 5000 + "1]\n",
     "groups[0].staffing_minimum"),
    ("groups:\n  - name: " + "x" * 5000 + "\n    keywords: [x]\n", "groups[0].name"),
    ("timezone: " + "Z" * 100_000 + "\n", "timezone"),
    ("groups: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("timezone: " + "9" * 5000 + "\n", "line 1, column 11"),  # PyYAML's int() refuses 5,000 digits
    ("groups:\n  - name: a\n    keywords: [x]\n    closed_dates: [2026-02-30]\n", "line 4"),
    ("timezone: !!int abc\n", "line 1"),
])
def test_every_config_error_names_its_field_briefly(tmp_path, text, field):
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_file(str(path))
    assert field in str(info.value) and len(str(info.value)) < 600, str(info.value)[:600]


def test_config_files_are_bounded_and_never_block(tmp_path):
    big = tmp_path / "big.yml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError) as info:
        load_file(str(big))
    assert "byte limit" in str(info.value)
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        load_file(str(fifo))
    assert "not a regular file" in str(info.value)
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(fifo))
    assert "not a regular file" in str(info.value)


def test_no_config_text_gives_anything_but_a_config_error():
    """Arbitrary YAML-ish text: a Settings or a ConfigError, never another exception."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    from pingaway_exporter.config.file import load_text

    pieces = st.sampled_from(["groups:", "targets:", "timezone:", "holidays:", "- ", "  ", "\n", "name: a",
                              "keywords: [x]", "? ", ": ", "&a ", "*a", "!!int ", "!!timestamp ", "[", "]", "{",
                              "}", "2026-02-30", "9" * 50, "opening_hours:", "mon: 08:00-17:00", "'", '"', "#",
                              "url: http://x/", "token_file: t", "staffing_minimum: ", "-1", "null", "~", "<<: "])

    @hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(pieces, max_size=40).map("".join))
    def check(text: str) -> None:
        try:
            load_text(text, "/etc/pingaway/fuzz.yml")
        except ConfigError as exc:
            assert len(str(exc)) < 1000  # noqa: PT017 -- most texts load; only a refusal's message is checked
    check()


# -- L1 and L2: JWT times, durations and sizes -----------------------------------------------------------

@pytest.mark.parametrize("bad", [1e300, 1e18, float("inf"), float("nan"), -1e300])
def test_a_time_claim_out_of_range_is_treated_as_absent(bad, caplog):
    import base64
    import json as _json

    from pingaway_exporter.config.secret import Secret
    from pingaway_exporter.upstream.token_claims import read_claims

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(_json.dumps(obj).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': 'HS512', 'typ': 'JWT'})}.{part({'sub': '1', 'exp': bad, 'iat': bad})}.c2ln"
    claims = read_claims(Secret(token), "token file")
    assert claims.expires_at is None and claims.issued_at is None
    assert "'exp'" in caplog.text and "'iat'" in caplog.text


@pytest.mark.parametrize("flag", ["--pingaway.timeout", "--pingaway.min-interval", "--web.timeout-offset"])
@pytest.mark.parametrize("text", ["nan", "inf", "1e308", "-inf"])
def test_durations_refuse_nan_infinity_and_huge(sim, flag, text):
    proc = run_exporter("--pingaway.url", sim.url, flag, text, "--check")
    assert proc.returncode == 2, proc.stderr
    assert flag in proc.stderr and "Traceback" not in proc.stderr
