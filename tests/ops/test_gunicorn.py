"""The shipped gunicorn configuration (deploy/gunicorn.conf.py) under Prometheus multiprocess
mode: a worker SIGKILLed in the middle of a request must not count as "in flight" forever —
its ``child_exit`` hook drops the dead worker's live gauges — while its counters stay."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "gunicorn.conf.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            out.add(int(stat.parent.name))
    return out


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return response.read().decode()


def _sample(text: str, pattern: str) -> float | None:
    m = re.search(rf"^{pattern} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def _wait(predicate, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_gunicorn_child_exit_drops_a_killed_workers_in_flight_gauge_and_keeps_its_counts(tmp_path):
    port = _free_port()
    prom = tmp_path / "prom"
    prom.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "kk99.settings.dev", "DEBUG": "0", "KK99_VAR_DIR": str(tmp_path), "ALLOWED_HOSTS": "127.0.0.1",
        "KK99_EMBEDDED_ENGINE": "false", "PROMETHEUS_MULTIPROC_DIR": str(prom), "WEB_CONCURRENCY": "1",
        "KK99_BIND": f"127.0.0.1:{port}", "PYTHONUNBUFFERED": "1",
        # No database: /metrics reports its state part as a scrape error at once (no pool
        # waiting for a server), so the scrapes only measure the instruments under test.
        "DATABASE_URL": "postgres://root@127.0.0.1:1/kk99_none", "DB_POOL": "0",
    })
    env.pop("KK99_METRICS_TOKEN", None)
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "kk99.wsgi:application"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    stuck = None
    try:
        _wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200, 90, "gunicorn", log)
        (worker,) = _children(master.pid)
        assert (prom / f"gauge_livesum_{worker}.db").exists()

        # A request stuck inside the worker: the body is shorter than its Content-Length, and
        # the input guard (behind the metrics middleware) waits for the rest.
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 100\r\n\r\na=1")
        _wait(lambda: _sample(_scrape(port), "kk99_http_requests_in_flight") == 1.0, 90, "the stuck request in flight", log)

        os.kill(worker, signal.SIGKILL)
        (replacement,) = _wait(lambda: (c := _children(master.pid)) and worker not in c and c, 60, "a new worker", log)
        text = _wait(lambda: _scrape(port), 90, "the new worker to answer", log)

        # The dead worker's live gauge is gone (child_exit → mark_process_dead) …
        assert _sample(text, "kk99_http_requests_in_flight") == 0.0, text[:3000]
        assert not (prom / f"gauge_livesum_{worker}.db").exists()
        assert replacement != worker
        # … its counters are not: the healthz request it answered is still counted.
        served = _sample(text, r'kk99_http_requests_total\{method="GET",route="healthz",status="200"\}')
        assert served is not None and served >= 1.0, text[:3000]
    finally:
        if stuck is not None:
            stuck.close()
        master.terminate()
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
