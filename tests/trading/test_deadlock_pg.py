"""No deadlock between the engine and everything else that locks balances (issue 10 item 2).

Every balance lock — holds, releases, settlement, KK99 fee budgets, transfers, deposits,
withdrawals — goes through ``wallets.locks`` in one global order (EngineState → orders →
balances sorted by (account, asset)). The slow test runs two engine processes (two markets
sharing the users' USDT and KK99 rows, users paying fees in KK99) while several processes
place, cancel, transfer, deposit and hold/release at full speed, and checks PostgreSQL's own
deadlock counter. The other tests prove that a deadlock, should one ever happen, is a retried
batch and never a crash.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Q

from tests.fixtures import assert_holds_match_open_orders, assert_ledger_clean, fresh, fund, market_create, place
from tests.processes import database_url, wait_for
from trading.engine import faults
from trading.models import Order, Trade
from trading.services import fee_preference_set
from wallets.chains.token import token_asset

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("KK99_DEADLOCK_TEST_SECONDS", "30"))
WORKERS = 3

# One load process: random actions by random users until the deadline; prints its counts.
WORKER = r"""
import json, random, sys, time
import django
django.setup()
from decimal import Decimal as D
from django.contrib.auth import get_user_model
from django.db.utils import OperationalError
from trading.errors import TradingError
from trading.models import Market, Order
from trading.services import order_cancel, order_cancel_all, order_place
from wallets.errors import LedgerError
from wallets.models import Asset
from wallets.services import balance_hold, balance_release, ledger_credit, ledger_transfer

seed, seconds, user_ids = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
rng = random.Random(seed)
users = list(get_user_model().objects.filter(pk__in=user_ids))
markets = {m.symbol: m for m in Market.objects.select_related("base", "quote")}
usdt, kk99 = Asset.objects.get(symbol="USDT"), Asset.objects.get(symbol="KK99")
counts = {"orders": 0, "cancels": 0, "transfers": 0, "deposits": 0, "holds": 0, "refused": 0, "deadlocks": 0}
deadline = time.monotonic() + seconds
n = 0
while time.monotonic() < deadline:
    n += 1
    user = rng.choice(users)
    r = rng.random()
    try:
        if r < 0.55:
            symbol = rng.choice(["BTCUSDT", "KK99USDT"])
            ref, qty = (D("100"), D(rng.randint(1, 30)) / 10) if symbol == "BTCUSDT" else (D("1"), D(rng.randint(10, 300)) / 10)
            price = (ref * D(rng.randint(97, 103)) / 100).quantize(D("0.01"))
            order_place(user=user, market=markets[symbol], side=rng.choice(["BUY", "SELL"]), type="LIMIT",
                        quantity=qty, price=price, time_in_force=rng.choice(["GTC", "GTC", "IOC"]), stp_mode="NONE")
            counts["orders"] += 1
        elif r < 0.72:
            o = Order.objects.filter(user=user, status__in=Order.OPEN_STATUSES, cancel_requested=False).order_by("?").first()
            if o:
                order_cancel(user=user, order=o)
                counts["cancels"] += 1
        elif r < 0.75:
            order_cancel_all(user=user, market=rng.choice(["BTCUSDT", "KK99USDT"]))
            counts["cancels"] += 1
        elif r < 0.85:
            other = rng.choice(users)
            if other.pk != user.pk:
                ledger_transfer(from_user=user, to_user=other, asset=rng.choice([usdt, kk99]), amount=D("0.5"), idempotency_key=f"dl:{seed}:{n}:t")
                counts["transfers"] += 1
        elif r < 0.92:
            ledger_credit(user=user, asset=usdt, amount=D("1"), idempotency_key=f"dl:{seed}:{n}:d", kind="deposit")
            counts["deposits"] += 1
        else:
            balance_hold(user=user, asset=usdt, amount=D("2"), idempotency_key=f"dl:{seed}:{n}:h")
            balance_release(user=user, asset=usdt, amount=D("2"), idempotency_key=f"dl:{seed}:{n}:r")
            counts["holds"] += 1
    except (TradingError, LedgerError):
        counts["refused"] += 1
    except OperationalError as exc:
        if "deadlock" in str(exc).lower():
            counts["deadlocks"] += 1
        else:
            raise
print(json.dumps(counts))
"""


def _kk99_issue(make_user, holder, amount: str) -> None:
    """Issue KK99 through the real two-person supply flow (the supply audit stays clean)."""
    from django.contrib.auth.models import Permission

    from wallets.chains.token import token_supply_approve, token_supply_request

    staff = []
    for email in ("staff@kk99.local", "finance@kk99.local"):
        member = type(holder).objects.filter(email=email).first() or make_user(email, is_staff=True)
        member.user_permissions.add(*Permission.objects.filter(codename="approve_token_supply"))
        staff.append(type(holder).objects.get(pk=member.pk))
    supply = token_supply_request(staff=staff[0], kind="issue", amount=D(amount), holder=holder, reason="deadlock test")
    token_supply_approve(request_id=supply.pk, staff=staff[1])


def _env(**extra) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "kk99.settings.test", "LOG_LEVEL": "INFO",
           "KK99_ENGINE_IDLE_WAIT_SECONDS": "0.2", "KK99_ENGINE_STANDBY_RETRY_SECONDS": "0.2", "KK99_FEE_TIER_CACHE_SECONDS": "0"}
    env.pop("REDIS_URL", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _engine(tmp_path, symbol: str, **extra) -> subprocess.Popen:
    log = open(tmp_path / f"engine-{symbol}.log", "w")
    proc = subprocess.Popen([sys.executable, "manage.py", "run_engine", "--markets", symbol, "--owner", f"dl-{symbol}"], cwd=ROOT, env=_env(**extra), stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log.name
    return proc


def _pg_deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _drained() -> bool:
    return not Order.objects.filter(Q(status=Order.Status.PENDING_NEW) | Q(cancel_requested=True, status__in=Order.OPEN_STATUSES)).exists()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_placing_cancelling_and_settling_from_several_processes_never_deadlocks(tmp_path, btc, usdt, make_user):
    # Arrange: two markets sharing USDT and KK99; six users, all funded, half paying fees in KK99.
    kk99 = token_asset()
    market_create("BTCUSDT", btc, usdt)
    market_create("KK99USDT", kk99, usdt, reference_price=D("1"))
    users = []
    for i in range(6):
        user = make_user(f"dl{i}@example.com")
        fund(user, btc, "1000")
        fund(user, usdt, "1000000")
        _kk99_issue(make_user, user, "1000000")
        if i % 2 == 0:
            fee_preference_set(user=user, pay_fees_in_kk99=True)
        users.append(user.pk)
    connection.close()
    deadlocks_before = _pg_deadlocks()
    engines = [_engine(tmp_path, "BTCUSDT"), _engine(tmp_path, "KK99USDT")]
    try:
        # Act: the load, at full speed from several processes.
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, str(seed), str(SECONDS), json.dumps(users)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for seed in range(WORKERS)
        ]
        results = []
        for w in workers:
            out, err = w.communicate(timeout=SECONDS + 120)
            assert w.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        wait_for(_drained, 60, "the engines to drain")
        for e in engines:
            assert e.poll() is None, Path(e.log_path).read_text()[-3000:]
    finally:
        for e in engines:
            if e.poll() is None:
                e.send_signal(signal.SIGTERM)
        for e in engines:
            try:
                e.wait(timeout=20)
            except subprocess.TimeoutExpired:
                e.kill()
                e.wait()
    connection.close()
    # Assert: real work was done, on both markets …
    assert sum(r["orders"] for r in results) > 0 and sum(r["cancels"] for r in results) > 0
    assert Trade.objects.filter(market__symbol="BTCUSDT").exists() and Trade.objects.filter(market__symbol="KK99USDT").exists()
    assert Trade.objects.filter(Q(maker_fee_asset=kk99) | Q(taker_fee_asset=kk99)).exists(), "the KK99 fee path must have run"
    # … and PostgreSQL detected no deadlock anywhere (engines, placers, transfers, holds).
    logs = "".join(Path(e.log_path).read_text() for e in engines)
    assert "DeadlockDetected" not in logs and "deadlock detected" not in logs
    assert sum(r["deadlocks"] for r in results) == 0, results
    time.sleep(1.0)  # the exited backends' statistics are flushed
    assert _pg_deadlocks() - deadlocks_before == 0
    assert_holds_match_open_orders()
    assert_ledger_clean()


@pytest.mark.postgres
def test_an_injected_deadlock_rolls_the_batch_back_and_the_next_batch_retries_it(engine, market, alice, bob, monkeypatch):
    # Arrange: the next two batches fail with a real deadlock_detected from the server.
    monkeypatch.setenv("KK99_ENGINE_FAULT_DEADLOCK_BATCHES", "2")
    monkeypatch.setattr(faults, "_deadlocks_raised", 0)
    sell = place(alice, market, "SELL", quantity="1", price="100")
    buy = place(bob, market, "BUY", quantity="1", price="100")
    # Act / Assert: two rolled-back batches — nothing written, no exception — then the work is done.
    assert engine.process_batch().retried == 1
    assert engine.process_batch().retried == 1
    assert fresh(sell).status == Order.Status.PENDING_NEW and not Trade.objects.exists()
    engine.run_until_idle()
    assert fresh(sell).status == fresh(buy).status == Order.Status.FILLED
    assert Trade.objects.count() == 1 and engine.retries == 2
    assert_holds_match_open_orders()
    assert_ledger_clean()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_engine_process_survives_deadlocks_and_finishes_the_work(tmp_path, market, alice, bob):
    # Arrange: the engine process's first three batches hit a deadlock.
    sell = place(alice, market, "SELL", quantity="1", price="100")
    buy = place(bob, market, "BUY", quantity="1", price="100")
    connection.close()
    proc = _engine(tmp_path, market.symbol, KK99_ENGINE_FAULT_DEADLOCK_BATCHES=3)
    try:
        # Act
        wait_for(lambda: fresh(buy).status == Order.Status.FILLED, 60, "the order to fill")
        # Assert: still running, three retries logged, the trade settled once.
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    log = Path(proc.log_path).read_text()
    assert log.count("rolled back by DeadlockDetected") == 3, log[-3000:]
    assert fresh(sell).status == Order.Status.FILLED and Trade.objects.count() == 1
    assert_ledger_clean()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_engine_never_holds_a_balance_lock_out_of_the_global_order(engine, market, alice, bob, btc, usdt, make_user):
    """Deterministic: a competing posting holds alice's USDT row, waits until the engine's batch
    is blocked on it, then asks for alice's KK99 row (the global order: USDT before KK99). An
    engine that locked the KK99 fee budgets first (by pk, before settling) held that row:
    deadlock. Locking everything in one ordered statement, it holds only rows ordered before
    USDT, so the competitor finishes and the batch goes on."""
    import threading

    from wallets.services import ledger_lock

    # Arrange: alice pays fees in KK99 and takes bob's offer.
    kk99 = token_asset()
    _kk99_issue(make_user, alice, "100")
    fee_preference_set(user=alice, pay_fees_in_kk99=True)
    place(bob, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    buy = place(alice, market, "BUY", quantity="1", price="100")
    deadlocks_before = _pg_deadlocks()
    held, engine_blocked = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}
    results = {}

    def competitor():
        from django.db import transaction

        try:
            with transaction.atomic():
                ledger_lock(pairs=[(alice, usdt)])
                held.set()
                engine_blocked.wait(30)
                ledger_lock(pairs=[(alice, usdt), (alice, kk99)])
        except BaseException as exc:  # reported below
            errors["competitor"] = exc
        finally:
            connection.close()

    def run_engine():
        try:
            results["batch"] = engine.process_batch()
        except BaseException as exc:  # reported below
            errors["engine"] = exc
        finally:
            connection.close()

    # Act
    threads = [threading.Thread(target=competitor)]
    threads[0].start()
    assert held.wait(30)
    threads.append(threading.Thread(target=run_engine))
    threads[1].start()
    wait_for(_someone_waits_on_a_row_lock, 30, "the engine to wait on alice's USDT row")
    engine_blocked.set()
    for t in threads:
        t.join(60)
    # Assert: nobody deadlocked; the batch settled the trade with the fee in KK99.
    assert errors == {}, errors
    assert results["batch"].retried == 0 and results["batch"].trades == 1
    assert fresh(buy).status == Order.Status.FILLED
    assert Trade.objects.get(taker_order_id=buy.pk).taker_fee_asset_id == kk99.pk
    assert _pg_deadlocks() - deadlocks_before == 0
    assert_ledger_clean()


def _someone_waits_on_a_row_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0
