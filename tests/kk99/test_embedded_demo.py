"""The demo on the embedded default, as `make run` runs it: the embedded PostgreSQL, the web
server with its in-process engine and the demo market maker trading through /api/v3. The
market maker is seeded with balances past 10^7 in 8-decimal assets — where SQLite's 15
significant digits drifted (issue 9: 4,994,902.45480000 against entries summing to
4,994,902.45480002) — and after trading, ``ledger_audit`` passes with no tolerance."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from tests.kk99.test_embedded_db import ROOT, embedded_env, postgres_running, run

pytestmark = pytest.mark.slow

TOP_UP = Decimal("50000000.12345678")  # 5·10^7 with all 8 decimals used

SEED_LARGE = f"""
import django; django.setup()
from decimal import Decimal
from django.contrib.auth import get_user_model
from wallets.models import Asset
from wallets.services import ledger_credit
for email in ("maker@kk99.local", "taker@kk99.local"):
    user = get_user_model().objects.get(email=email)
    for asset in Asset.objects.filter(precision=8).exclude(symbol="KK99"):
        ledger_credit(user=user, asset=asset, amount=Decimal("{TOP_UP}"), idempotency_key=f"test-large:{{email}}:{{asset.symbol}}", kind="issuance", counter="issuance")
"""

REPORT = """
import django; django.setup()
from django.contrib.auth import get_user_model
from trading.models import Trade
from wallets.models import Balance
print(Trade.objects.count())
for b in Balance.objects.filter(account__user__email__in=["maker@kk99.local", "taker@kk99.local"], asset__precision=8).select_related("asset"):
    print(b.asset.symbol, b.available + b.locked)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def significant_digits(value: Decimal) -> int:
    return len(value.normalize().as_tuple().digits)


def test_demo_market_maker_on_the_embedded_default_trades_past_ten_million_and_the_audit_is_exact(tmp_path):
    env = embedded_env(tmp_path)
    holder = subprocess.Popen([sys.executable, "-m", "kk99.embedded_db", "hold"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    processes: list[subprocess.Popen] = []
    try:
        assert "embedded PostgreSQL running" in holder.stdout.readline()
        for args in (["manage.py", "migrate", "--noinput"], ["manage.py", "seed_demo"], ["-c", SEED_LARGE]):
            step = run(args, tmp_path)
            assert step.returncode == 0, f"{args}: {step.stderr[-2000:]}"

        port = free_port()
        log = open(tmp_path / "server.log", "w")
        processes.append(subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        bot = run(["manage.py", "demo_bot", "--base-url", f"http://127.0.0.1:{port}", "--iterations", "12", "--interval", "0.2"], tmp_path)
        assert bot.returncode == 0, bot.stderr[-2000:]
        time.sleep(1)  # the in-process engine settles what the last round sent
        for p in processes:
            p.terminate()
            p.wait(timeout=60)
        processes.clear()

        report = run(["-c", REPORT], tmp_path)
        assert report.returncode == 0, report.stderr[-2000:]
        lines = report.stdout.split("\n")
        trades = int(lines[0])
        balances = [Decimal(line.split()[1]) for line in lines[1:] if line.strip()]
        assert trades > 0, "the market maker made no trade"
        assert any(b > 10**7 and b != TOP_UP and significant_digits(b) > 15 for b in balances), balances

        audit = run(["manage.py", "ledger_audit"], tmp_path)
        assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
        assert "RESULT: OK" in audit.stdout
    finally:
        for p in processes:
            p.terminate()
            p.wait(timeout=60)
        holder.terminate()
        holder.wait(timeout=60)
    assert not postgres_running(tmp_path / "pgdata")
