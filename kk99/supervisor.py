"""The engine supervisor behind ``kk99 engines run``: keeps one ``run_engine`` process alive.

* exit 3 (fenced: another engine took a market) → restart at once; the new process finds the
  markets locked and waits as a hot standby;
* any other exit or a crash → restart with a back-off (1 s doubling to 30 s; reset after the
  child has run for a minute), so a crash loop does not hammer PostgreSQL;
* SIGTERM/SIGINT → forwarded to the child, which finishes its batch and exits; then we exit 0.

Kubernetes does the same with ``restartPolicy: Always`` (deploy/k8s/engine.yaml); this is for
hosts without an orchestrator (systemd, compose, the scale-out demo).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from kk99 import metrics

logger = logging.getLogger("kk99.supervisor")

EXIT_FENCED = 3  # trading.engine.runner.EXIT_FENCED (not imported: the supervisor needs no Django)
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
HEALTHY_AFTER_SECONDS = 60.0


@dataclass
class SupervisorReport:
    starts: int = 0
    exits: list[int] = field(default_factory=list)


def engine_command(*, markets: list[str], owner: str | None, max_seconds: float | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "django", "run_engine"]
    if markets:
        cmd += ["--markets", ",".join(markets)]
    if owner:
        cmd += ["--owner", owner]
    if max_seconds:
        cmd += ["--max-seconds", str(max_seconds)]
    return cmd


def supervise(
    cmd: list[str],
    *,
    max_restarts: int | None = None,
    stop: threading.Event | None = None,
    log_file: str | None = None,
    env: dict[str, str] | None = None,
) -> SupervisorReport:
    """Run ``cmd`` and restart it whenever it exits, until ``stop`` is set, a signal arrives or
    ``max_restarts`` restarts have been made."""
    stop = stop or threading.Event()
    report = SupervisorReport()
    child: subprocess.Popen | None = None

    def _on_signal(signum, _frame):
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _on_signal)
    backoff = BACKOFF_START
    env = {**os.environ, **(env or {})}
    env.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")
    out = open(log_file, "ab") if log_file else None  # lives as long as the loop
    try:
        while not stop.is_set():
            started = time.monotonic()
            child = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
            report.starts += 1
            logger.info("supervisor: started %s (pid %d)", " ".join(cmd[2:]), child.pid)
            while child.poll() is None:
                if stop.wait(0.2):
                    if child.poll() is None:
                        child.terminate()
                    try:
                        child.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
            code = child.returncode
            report.exits.append(code)
            if stop.is_set():
                break
            if max_restarts is not None and report.starts > max_restarts:
                break
            if code == EXIT_FENCED:
                reason, delay = "fenced", 0.0
                logger.warning("supervisor: engine pid %d was fenced (exit 3); restarting as a standby", child.pid)
            else:
                reason = "exit" if code == 0 else "crash"
                if time.monotonic() - started > HEALTHY_AFTER_SECONDS:
                    backoff = BACKOFF_START
                delay, backoff = backoff, min(BACKOFF_MAX, backoff * 2)
                logger.warning("supervisor: engine pid %d exited with %s; restarting in %.0f s", child.pid, code, delay)
            metrics.ENGINE_RESTARTS.labels(reason=reason).inc()
            if delay and stop.wait(delay):
                break
    finally:
        if out is not None:
            out.close()
    return report
