"""The scale-out proof, small: 2 web processes, 2 engine owners on different markets + 1
standby, 2 Celery workers + beat on one PostgreSQL and Redis; an owner and a web process are
SIGKILLed under load. Nothing is lost or doubled, ledger_audit passes, every market has an
owner again, and settling continues (deploy/scale/scale_demo.py; `make scale-demo` is the big run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def _url(dbname: str) -> str:
    s = connection.settings_dict
    return f"postgres://{s.get('USER') or ''}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{dbname}"


def test_scale_out_survives_killing_an_engine_owner_and_a_web_process(tmp_path):
    dbname = f"{connection.settings_dict['NAME']}_scale"[:63]
    proc = subprocess.run(
        [sys.executable, "deploy/scale/scale_demo.py", "--database-url", _url(dbname), "--redis-url", os.environ["REDIS_URL"],
         "--backlog", "40", "--seconds", "12", "--threads", "4", "--users", "4", "--log-dir", str(tmp_path), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError(f"no result (exit {proc.returncode}): {proc.stdout[-3000:]} {proc.stderr[-3000:]}") from None
    assert result["checks"], result
    failed = {k: v for k, v in result["checks"].items() if not v}
    assert not failed, json.dumps(result, indent=2)[:6000]
    assert proc.returncode == 0
    assert result["accepted"] > 0 and result["lost"] == 0
    assert result["standby_takeovers"] >= 1  # the standby took the killed owner's markets
    assert sorted(result["status_roles"]) == ["owner", "owner", "standby"]
