"""deploy/kubernetes/: every manifest parsed and cross-checked, and the Deployment rehearsed.

There is no cluster here. The manifests are parsed with pyyaml and checked
against each other and against the package (port, flags, probe paths, the
image's user); ``kubectl kustomize`` builds the kustomization when kubectl is
installed. The rehearsal then runs the exporter the way the Deployment runs
it, as far as one machine can: as uid 10001 with no capabilities, on a
read-only root filesystem, with the token and the config mounted at the
Deployment's paths in the kubelet's on-disk layout and modes, and a token
rotation done the way the kubelet does it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

import pingaway_exporter
from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.file import load_text
from pingaway_exporter.config.flags import DEFAULT_PORT, load
from pingaway_exporter.config.secret import SecretSource, loose_file
from pingaway_exporter.upstream.auth import TokenState
from tests.helpers.metrics_util import samples, value
from tests.helpers.tools import need_tool, without_pingaway_env

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
KINDS = {
    "deployment.yaml": ("apps/v1", "Deployment"),
    "service.yaml": ("v1", "Service"),
    "servicemonitor.yaml": ("monitoring.coreos.com/v1", "ServiceMonitor"),
    "prometheusrule.yaml": ("monitoring.coreos.com/v1", "PrometheusRule"),
    "configmap.yaml": ("v1", "ConfigMap"),
    "secret.example.yaml": ("v1", "Secret"),
    "kustomization.yaml": ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
# Applying the example Secret would overwrite the real one with a placeholder.
NOT_IN_KUSTOMIZATION = {"secret.example.yaml"}


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBE / name).read_text(encoding="utf-8")) if d is not None]


def one(name: str) -> dict:
    (doc,) = docs(name)
    return doc


def pod_spec() -> dict:
    return one("deployment.yaml")["spec"]["template"]["spec"]


def container() -> dict:
    (c,) = pod_spec()["containers"]
    return c


def env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in container().get("env", [])}


def mount_for(volume_name: str) -> dict:
    (mount,) = [m for m in container()["volumeMounts"] if m["name"] == volume_name]
    return mount


def volume(kind: str) -> dict:
    (vol,) = [v for v in pod_spec()["volumes"] if kind in v]
    return vol


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number (bytes for memory, cores for CPU)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?", str(text))
    assert m, text
    scale = {None: 1, "m": 1e-3, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[m.group(2)]
    return float(m.group(1)) * scale


# --------------------------------------------------------------------------
# Parsing and kinds
# --------------------------------------------------------------------------

def test_every_file_parses_with_the_expected_kind():
    files = {p.name for p in KUBE.iterdir() if p.suffix in (".yaml", ".yml")}
    assert files == set(KINDS), "a new manifest needs an entry in KINDS (and usually in kustomization.yaml)"
    for name, (api_version, kind) in KINDS.items():
        found = docs(name)
        assert found, f"{name} is empty"
        for doc in found:
            assert (doc["apiVersion"], doc["kind"]) == (api_version, kind), name
            if kind != "Kustomization":
                assert doc["metadata"]["name"] == "pingaway-exporter", name
                assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "pingaway-exporter", name
                assert "namespace" not in doc["metadata"], f"{name}: leave the namespace to kubectl -n / kustomize"


def test_kustomization_lists_every_manifest():
    kustomization = one("kustomization.yaml")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    manifests = set(KINDS) - {"kustomization.yaml"}
    assert set(listed) == manifests - NOT_IN_KUSTOMIZATION
    for name in listed:
        assert (KUBE / name).is_file(), name
    (image,) = kustomization["images"]
    assert image["name"] == container()["image"]
    assert image["newTag"] == pingaway_exporter.__version__, "bump the image tag with the package version"


def test_kubectl_kustomize_builds_it():
    kubectl = need_tool("kubectl")
    res = subprocess.run([kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    built = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert sorted(d["kind"] for d in built) == sorted(
        KINDS[n][1] for n in one("kustomization.yaml")["resources"])
    (deployment,) = [d for d in built if d["kind"] == "Deployment"]
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"pingaway-exporter:{pingaway_exporter.__version__}"
    for doc in built:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "pingaway-exporter"
    # The common label must not leak into the selector: a selector cannot change after the first apply.
    assert deployment["spec"]["selector"]["matchLabels"] == one("deployment.yaml")["spec"]["selector"]["matchLabels"]


# --------------------------------------------------------------------------
# Deployment, Service and ServiceMonitor fit together
# --------------------------------------------------------------------------

def test_labels_and_selectors_line_up():
    deployment, service, monitor = one("deployment.yaml"), one("service.yaml"), one("servicemonitor.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "namespaceSelector" not in monitor["spec"], "the ServiceMonitor lives beside the Service"


def test_ports_line_up():
    (port,) = container()["ports"]
    assert port["containerPort"] == DEFAULT_PORT and port["name"] == "http" and port["protocol"] == "TCP"
    (svc_port,) = one("service.yaml")["spec"]["ports"]
    assert svc_port["port"] == DEFAULT_PORT and svc_port["targetPort"] == port["name"]
    (endpoint,) = one("servicemonitor.yaml")["spec"]["endpoints"]
    assert endpoint["port"] == svc_port["name"]
    assert endpoint["path"] == "/metrics"
    assert not any(a.startswith("--web.listen-address") for a in container().get("args", []))
    assert "PINGAWAY_WEB_LISTEN_ADDRESS" not in env()


def test_servicemonitor_interval_and_job():
    (endpoint,) = one("servicemonitor.yaml")["spec"]["endpoints"]
    assert endpoint["interval"] == "60s", "Pingaway asks for about one call a minute"
    assert endpoint["scrapeTimeout"] == "15s"
    # The dashboard's $job variable defaults to pingaway.
    jobs = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert jobs == [{"action": "replace", "targetLabel": "job", "replacement": "pingaway"}]
    # alerts.yml's PingawayExporterDown selects targets by the exporter label, copied from the address.
    assert 'up{exporter!=""}' in (ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    exporter = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "exporter"]
    assert exporter == [{"action": "replace", "sourceLabels": ["__address__"], "targetLabel": "exporter"}]


def test_probes():
    c = container()
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        get = c[probe]["httpGet"]
        assert get["path"] == path and get["port"] == "http", probe
        assert get.get("scheme", "HTTP") == "HTTP"
        assert c[probe]["timeoutSeconds"] >= 1


def test_probe_paths_answer_on_a_real_exporter(sim, exporter_factory):
    exp = exporter_factory(sim)
    for probe in ("livenessProbe", "readinessProbe"):
        path = container()[probe]["httpGet"]["path"]
        assert exp.get(path).status_code == 200, path


def test_security_context():
    pod, c = pod_spec(), container()
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and csc["runAsNonRoot"] is True
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert (psc["runAsUser"], psc["runAsGroup"]) == (int(user[0]), int(user[1])) == (10001, 10001)
    assert (csc["runAsUser"], csc["runAsGroup"]) == (10001, 10001)
    assert psc["fsGroup"] == 10001, "without fsGroup the non-root user cannot read the Secret's files"
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"} == csc["seccompProfile"]
    assert pod["automountServiceAccountToken"] is False
    assert "privileged" not in csc and "hostNetwork" not in pod


def test_termination_grace_covers_the_drain():
    # On SIGTERM the exporter lets in-flight scrapes finish for up to 15 s.
    assert pod_spec()["terminationGracePeriodSeconds"] >= 20


def test_resources():
    resources = container()["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert quantity(limits["memory"]) == 512 * (1 << 20)
    assert quantity(requests["memory"]) <= quantity(limits["memory"])
    assert quantity(requests["cpu"]) <= quantity(limits["cpu"])
    # docs/performance.md: peak RSS at 50,000 extensions is about 100 MiB; leave room for two scrapes.
    assert quantity(limits["memory"]) >= 2 * 100 * (1 << 20)
    # ... and 5,000 declared small domains under their load peak at about 245 MiB (bench/capacity_bench.py).
    assert quantity(limits["memory"]) >= 2 * 245 * (1 << 20)


def test_the_startup_probe_covers_loading_thousands_of_targets():
    c = container()
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/-/healthy"
    # docs/performance.md: 5,000 declared targets are ready in 3-6 s; give ten times that.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_secret_is_mounted_as_the_token_file():
    vol = volume("secret")
    secret = one("secret.example.yaml")
    assert vol["secret"]["secretName"] == secret["metadata"]["name"]
    mount = mount_for(vol["name"])
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount is never updated, so a rotated token would not arrive"
    token_file = env()["PINGAWAY_TOKEN_FILE"]
    assert token_file == "/run/secrets/pingaway/token"
    assert os.path.dirname(token_file) == mount["mountPath"]
    (item,) = vol["secret"]["items"]
    assert item["path"] == os.path.basename(token_file) and item["key"] in secret["stringData"]
    assert vol["secret"]["defaultMode"] == 0o440
    # The exporter reads these variables as the token file and the config file.
    cfg = load([], env())
    assert cfg.token is not None and cfg.token.path == token_file
    assert cfg.config_file == env()["PINGAWAY_CONFIG_FILE"]
    assert not any("token" in a or "password" in a for a in container().get("args", []))


def test_configmap_is_mounted_as_the_config_file_and_loads():
    vol = volume("configMap")
    configmap = one("configmap.yaml")
    assert vol["configMap"]["name"] == configmap["metadata"]["name"]
    mount = mount_for(vol["name"])
    assert mount["readOnly"] is True and "subPath" not in mount
    config_file = env()["PINGAWAY_CONFIG_FILE"]
    assert os.path.dirname(config_file) == mount["mountPath"]
    (item,) = vol["configMap"]["items"]
    assert item["path"] == os.path.basename(config_file)
    settings = load_text(configmap["data"][item["key"]], config_file)
    assert [g.name for g in settings.groups] == ["support", "växel", "it-jour"]


def test_example_secret_is_a_placeholder_the_exporter_refuses():
    token = one("secret.example.yaml")["stringData"]["token"]
    assert "REPLACE" in token and not token.startswith("eyJ")
    with pytest.raises(SecretError, match="not a JWT"):
        TokenState(SecretSource("token file", value=token)).current()
    assert "secret.example.yaml" in NOT_IN_KUSTOMIZATION


# --------------------------------------------------------------------------
# The Secret's file modes, as the kubelet writes them
# --------------------------------------------------------------------------

def kubelet_volume(folder: Path, files: dict[str, str], *, mode: int, gid: int | None, generation: int = 1) -> None:
    """Files laid out as the kubelet's atomic writer does: name -> ..data/name -> ..<timestamp>/name.

    A later generation is written beside the old one and ``..data`` is swapped
    with a rename, which is how a Secret update reaches a running pod.
    """
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    data = folder / f"..2026_11_28_04_00_00.{generation}"
    data.mkdir()
    for name, text in files.items():
        path = data / name
        path.write_text(text, encoding="utf-8")
        os.chown(path, 0, 0 if gid is None else gid)
        path.chmod(mode)
    link = folder / "..data_tmp"
    link.symlink_to(data.name)
    link.rename(folder / "..data")
    for name in files:
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making files owned by another user needs root")


@needs_root
def test_a_kubernetes_secret_with_fsgroup_is_not_loose(tmp_path):
    kubelet_volume(tmp_path / "s", {"token": "x"}, mode=0o440, gid=10001)
    assert os.stat(tmp_path / "s" / "token").st_uid == 0
    assert not loose_file(str(tmp_path / "s" / "token"))
    assert not SecretSource("token file", path=str(tmp_path / "s" / "token")).loose_permissions()


@needs_root
@pytest.mark.parametrize(("mode", "uid", "loose"), [
    (0o400, 0, False), (0o600, 10001, False), (0o440, 0, False),
    (0o440, 10001, True),   # a group grant by a non-root owner: anyone in that group reads it
    (0o444, 0, True), (0o604, 0, True), (0o644, 10001, True),
])
def test_loose_file_rule(tmp_path, mode, uid, loose):
    path = tmp_path / "secret"
    path.write_text("x")
    os.chown(path, uid, 10001)
    path.chmod(mode)
    assert loose_file(str(path)) is loose


# --------------------------------------------------------------------------
# Rehearsal: the exporter as the Deployment runs it
# --------------------------------------------------------------------------

REHEARSAL = r"""
set -eu
mount --make-rprivate /
# Private to this mount namespace: a tmpfs on /run for the Secret's mount point,
# an overlay on /etc for the ConfigMap's, nothing written to the host.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$TOKEN_DIR"
mount --bind "$SECRET_SRC" "$TOKEN_DIR"
mkdir -p "$OVERLAY/upper" "$OVERLAY/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$OVERLAY/upper,workdir=$OVERLAY/work" /etc
mkdir -p "$CONFIG_DIR"
mount --bind "$CONFIG_SRC" "$CONFIG_DIR"
# The interpreter may live below a directory only root may enter (a pyenv in
# /root); show uid 10001 that one directory and nothing else of it.
if [ -n "$HIDDEN" ]; then
    mkdir -p /run/keep && mount --bind "$HIDDEN/$SHOWN" /run/keep
    mount -t tmpfs -o mode=0755 tmpfs "$HIDDEN"
    mkdir -p "$HIDDEN/$SHOWN" && mount --move /run/keep "$HIDDEN/$SHOWN"
    mount -o remount,ro "$HIDDEN"
fi
if [ "$READ_ONLY_ROOT" = true ]; then
    mount -o remount,bind,ro /
    mount -o remount,ro /etc
    mount -o remount,ro /run
fi
mount -o remount,bind,ro "$TOKEN_DIR"
mount -o remount,bind,ro "$CONFIG_DIR"
# fsGroup is a supplementary group of the container's processes.
if [ -n "$FS_GROUP" ]; then groups="--groups=$FS_GROUP"; else groups=--clear-groups; fi
exec setpriv --reuid "$RUN_UID" --regid "$RUN_GID" "$groups" \
    --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
"""


def hidden_ancestor(path: Path) -> tuple[str, str] | None:
    """The directory above ``path`` that others may not enter, and its child on the way down.

    ("", "") when there is none; None when there is more than one, which the rehearsal cannot open up.
    """
    parts = path.resolve().parts
    closed = [i for i in range(1, len(parts)) if not os.stat(Path(*parts[: i + 1])).st_mode & 0o001]
    if not closed:
        return "", ""
    if len(closed) > 1 or closed[0] == len(parts) - 1:
        return None
    return str(Path(*parts[: closed[0] + 1])), parts[closed[0] + 1]


def mount_namespaces_work() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a mount namespace"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    res = subprocess.run(["unshare", "-m", "sh", "-c", "mount --make-rprivate / && mount -t tmpfs tmpfs /run"],
                         capture_output=True, text=True, timeout=30)
    return None if res.returncode == 0 else f"no mount namespaces here: {res.stderr.strip()}"


def test_deployment_rehearsal(sim, tmp_path):
    why = mount_namespaces_work()
    if why:
        pytest.skip(why)
    from tests.helpers.process import free_port

    psc, csc = pod_spec()["securityContext"], container()["securityContext"]
    fs_group = psc.get("fsGroup")
    token_file, config_file = env()["PINGAWAY_TOKEN_FILE"], env()["PINGAWAY_CONFIG_FILE"]
    assert token_file.startswith("/run/") and config_file.startswith("/etc/"), "the rehearsal mounts under these"
    secret_src, config_src = tmp_path / "secret-volume", tmp_path / "configmap-volume"
    first = sim.issue_token(issued_at=1_790_000_000, expires_in=None)
    kubelet_volume(secret_src, {"token": first}, mode=vol_mode("secret"), gid=fs_group)
    configmap = one("configmap.yaml")["data"]
    kubelet_volume(config_src, configmap, mode=0o644, gid=None)

    found = hidden_ancestor(Path(sys.executable).parent)
    if found is None:
        pytest.skip(f"uid 10001 cannot be shown the interpreter at {sys.executable}")
    hidden, shown = found
    port = free_port()
    child_env = without_pingaway_env()
    child_env.update(env())
    child_env.update(
        PYTHONPATH=str(ROOT / "exporter"), TOKEN_DIR=os.path.dirname(token_file), SECRET_SRC=str(secret_src),
        CONFIG_DIR=os.path.dirname(config_file), CONFIG_SRC=str(config_src), OVERLAY=str(tmp_path / "overlay"),
        HIDDEN=hidden, SHOWN=shown, RUN_UID=str(psc["runAsUser"]), RUN_GID=str(psc["runAsGroup"]),
        FS_GROUP=str(fs_group or ""), READ_ONLY_ROOT=str(csc["readOnlyRootFilesystem"]).lower())
    # The container's arguments, plus what differs on a test machine: the
    # upstream is the simulator, and servers in tests listen on loopback only.
    argv = [sys.executable, "-m", "pingaway_exporter", *container().get("args", []),
            "--pingaway.url", sim.url, "--web.listen-address", f"127.0.0.1:{port}"]
    log_path = tmp_path / "exporter.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(["unshare", "-m", "sh", "-c", REHEARSAL, "rehearsal", *argv], env=child_env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            ready = container()["readinessProbe"]["httpGet"]["path"]
            end = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(base + ready, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < end, "exporter not ready:\n" + log_path.read_text()
                time.sleep(0.1)
            assert httpx.get(base + container()["livenessProbe"]["httpGet"]["path"], timeout=5).status_code == 200
            # It really runs as the Deployment says, on a read-only root.
            status = Path(f"/proc/{proc.pid}/status").read_text()
            assert re.search(r"^Uid:\s+10001\s+10001", status, re.M), status
            assert re.search(r"^Groups:\s+10001\s*$", status, re.M), status
            assert re.search(r"^CapEff:\s+0+$", status, re.M), status

            metrics = samples(httpx.get(base + "/metrics", timeout=15).text)
            assert value(metrics, "pingaway_up") == 1, log_path.read_text()
            assert value(metrics, "pingaway_token_issued_timestamp_seconds") == 1_790_000_000
            assert value(metrics, "pingaway_group_staffing_minimum", group="växel") == 3
            assert value(metrics, "pingaway_config_last_reload_successful") == 1

            # A Secret update, as the kubelet makes it: a new generation and a swapped ..data link.
            second = sim.issue_token(issued_at=1_790_086_400, expires_in=None)
            kubelet_volume(secret_src, {"token": second}, mode=vol_mode("secret"), gid=fs_group,
                           generation=2)
            metrics = samples(httpx.get(base + "/metrics", timeout=15).text)
            assert value(metrics, "pingaway_up") == 1
            assert value(metrics, "pingaway_token_issued_timestamp_seconds") == 1_790_086_400
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(pod_spec()["terminationGracePeriodSeconds"])
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    text = log_path.read_text()
    assert proc.returncode == 0, text
    assert "readable by group or others" not in text
    assert "Read-only file system" not in text and "Traceback" not in text
    assert first not in text and second not in text


def vol_mode(kind: str) -> int:
    return volume(kind)[kind]["defaultMode"]
