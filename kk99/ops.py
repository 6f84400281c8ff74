"""Operator actions and read-outs behind the ``kk99`` CLI (kk99/cli.py).

Selectors read (``ops_status``, ``ops_audit_log``); services write, each in one transaction
with its audit row (``market_set_status``, ``engine_failover``, ``ops_audit``). The CLI only
parses arguments, calls these and renders the result.
"""
from __future__ import annotations

import getpass
import socket
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db import connection, transaction
from django.utils import timezone


class OpsAuditAction(StrEnum):
    """Audit action names written by operators' CLI actions (``accounts.AuditLog.action``)."""

    MARKET_STATUS_CHANGED = "market_status_changed"
    ENGINE_FAILOVER = "engine_failover"
    BACKUP_CREATED = "backup_created"
    BACKUP_RESTORED = "backup_restored"
    LEDGER_AUDIT_RUN = "ledger_audit_run"


class OpsError(Exception):
    """An operator action refused; ``code`` is the CLI's exit status."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def operator_label() -> str:
    """Who ran the command, as recorded in the audit row (OS user @ host)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry in a container
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"


def ops_audit(*, action: str, target: str, details: dict[str, Any] | None = None) -> None:
    from accounts.audit import audit_record

    audit_record(action=action, target=target, details={"operator": operator_label(), "via": "kk99 cli", **(details or {})})


# --- ledger audit ----------------------------------------------------------------------------

def ledger_audit_consistent():
    """``wallets.audit.ledger_audit_run`` on one snapshot of the database.

    The audit reads balances, entries and totals in separate queries. While engines and
    withdrawals commit between those queries, a plain run compares a balance from before a
    batch with entries from after it and reports problems that do not exist (seen in the
    scale-out demo: "balance … != entries …" under load, clean when idle). In one REPEATABLE
    READ, read-only transaction every query sees the same committed state."""
    from wallets.audit import ledger_audit_run

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return ledger_audit_run()  # inside the caller's transaction: its isolation applies
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return ledger_audit_run()


# --- markets ---------------------------------------------------------------------------------

def market_set_status(*, symbol: str, status: str, reason: str = "") -> tuple[str, str]:
    """Halt, resume or set cancel-only. Returns (old, new). The engine applies it from its next
    batch (it re-reads the market) and the UI is told after commit."""
    from kk99.publish import markets_group, publish_on_commit
    from trading.models import Market
    from trading.services import engine_notify

    if status not in Market.Status.values:
        raise OpsError(f"unknown status {status!r}", code=2)
    with transaction.atomic():
        market = Market.objects.select_for_update().filter(symbol=symbol.upper()).first()
        if market is None:
            raise OpsError(f"no market {symbol.upper()}", code=3)
        old = market.status
        if old != status:
            market.status = status
            market.save(update_fields=["status"])
            engine_notify(symbol=market.symbol)
            publish_on_commit("market.status", {"symbol": market.symbol, "status": status}, groups=[markets_group()])
        ops_audit(action=OpsAuditAction.MARKET_STATUS_CHANGED, target=f"market:{market.symbol}", details={"from": old, "to": status, "reason": reason})
    return old, status


# --- engines ---------------------------------------------------------------------------------

@dataclass
class EngineRow:
    market: str
    status: str
    epoch: int
    owner: str
    owner_up: bool | None
    owner_pid: int | None
    pending: int
    claim_lag_seconds: float
    last_batch_age_seconds: float | None


def engines_list() -> list[EngineRow]:
    from django.db.models import Count, Min

    from trading.models import EngineState, Market, Order

    now = timezone.now()
    holders = engine_lock_holders()
    pending = {
        r["market_id"]: r
        for r in Order.objects.filter(status=Order.Status.PENDING_NEW).values("market_id").annotate(n=Count("id"), oldest=Min("created_at"))
    }
    states = {s.market_id: s for s in EngineState.objects.all()}
    rows = []
    for market in Market.objects.order_by("symbol"):
        state = states.get(market.pk)
        p = pending.get(market.pk)
        rows.append(EngineRow(
            market=market.symbol,
            status=market.status,
            epoch=state.epoch if state else 0,
            owner=state.owner if state else "",
            owner_up=(market.pk in holders) if holders is not None else None,
            owner_pid=holders.get(market.pk) if holders else None,
            pending=p["n"] if p else 0,
            claim_lag_seconds=round(max(0.0, (now - p["oldest"]).total_seconds()), 3) if p else 0.0,
            last_batch_age_seconds=round((now - state.updated_at).total_seconds(), 3) if state else None,
        ))
    return rows


def engine_lock_holders() -> dict[int, int] | None:
    """market id → backend pid holding its engine lock (None off PostgreSQL)."""
    if connection.vendor != "postgresql":
        return None
    from trading.engine.runner import ADVISORY_CLASS

    with connection.cursor() as cursor:
        cursor.execute(
            # pg_try_advisory_lock(int4, int4) shows as classid=key1, objid=key2, objsubid=2;
            # pg_locks is cluster-wide: only this database's locks count.
            "SELECT objid, pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [ADVISORY_CLASS],
        )
        return {int(objid): int(pid) for objid, pid in cursor.fetchall()}


def engine_failover(*, symbol: str, reason: str = "", wait_seconds: float = 0.0) -> dict[str, Any]:
    """Stop the current owner of ``symbol``: end its lock session, so the process exits and a
    standby takes the market (the supervisor restarts the old one as a standby). Other markets
    of that process fail over too: they share its lock session."""
    from trading.models import Market

    market = Market.objects.filter(symbol=symbol.upper()).first()
    if market is None:
        raise OpsError(f"no market {symbol.upper()}", code=3)
    holders = engine_lock_holders()
    if holders is None:
        raise OpsError("engine failover needs PostgreSQL", code=4)
    pid = holders.get(market.pk)
    if pid is None:
        raise OpsError(f"no engine owns {market.symbol}", code=1)
    with transaction.atomic():
        ops_audit(action=OpsAuditAction.ENGINE_FAILOVER, target=f"market:{market.symbol}", details={"backend_pid": pid, "reason": reason})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    new_pid = None
    deadline = time.monotonic() + wait_seconds
    while wait_seconds and time.monotonic() < deadline:
        new_pid = (engine_lock_holders() or {}).get(market.pk)
        if new_pid and new_pid != pid:
            break
        time.sleep(0.2)
    return {"market": market.symbol, "terminated_backend_pid": pid, "new_backend_pid": new_pid}


# --- status ----------------------------------------------------------------------------------

def ops_status(*, celery_timeout: float = 1.0) -> dict[str, Any]:
    """Everything ``kk99 status`` shows; ``healthy`` is False when an operator must act."""
    from kk99.metrics import ledger_audit_last
    from wallets.chains.models import ChainCursor

    problems: list[str] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # noqa: BLE001
        raise OpsError(f"database unreachable: {exc}", code=4) from exc
    engines = [e.__dict__ for e in engines_list()]
    for e in engines:
        if e["owner_up"] is False and e["status"] != "HALT":
            problems.append(f"no engine owns {e['market']}")
        if e["claim_lag_seconds"] > 5:
            problems.append(f"{e['market']}: claim lag {e['claim_lag_seconds']:.1f}s")
    processes = _engine_processes()
    now = timezone.now()
    chains = [
        {
            "chain": c.chain, "height": c.height, "head_height": c.head_height, "lag_blocks": c.lag,
            "last_scan_age_seconds": round((now - c.last_scan_at).total_seconds(), 1) if c.last_scan_at else None,
            "last_error": c.last_error[:200],
        }
        for c in ChainCursor.objects.all()
    ]
    audit = ledger_audit_last()
    if audit is not None and not audit["ok"]:
        problems.append(f"last ledger audit failed ({audit['problems']} problems)")
    celery = _celery_status(timeout=celery_timeout)
    return {
        "healthy": not problems,
        "problems": problems,
        "database": database,
        "engines": engines,
        "engine_processes": processes,
        "celery": celery,
        "chains": chains,
        "ledger_audit": audit and {**audit, "age_seconds": round(time.time() - audit["at"], 1)},
    }


def _engine_processes() -> list[dict[str, Any]]:
    """Engine processes connected to PostgreSQL (their lock sessions), owners and standbys."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, backend_start, client_addr::text FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'kk99-engine %%' ORDER BY backend_start"
        )
        rows = cursor.fetchall()
    holders = engine_lock_holders() or {}
    from trading.models import Market

    names = dict(Market.objects.values_list("pk", "symbol"))
    owned: dict[int, list[str]] = {}
    for market_id, pid in holders.items():
        owned.setdefault(pid, []).append(names.get(market_id, str(market_id)))
    return [
        {"backend_pid": pid, "owner": app.removeprefix("kk99-engine "), "since": start.isoformat(), "client": addr,
         "markets": sorted(owned.get(pid, [])), "role": "owner" if owned.get(pid) else "standby"}
        for pid, app, start, addr in rows
    ]


def _celery_status(*, timeout: float) -> dict[str, Any]:
    from django.conf import settings

    from kk99.metrics import _celery_queue_depths

    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return {"mode": "eager (in-process)", "workers": []}
    out: dict[str, Any] = {"mode": "broker"}
    try:
        out["queues"] = _celery_queue_depths()
        from kk99.celery import app

        replies = app.control.ping(timeout=timeout) or []
        out["workers"] = sorted(name for reply in replies for name in reply)
    except Exception as exc:  # noqa: BLE001 — status must still answer
        out["error"] = str(exc)[:200]
        out["workers"] = []
    return out


def ops_audit_log(*, limit: int = 50, action: str | None = None) -> list[dict[str, Any]]:
    from accounts.audit import AuditLog

    qs = AuditLog.objects.order_by("-id")
    if action:
        qs = qs.filter(action=action)
    return [
        {"id": r.id, "at": r.created_at.isoformat(), "action": r.action, "target": r.target, "actor_id": r.actor_id, "details": r.details}
        for r in qs[: max(1, min(limit, 1000))]
    ]
