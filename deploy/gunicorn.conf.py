"""gunicorn configuration for the HTTP-only API (docs/api.md, docs/operations.md).

    gunicorn -c deploy/gunicorn.conf.py kk99.wsgi:application

Defaults are the measured set-up of docs/api.md (gthread, 2 workers per core, 4 threads, keep-alive
30 s); each can be overridden by gunicorn's own ``GUNICORN_CMD_ARGS`` or a command-line flag.

Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, kk99/metrics.py): every worker
writes its values to files named by its pid, and ``/metrics`` sums them. Counters of a dead
worker must stay (they are history), but its *live* gauges (requests in flight, ``livesum`` /
``livemax``) must go, or a worker killed mid-request counts as busy forever. ``child_exit``
runs in the master for every worker that exits — gracefully, by timeout or by SIGKILL — and
drops them (tests/ops/test_gunicorn.py kills a worker in the middle of a request).
"""
from __future__ import annotations

import multiprocessing
import os

from kk99.metrics import mark_process_dead

bind = os.environ.get("KK99_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
threads = int(os.environ.get("KK99_GUNICORN_THREADS", "4"))
keepalive = 30
backlog = 2048
accesslog = "-"


def child_exit(server, worker) -> None:
    """A worker exited (any reason): remove its live gauges from the multiprocess directory."""
    mark_process_dead(worker.pid)
