"""``kk99`` — the operator's command line (a console script, pyproject ``[project.scripts]``).

    kk99 status                                  processes, engines per market, Celery, chains, last audit
    kk99 engines list | run | failover MARKET    engine ownership; a supervised engine; hand a market to the standby
    kk99 engines start|standby|stop MARKET       a detached supervised engine on this host: owner / hot standby / stop it
    kk99 markets halt|resume|cancel-only SYMBOL  market status (audited)
    kk99 users freeze|unfreeze EMAIL             account freeze (audited)
    kk99 audit [ledger] | audit log              run ledger_audit | show the audit log
    kk99 backup [--out DIR]                      pg_dump -Fc + manifest (ledger totals, journal hash)
    kk99 restore DUMP --database NAME            restore into a new database and verify the manifest
    kk99 logs [PROCESS] [-n N]                   the tail of a process's log file (KK99_LOG_DIR)

Every command takes ``--json`` (one JSON document on stdout). Exit codes scripts can trust:

    0  done / healthy
    1  done, but a check failed (status unhealthy, audit problems, restore mismatch, no owner)
    2  usage error (bad arguments)
    3  not found (market, user, file)
    4  environment error (database unreachable, pg_dump missing, backup/restore step failed)

``engines start|standby|stop`` add their own meaning to 1 and 3: start exits 1 when the market
already has an owner (use standby) or the new engine did not own it within ``--wait``; standby
exits 1 when no engine owns the market (use start) or the standby did not connect in time; stop
exits 3 when no engine of the market was started on this host, 1 when one is still stopping.

Every action that changes something writes an audit row (``accounts.AuditLog``, an
``AuditAction`` choice) with the operator (OS user @ host); every ``engines`` action does,
``run`` and ``failover`` included.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_ENVIRONMENT = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 already; keep the message on stderr
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"kk99: error: {message}\n")


def _setup_django(settings: str | None) -> None:
    if settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")
    import django

    django.setup()


def _emit(args, data: Any, text: Callable[[Any], str]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(text(data).rstrip("\n") + "\n")


# --- status ------------------------------------------------------------------------------------

def _engines_text(rows: list[dict]) -> str:
    lines = [f"  {'market':<12} {'status':<12} {'epoch':>6} {'owner up':>8} {'pending':>8} {'lag s':>7}  owner"]
    for e in rows:
        up = "-" if e["owner_up"] is None else ("yes" if e["owner_up"] else "NO")
        lines.append(f"  {e['market']:<12} {e['status']:<12} {e['epoch']:>6} {up:>8} {e['pending']:>8} {e['claim_lag_seconds']:>7.2f}  {e['owner']}")
    return "\n".join(lines)


def _status_text(s: dict) -> str:
    lines = [f"KK99: {'healthy' if s['healthy'] else 'NEEDS ATTENTION'}"]
    lines += [f"  ! {p}" for p in s["problems"]]
    lines.append(f"database: {s['database']['vendor']} ok")
    lines.append("engines:")
    lines.append(_engines_text(s["engines"]))
    if s["engine_processes"]:
        lines.append("engine processes:")
        for p in s["engine_processes"]:
            lines.append(f"  {p['owner']:<32} {p['role']:<8} {','.join(p['markets']) or '-'}")
    c = s["celery"]
    lines.append(f"celery: {c.get('mode')} workers={len(c.get('workers', []))} queues={c.get('queues', {})}" + (f" error={c['error']}" if c.get("error") else ""))
    for ch in s["chains"]:
        lines.append(f"chain {ch['chain']}: height {ch['height']} head {ch['head_height']} lag {ch['lag_blocks']} blocks, last scan {ch['last_scan_age_seconds']} s ago")
    a = s["ledger_audit"]
    lines.append("ledger audit: never run (kk99 audit)" if not a else f"ledger audit: {'ok' if a['ok'] else 'FAILED'} {a['age_seconds']:.0f} s ago")
    return "\n".join(lines)


def cmd_status(args) -> int:
    from kk99.ops import ops_status

    s = ops_status(celery_timeout=args.celery_timeout)
    _emit(args, s, _status_text)
    return EXIT_OK if s["healthy"] else EXIT_CHECK_FAILED


# --- engines -----------------------------------------------------------------------------------

def cmd_engines_list(args) -> int:
    from kk99.ops import engines_list

    rows = [e.__dict__ for e in engines_list()]
    _emit(args, rows, _engines_text)
    return EXIT_CHECK_FAILED if any(r["owner_up"] is False and r["status"] != "HALT" for r in rows) else EXIT_OK


def cmd_engines_run(args) -> int:
    import logging

    from django.db import connections, transaction

    from accounts.audit import AuditAction
    from kk99.ops import ops_audit
    from kk99.supervisor import engine_command, supervise

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")

    markets = [m.strip().upper() for m in (args.markets or "").split(",") if m.strip()]
    if not args.no_audit:  # `engines start|standby` audited the run they spawn themselves
        with transaction.atomic():
            ops_audit(action=AuditAction.ENGINE_RUN, target="markets:" + (",".join(markets) or "*"),
                      details={"owner": args.owner, "supervisor_pid": os.getpid(), "log_file": args.log_file})
    for conn in connections.all():  # the supervisor holds no database session while it waits
        conn.close()
        getattr(conn, "close_pool", lambda: None)()
    cmd = engine_command(markets=markets, owner=args.owner or None, max_seconds=args.max_seconds)
    report = supervise(cmd, max_restarts=args.max_restarts, log_file=args.log_file)
    _emit(args, report.__dict__, lambda r: f"supervisor stopped after {r['starts']} starts; exits {r['exits']}")
    return EXIT_OK


def cmd_engines_failover(args) -> int:
    from kk99.ops import engine_failover

    result = engine_failover(symbol=args.market, reason=args.reason, wait_seconds=args.wait)
    _emit(args, result, lambda r: f"{r['market']}: ended the owner's session (backend {r['terminated_backend_pid']}); new owner backend: {r['new_backend_pid'] or 'not yet'}")
    return EXIT_CHECK_FAILED if args.wait and not result["new_backend_pid"] else EXIT_OK


def _spawn_text(r: dict) -> str:
    seen = r["role_seen"] or ("not yet" if r["running"] else "EXITED (see the log)")
    return f"{r['market']}: started {r['engine']} (supervisor pid {r['supervisor_pid']}) as {r['requested_role']}; seen as {seen}\nlog {r['log_file']}"


def _cmd_engines_spawn(args, role: str) -> int:
    from kk99.ops import engine_spawn

    result = engine_spawn(symbol=args.market, role=role, log_dir=log_dir(), wait_seconds=args.wait, reason=args.reason)
    _emit(args, result, _spawn_text)
    if not result["running"] or (args.wait and result["role_seen"] != role):
        return EXIT_CHECK_FAILED
    return EXIT_OK


def cmd_engines_start(args) -> int:
    return _cmd_engines_spawn(args, "owner")


def cmd_engines_standby(args) -> int:
    return _cmd_engines_spawn(args, "standby")


def cmd_engines_stop(args) -> int:
    from kk99.ops import engine_stop

    result = engine_stop(symbol=args.market, engine=args.engine or None, wait_seconds=args.wait, reason=args.reason)
    _emit(args, result, lambda r: f"{r['market']}: stopped {', '.join(r['stopped']) or 'none'}"
          + (f"; still stopping: {', '.join(r['still_running'])}" if r["still_running"] else "")
          + f"; owner now: {'backend ' + str(r['owner_backend_pid_after']) if r['owner_backend_pid_after'] else 'none'}")
    return EXIT_CHECK_FAILED if result["still_running"] else EXIT_OK


# --- markets / users ---------------------------------------------------------------------------

MARKET_ACTIONS = {"halt": "HALT", "resume": "TRADING", "cancel-only": "CANCEL_ONLY"}


def cmd_markets(args) -> int:
    from kk99.ops import market_set_status

    old, new = market_set_status(symbol=args.symbol, status=MARKET_ACTIONS[args.action], reason=args.reason)
    data = {"market": args.symbol.upper(), "from": old, "to": new, "changed": old != new}
    _emit(args, data, lambda d: f"{d['market']}: {d['from']} -> {d['to']}" + ("" if d["changed"] else " (unchanged)"))
    return EXIT_OK


def cmd_users(args) -> int:
    from accounts.models import User
    from accounts.services import user_freeze, user_unfreeze
    from kk99.ops import OpsError, operator_label

    user = User.objects.filter(email__iexact=args.email).first()
    if user is None:
        raise OpsError(f"no user {args.email}", code=EXIT_NOT_FOUND)
    reason = f"{args.reason} (kk99 cli, {operator_label()})".strip()
    changed = (user_freeze if args.action == "freeze" else user_unfreeze)(user=user, actor=None, reason=reason)
    data = {"user": user.email, "frozen": args.action == "freeze", "changed": changed}
    _emit(args, data, lambda d: f"{d['user']}: {'frozen' if d['frozen'] else 'unfrozen'}" + ("" if d["changed"] else " (unchanged)"))
    return EXIT_OK


# --- audit -------------------------------------------------------------------------------------

def cmd_audit(args) -> int:
    if args.what == "log":
        from kk99.ops import ops_audit_log

        rows = ops_audit_log(limit=args.limit, action=args.action)
        _emit(args, rows, lambda rows: "\n".join(f"{r['at'][:19]} {r['action']:<28} {r['target']:<24} {json.dumps(r['details'])}" for r in rows) or "(no audit rows)")
        return EXIT_OK
    from django.db import transaction

    from accounts.audit import AuditAction
    from kk99.metrics import ledger_audit_record
    from kk99.ops import ledger_audit_consistent, ops_audit

    report = ledger_audit_consistent()
    ledger_audit_record(ok=report.ok, problems=len(report.problems))
    with transaction.atomic():
        ops_audit(action=AuditAction.LEDGER_AUDIT_RUN, target="ledger", details={"ok": report.ok, "problems": len(report.problems)})
    data = {"ok": report.ok, "balances_checked": report.balances_checked, "events_checked": report.events_checked, "problems": report.problems[:200]}
    if args.json:
        _emit(args, data, str)
    else:
        sys.stdout.write(report.render().rstrip("\n") + "\n")
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


# --- backup / restore --------------------------------------------------------------------------

def cmd_backup(args) -> int:
    from django.db import transaction

    from accounts.audit import AuditAction
    from kk99.backup import backup_create
    from kk99.ops import ops_audit

    result = backup_create(out_dir=Path(args.out), name=args.name)
    with transaction.atomic():
        ops_audit(action=AuditAction.BACKUP_CREATED, target=f"backup:{result.dump.name}", details={"journal_sha256": result.data["journal_sha256"], "events": result.data["events"]})
    data = {"dump": str(result.dump), "manifest": str(result.manifest), **{k: result.data[k] for k in ("events", "entries", "journal_sha256", "dump_bytes")}}
    _emit(args, data, lambda d: f"backup {d['dump']}\nmanifest {d['manifest']}\n{d['events']} events, {d['entries']} entries, journal sha256 {d['journal_sha256']}")
    return EXIT_OK


def cmd_restore(args) -> int:
    from django.db import transaction

    from accounts.audit import AuditAction
    from kk99.backup import backup_restore
    from kk99.ops import OpsError, ops_audit

    dump = Path(args.dump)
    if not dump.is_file():
        raise OpsError(f"no dump at {dump}", code=EXIT_NOT_FOUND)
    result = backup_restore(dump=dump, dbname=args.database, manifest=Path(args.manifest) if args.manifest else None, jobs=args.jobs)
    with transaction.atomic():
        ops_audit(action=AuditAction.BACKUP_RESTORED, target=f"database:{args.database}", details={"dump": dump.name, "verified": result.ok, "mismatches": result.mismatches[:20]})
    data = {"database": result.database, "verified": result.ok, "mismatches": result.mismatches, "journal_sha256": result.fingerprint["journal_sha256"]}
    _emit(args, data, lambda d: f"restored into {d['database']}: " + ("manifest verified (totals and journal hash equal)" if d["verified"] else "MISMATCH\n" + "\n".join(d["mismatches"])))
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


# --- logs --------------------------------------------------------------------------------------

def log_dir() -> Path:
    return Path(os.environ.get("KK99_LOG_DIR", "var/log"))


def cmd_logs(args) -> int:
    from kk99.ops import OpsError

    directory = log_dir()
    files = sorted(directory.glob(f"{args.process}*.log")) if args.process else sorted(directory.glob("*.log"))
    if not files:
        raise OpsError(f"no log files{' for ' + args.process if args.process else ''} in {directory} (KK99_LOG_DIR)", code=EXIT_NOT_FOUND)
    out = {}
    for f in files:
        with f.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            out[f.name] = fh.read().decode(errors="replace").splitlines()[-args.lines:]
    _emit(args, out, lambda o: "\n".join(f"==> {name} <==\n" + "\n".join(lines) for name, lines in o.items()))
    return EXIT_OK


# --- the parser --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("--json", action="store_true", help="print one JSON document")
    top.add_argument("--settings", default=None, help="Django settings module (default: $DJANGO_SETTINGS_MODULE or kk99.settings.dev)")
    # The same options after the sub-command; SUPPRESS keeps a top-level --json from being reset.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    common.add_argument("--settings", default=argparse.SUPPRESS, help="Django settings module")
    p = _Parser(prog="kk99", description="KK99 Exchange operator CLI.", epilog="Exit codes: 0 ok, 1 check failed, 2 usage, 3 not found, 4 environment.", parents=[top])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("status", parents=[common], help="processes, engines per market, Celery, chains, last ledger audit")
    s.add_argument("--celery-timeout", type=float, default=1.0)
    s.set_defaults(func=cmd_status)

    e = sub.add_parser("engines", parents=[common], help="engine ownership per market; run a supervised engine; fail over")
    esub = e.add_subparsers(dest="engines_command", required=True, parser_class=_Parser)
    el = esub.add_parser("list", parents=[common], help="owner, epoch, lag per market")
    el.set_defaults(func=cmd_engines_list)
    er = esub.add_parser("run", parents=[common], help="run run_engine under a supervisor (restart on exit; fenced -> standby)")
    er.add_argument("--markets", default="", help="comma-separated symbols (default: all); run twice for a standby")
    er.add_argument("--owner", default="", help="label stored in EngineState.owner")
    er.add_argument("--max-restarts", type=int, default=None)
    er.add_argument("--max-seconds", type=float, default=None, help="passed to run_engine (tests)")
    er.add_argument("--log-file", default=None, help="append the engine's output here (kk99 logs engine)")
    er.add_argument("--no-audit", action="store_true", help=argparse.SUPPRESS)  # spawned by start/standby, which audited
    er.set_defaults(func=cmd_engines_run)
    for verb, func, text, wait in (
        ("start", cmd_engines_start, "start a detached supervised engine for MARKET on this host; refused if it has an owner (audited)", 10.0),
        ("standby", cmd_engines_standby, "start a detached hot standby for MARKET on this host; refused if it has no owner (audited)", 10.0),
        ("stop", cmd_engines_stop, "stop the engines of MARKET started here by start/standby; a standby elsewhere takes over (audited)", 30.0),
    ):
        ev = esub.add_parser(verb, parents=[common], help=text, description=text + ". Exit codes: 0 ok, 1 check failed, 2 usage, 3 not found, 4 environment.")
        ev.add_argument("market")
        ev.add_argument("--reason", default="")
        ev.add_argument("--wait", type=float, default=wait, help=f"seconds to wait for the result (default {wait:g}; 0 = do not wait)")
        ev.set_defaults(func=func)
        if verb == "stop":
            ev.add_argument("--engine", default="", help="stop only this engine (the label start/standby printed)")
    ef = esub.add_parser("failover", parents=[common], help="stop a market's owner so the standby takes it (audited)")
    ef.add_argument("market")
    ef.add_argument("--reason", default="")
    ef.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the new owner (exit 1 if none)")
    ef.set_defaults(func=cmd_engines_failover)

    m = sub.add_parser("markets", parents=[common], help="halt, resume or set a market cancel-only (audited)")
    m.add_argument("action", choices=sorted(MARKET_ACTIONS))
    m.add_argument("symbol")
    m.add_argument("--reason", default="")
    m.set_defaults(func=cmd_markets)

    u = sub.add_parser("users", parents=[common], help="freeze or unfreeze an account (audited)")
    u.add_argument("action", choices=["freeze", "unfreeze"])
    u.add_argument("email")
    u.add_argument("--reason", default="")
    u.set_defaults(func=cmd_users)

    a = sub.add_parser("audit", parents=[common], help="run the ledger audit (default) or show the audit log")
    a.add_argument("what", nargs="?", choices=["ledger", "log"], default="ledger")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--action", default=None, help="audit log: only this action")
    a.set_defaults(func=cmd_audit)

    b = sub.add_parser("backup", parents=[common], help="pg_dump -Fc plus a manifest (ledger totals, journal hash)")
    b.add_argument("--out", default=os.environ.get("KK99_BACKUP_DIR", "var/backups"))
    b.add_argument("--name", default=None, help="file name stem (default kk99-<db>-<UTC time>)")
    b.set_defaults(func=cmd_backup)

    r = sub.add_parser("restore", parents=[common], help="restore a dump into a NEW database and verify it against its manifest")
    r.add_argument("dump")
    r.add_argument("--database", required=True, help="the new database (refused if it has tables)")
    r.add_argument("--manifest", default=None, help="default: <dump stem>.manifest.json beside the dump")
    r.add_argument("--jobs", type=int, default=2)
    r.set_defaults(func=cmd_restore)

    lg = sub.add_parser("logs", parents=[common], help="the tail of the process logs in KK99_LOG_DIR (default var/log)")
    lg.add_argument("process", nargs="?", default=None, help="web, engine, celery, beat …")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.set_defaults(func=cmd_logs, needs_django=False)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "needs_django", True):
            _setup_django(args.settings)
        from kk99.backup import BackupError
        from kk99.ops import OpsError
    except Exception as exc:  # settings refused, database config broken …
        sys.stderr.write(f"kk99: cannot start: {exc}\n")
        return EXIT_ENVIRONMENT
    try:
        return int(args.func(args) or 0)
    except OpsError as exc:
        sys.stderr.write(f"kk99: {exc}\n")
        return exc.code
    except BackupError as exc:
        sys.stderr.write(f"kk99: {exc}\n")
        return EXIT_ENVIRONMENT
    except Exception as exc:  # e.g. the database is down: a clear message, exit 4
        from django.db import DatabaseError

        if isinstance(exc, DatabaseError) or exc.__class__.__module__.startswith("psycopg"):
            sys.stderr.write(f"kk99: database error: {exc}\n")
            return EXIT_ENVIRONMENT
        raise


if __name__ == "__main__":
    sys.exit(main())
