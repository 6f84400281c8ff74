"""Operator actions and read-outs behind the ``kk99`` CLI (kk99/cli.py).

Selectors read (``ops_status``, ``ops_audit_log``); services write, each in one transaction
with its audit row (``market_set_status``, ``engine_failover``, ``engine_spawn``,
``engine_stop``, ``ops_audit``). The CLI only parses arguments, calls these and renders the
result. Audit action names are ``accounts.audit.AuditAction`` choices (the admin shows their
labels).
"""
from __future__ import annotations

import getpass
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import AuditAction, audit_record


class OpsError(Exception):
    """An operator action refused; ``code`` is the CLI's exit status."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def operator_label() -> str:
    """Who ran the command, as recorded in the audit row (OS user @ host)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"


def ops_audit(*, action: AuditAction, target: str, details: dict[str, Any] | None = None) -> None:
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
        ops_audit(action=AuditAction.MARKET_STATUS_CHANGED, target=f"market:{market.symbol}", details={"from": old, "to": status, "reason": reason})
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
        ops_audit(action=AuditAction.ENGINE_FAILOVER, target=f"market:{market.symbol}", details={"backend_pid": pid, "reason": reason})
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


# --- engines on this host: start / standby / stop -------------------------------------------

ENGINE_ROLES = ("owner", "standby")


@dataclass
class LocalEngine:
    """A supervised engine started on this host by ``kk99 engines start|standby``; its record
    is ``<run dir>/engine-<SYMBOL>-<token>.json`` (``kk99 engines stop`` reads it)."""

    pid: int  # the supervisor's pid (``kk99 engines run``), which owns the run_engine child
    market: str
    owner: str  # the label run_engine stores in EngineState.owner and its application_name
    requested_role: str
    log_file: str
    started_at: float
    record: str = ""


def engine_run_dir() -> Path:
    return Path(os.environ.get("KK99_RUN_DIR") or Path(settings.VAR_DIR) / "run")


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie — exited, not yet reaped — counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _is_our_supervisor(engine: LocalEngine) -> bool:
    """The pid still runs *our* supervisor (not a process that reused the pid)."""
    if not _pid_alive(engine.pid):
        return False
    try:
        cmdline = Path(f"/proc/{engine.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    return engine.owner.encode() in cmdline


def local_engines(*, run_dir: Path | None = None, market: str | None = None) -> list[LocalEngine]:
    """Engines started on this host that still run; records of dead ones are removed."""
    directory = run_dir or engine_run_dir()
    out = []
    for record in sorted(directory.glob("engine-*.json")):
        try:
            engine = LocalEngine(**json.loads(record.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        engine.record = str(record)
        if not _is_our_supervisor(engine):
            record.unlink(missing_ok=True)
            continue
        if market is None or engine.market == market:
            out.append(engine)
    return out


def engine_sessions() -> dict[str, int]:
    """owner label → backend pid of each engine's lock session (pg_stat_activity)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'kk99-engine %%'"
        )
        return {app.removeprefix("kk99-engine "): pid for app, pid in cursor.fetchall()}


def _market_or_404(symbol: str):
    from trading.models import Market

    market = Market.objects.filter(symbol=symbol.upper()).first()
    if market is None:
        raise OpsError(f"no market {symbol.upper()}", code=3)
    return market


def _lock_holders_or_fail() -> dict[int, int]:
    holders = engine_lock_holders()
    if holders is None:
        raise OpsError("engines need PostgreSQL", code=4)
    return holders


def engine_spawn(*, symbol: str, role: str, log_dir: Path, run_dir: Path | None = None, wait_seconds: float = 10.0, reason: str = "") -> dict[str, Any]:
    """Start a supervised engine for one market on this host, detached (it outlives the CLI).

    ``role="owner"`` (``kk99 engines start``) is refused when an engine already owns the market;
    ``role="standby"`` (``kk99 engines standby``) is refused when none does. Both start the same
    process: whichever gets the market's advisory lock owns it, the other waits as a hot
    standby. With ``wait_seconds`` it waits until the new engine's session shows the requested
    role; ``role_seen`` is None when it did not in time (the process keeps running)."""
    if role not in ENGINE_ROLES:
        raise OpsError(f"role must be one of {ENGINE_ROLES}", code=2)
    market = _market_or_404(symbol)
    holders = _lock_holders_or_fail()
    if role == "owner" and market.pk in holders:
        raise OpsError(f"{market.symbol} already has an owner (backend pid {holders[market.pk]}): use `kk99 engines standby {market.symbol}` to add a standby", code=1)
    if role == "standby" and market.pk not in holders:
        raise OpsError(f"no engine owns {market.symbol}: use `kk99 engines start {market.symbol}` first", code=1)
    token = secrets.token_hex(4)
    label = f"{market.symbol}@{socket.gethostname()}#{token}"[:50]
    run_dir = run_dir or engine_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"engine-{market.symbol}-{token}.log"
    cmd = [sys.executable, "-m", "kk99.cli", "engines", "run", "--markets", market.symbol, "--owner", label, "--log-file", str(log_file), "--no-audit"]
    with log_file.open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=os.environ.copy(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)  # our own interpreter and module
    engine = LocalEngine(pid=proc.pid, market=market.symbol, owner=label, requested_role=role, log_file=str(log_file), started_at=time.time())
    record = run_dir / f"engine-{market.symbol}-{token}.json"
    record.write_text(json.dumps(asdict(engine)))
    try:
        with transaction.atomic():
            ops_audit(
                action=AuditAction.ENGINE_STARTED if role == "owner" else AuditAction.ENGINE_STANDBY_STARTED,
                target=f"market:{market.symbol}",
                details={"engine": label, "supervisor_pid": proc.pid, "log_file": str(log_file), "reason": reason},
            )
    except Exception:
        os.killpg(proc.pid, signal.SIGTERM)  # not audited → not started
        record.unlink(missing_ok=True)
        raise
    role_seen = None
    deadline = time.monotonic() + wait_seconds
    while wait_seconds and time.monotonic() < deadline and proc.poll() is None:
        backend = engine_sessions().get(label)
        if backend is not None:
            role_seen = "owner" if (engine_lock_holders() or {}).get(market.pk) == backend else "standby"
            if role_seen == role:
                break
        time.sleep(0.2)
    return {
        "market": market.symbol, "engine": label, "supervisor_pid": proc.pid, "requested_role": role,
        "role_seen": role_seen, "running": proc.poll() is None, "log_file": str(log_file), "record": str(record),
    }


def engine_stop(*, symbol: str, engine: str | None = None, run_dir: Path | None = None, wait_seconds: float = 30.0, reason: str = "") -> dict[str, Any]:
    """Stop the engines of one market that ``kk99 engines start|standby`` started on this host:
    SIGTERM to each supervisor, which forwards it; run_engine finishes its batch and exits (its
    lock session ends, so a standby elsewhere takes the market). Engines on other hosts are
    stopped there (or moved with ``kk99 engines failover``). ``engine`` (a label from
    ``kk99 engines start|standby``) stops only that one."""
    market = _market_or_404(symbol)
    engines = [e for e in local_engines(run_dir=run_dir, market=market.symbol) if engine in (None, e.owner)]
    if not engines:
        raise OpsError(
            f"no engine {engine + ' ' if engine else ''}for {market.symbol} was started on this host by `kk99 engines start|standby` "
            f"(records in {run_dir or engine_run_dir()}); stop an engine on another host there, or move the market with `kk99 engines failover`",
            code=3,
        )
    with transaction.atomic():
        ops_audit(action=AuditAction.ENGINE_STOPPED, target=f"market:{market.symbol}",
                  details={"engines": [e.owner for e in engines], "supervisor_pids": [e.pid for e in engines], "reason": reason})
    for e in engines:
        try:
            os.kill(e.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and any(_pid_alive(e.pid) for e in engines):
        time.sleep(0.1)
    still_running = [e.owner for e in engines if _pid_alive(e.pid)]
    for e in engines:
        if e.owner not in still_running:
            Path(e.record).unlink(missing_ok=True)
    holders = _lock_holders_or_fail()
    return {
        "market": market.symbol, "stopped": [e.owner for e in engines if e.owner not in still_running],
        "still_running": still_running, "owner_backend_pid_after": holders.get(market.pk),
    }


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
    except Exception as exc:  # any failure to reach the database is reported as unreachable (exit 4)
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
    except Exception as exc:  # status must still answer
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
