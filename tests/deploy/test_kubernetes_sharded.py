"""deploy/kubernetes/sharded/ and the Operator objects, validated offline against the Operator's own CRD schemas.

There is no cluster here. ``tests/data/crds/`` holds the ``openAPIV3Schema`` of the Prometheus Operator's
ScrapeConfig and ServiceMonitor CRDs, copied from the operator's release (the file says which) with only the
``description`` texts removed. Each object is validated against its version's schema with ``jsonschema``,
strictly: an object schema with ``properties`` refuses any other key, as ``kubectl apply
--validate=strict`` does, unless the schema keeps unknown fields (``x-kubernetes-preserve-unknown-fields``).
The sharded kustomization is then cross-checked: the StatefulSet runs the base Deployment's pod, the
headless Service names its pods, and the ScrapeConfig is docs/deployment.md's hashmod block in the
Operator's spelling, with one shard per replica.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
SHARDED = KUBE / "sharded"
CRDS = ROOT / "tests" / "data" / "crds"

pytestmark = pytest.mark.unit


def one(path: Path) -> dict:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    return doc


def strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its properties."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def validate(obj: dict, crd_file: str) -> list[str]:
    crd = json.loads((CRDS / crd_file).read_text(encoding="utf-8"))
    group, version = obj["apiVersion"].split("/")
    assert (group, obj["kind"]) == (crd["group"], crd["kind"])
    schema = strict(crd["versions"][version])
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def test_the_scrapeconfig_fits_the_operators_crd():
    assert validate(one(SHARDED / "scrapeconfig.yaml"), "scrapeconfigs.json") == []


def test_the_servicemonitor_fits_the_operators_crd():
    assert validate(one(KUBE / "servicemonitor.yaml"), "servicemonitors.json") == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s["spec"].update(relabellings=[]), "Additional properties are not allowed ('relabellings'"),
    (lambda s: s["spec"]["relabelings"][2].update(action="hash-mod"), "'hash-mod' is not one of"),
    (lambda s: s["spec"]["httpSDConfigs"][0].update(url="ftp://x/sd"), "does not match"),
    (lambda s: s["spec"].update(scrapeInterval="a minute"), "does not match"),
])
def test_the_validation_refuses_what_the_operator_would(change, expected):
    obj = one(SHARDED / "scrapeconfig.yaml")
    change(obj)
    errors = validate(obj, "scrapeconfigs.json")
    assert any(expected in e for e in errors), errors


def snake(step: dict) -> dict:
    """A relabelling step in Prometheus's spelling (sourceLabels -> source_labels, HashMod -> hashmod)."""
    out = {re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), k): v for k, v in step.items()}
    if "action" in out:
        out["action"] = out["action"].lower()
    return out


def documented_job() -> dict:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# hashmod sharding.*?)```", text, re.S)
    assert block
    (job,) = yaml.safe_load(block.group(1))["scrape_configs"]
    return job


def test_the_scrapeconfig_is_the_documented_hashmod_over_the_statefulsets_pods():
    spec = one(SHARDED / "scrapeconfig.yaml")["spec"]
    sts = one(SHARDED / "statefulset.yaml")
    service = one(SHARDED / "service.yaml")
    replicas = sts["spec"]["replicas"]
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None", "per-pod DNS names need a headless Service"
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    port = next(p["containerPort"] for c in sts["spec"]["template"]["spec"]["containers"] for p in c["ports"])
    pods = [f"{sts['metadata']['name']}-{i}.{service['metadata']['name']}.monitoring.svc:{port}"
            for i in range(replicas)]
    assert [c["url"] for c in spec["httpSDConfigs"]] == [f"http://{p}/sd" for p in pods]

    job = documented_job()
    steps = [snake(s) for s in spec["relabelings"]]
    documented = job["relabel_configs"]
    (hashmod,) = [s for s in steps if s.get("action") == "hashmod"]
    assert hashmod["modulus"] == replicas
    shards = [s for s in steps if s.get("source_labels") == [hashmod["target_label"]]]
    assert [(s["regex"], s["replacement"]) for s in shards] == [(str(i), p) for i, p in enumerate(pods)]
    # the same steps as the documented block, but for the addresses
    assert [{k: v for k, v in s.items() if k != "replacement"} for s in steps] \
        == [{k: v for k, v in s.items() if k != "replacement"} for s in documented]
    assert (spec["metricsPath"], spec["scrapeInterval"], spec["scrapeTimeout"]) \
        == (job["metrics_path"], job["scrape_interval"], job["scrape_timeout"])


def test_the_statefulset_runs_the_base_deployments_pod():
    sts = one(SHARDED / "statefulset.yaml")
    deployment = one(KUBE / "deployment.yaml")
    assert sts["spec"]["template"] == deployment["spec"]["template"]
    assert sts["spec"]["selector"] == deployment["spec"]["selector"]
    assert sts["metadata"]["labels"] == deployment["metadata"]["labels"]


def test_kubectl_kustomize_builds_the_sharded_kustomization():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed; the structural tests above still ran")
    res = subprocess.run([kubectl, "kustomize", str(SHARDED)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    built = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert sorted(d["kind"] for d in built) == ["ScrapeConfig", "Service", "StatefulSet"]
    (scrape,) = [d for d in built if d["kind"] == "ScrapeConfig"]
    assert validate(scrape, "scrapeconfigs.json") == []
