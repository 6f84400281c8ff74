"""Kubernetes manifests: valid against the bundled schemas (kubernetes-validate, offline, strict),
and every container carries probes, resources and a locked-down security context."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
K8S_VERSION = "1.33.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _applied_files() -> list[Path]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kust["resources"]]


def _resources() -> list[dict]:
    return [doc for path in _applied_files() for doc in _documents(path)]


def _pod_spec(doc: dict) -> dict:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def test_kustomization_lists_every_manifest_but_the_secret_example():
    listed = {p.name for p in _applied_files()}
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("path", sorted(set(K8S.glob("*.yaml")) - {K8S / "kustomization.yaml"}), ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path):
    for doc in _documents(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_rejects_a_misspelt_field():
    doc = _documents(K8S / "web.yaml")[0]
    doc["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def container_problems(doc: dict) -> list[str]:
    """What a workload's containers lack: probes (not for Jobs), resources, security context."""
    problems = []
    pod = _pod_spec(doc)
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: service account token mounted")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{name}: pod not runAsNonRoot")
    for c in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name}/{c['name']}"
        if doc["kind"] not in {"Job", "CronJob"}:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe not in c:
                    problems.append(f"{where}: no {probe}")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    problems.append(f"{where}: no {kind}.{r}")
        sc = c.get("securityContext", {})
        if sc.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: capabilities not dropped")
        if c["image"].endswith(":latest") or ":" not in c["image"]:
            problems.append(f"{where}: unpinned image")
    return problems


def test_every_container_has_probes_resources_and_security_context():
    workloads = [d for d in _resources() if d["kind"] in WORKLOADS]
    assert len(workloads) >= 6
    problems = [p for d in workloads for p in container_problems(d)]
    assert not problems, "\n".join(problems)


def test_the_container_check_catches_a_missing_probe_and_a_writable_root():
    doc = _documents(K8S / "web.yaml")[0]
    c = doc["spec"]["template"]["spec"]["containers"][0]
    del c["readinessProbe"]
    c["securityContext"] = {**c["securityContext"], "readOnlyRootFilesystem": False}
    assert {p.split(": ", 1)[1] for p in container_problems(doc)} == {"no readinessProbe", "readOnlyRootFilesystem"}


def test_topology_web_hpa_engines_with_standby_singleton_beat_pdbs_and_migration_job():
    by_kind: dict[str, dict[str, dict]] = {}
    for d in _resources():
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    assert by_kind["HorizontalPodAutoscaler"]["kk99-web"]["spec"]["scaleTargetRef"]["name"] == "kk99-web"
    engines = {n: d for n, d in by_kind["StatefulSet"].items() if n.startswith("kk99-engine-")}
    assert len(engines) >= 2
    groups = []
    for d in engines.values():
        assert d["spec"]["replicas"] >= 2, "owner + hot standby"
        cmd = d["spec"]["template"]["spec"]["containers"][0]["command"]
        groups.append(set(cmd[cmd.index("--markets") + 1].split(",")))
    assert not set.intersection(*groups), "market groups are disjoint"
    beat = by_kind["Deployment"]["kk99-celery-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert {"kk99-web", "kk99-celery-worker", *engines} <= set(by_kind["PodDisruptionBudget"])
    assert any("migrate" in " ".join(d["spec"]["template"]["spec"]["containers"][0]["command"]) for d in by_kind["Job"].values())
    assert "kk99-default-deny-ingress" in by_kind["NetworkPolicy"]
    assert by_kind["Ingress"]["kk99"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert {"Role", "RoleBinding", "ServiceAccount", "ConfigMap"} <= set(by_kind)


def test_the_web_probes_use_healthz_and_readyz():
    web = yaml.safe_load((K8S / "web.yaml").read_text().split("\n---")[0])
    c = web["spec"]["template"]["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
