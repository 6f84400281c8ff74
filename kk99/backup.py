"""Logical backups with a ledger manifest, and restores that prove themselves (``kk99 backup``,
``kk99 restore``).

A backup is two files in one directory:

* ``<name>.dump`` — ``pg_dump --format=custom`` of the whole database;
* ``<name>.manifest.json`` — what the dump must contain: per-asset ledger totals (users'
  available and locked, each system account), event and entry counts, and a SHA-256 over the
  whole journal (every event and entry, in id order, amounts as PostgreSQL prints NUMERIC).

Both are read from **one snapshot**: the manifest is computed in a REPEATABLE READ transaction
that exports its snapshot, and ``pg_dump --snapshot`` dumps exactly that snapshot. So the
manifest is true of the dump even while the exchange keeps trading.

A restore goes into a new database (it refuses a database that has tables), then recomputes the
manifest there and compares: same totals and same journal hash, or the restore fails.
Point-in-time recovery is pgBackRest's job (deploy/pgbackrest/, docs/operations.md).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1


class BackupError(Exception):
    """A backup or restore step failed; the message says which and why."""


@dataclass(frozen=True)
class PgTarget:
    """Where a database is: libpq parameters (from Django's settings, another dbname allowed)."""

    dbname: str
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: str | None = None

    @classmethod
    def from_settings(cls, *, dbname: str | None = None) -> PgTarget:
        from django.db import connection

        if connection.vendor != "postgresql":
            raise BackupError("kk99 backup/restore need PostgreSQL (DATABASE_URL).")
        s = connection.settings_dict
        return cls(
            dbname=dbname or s["NAME"],
            user=s.get("USER") or None,
            password=s.get("PASSWORD") or None,
            host=s.get("HOST") or None,
            port=str(s["PORT"]) if s.get("PORT") else None,
        )

    def conninfo(self) -> dict[str, str]:
        return {k: v for k, v in {"dbname": self.dbname, "user": self.user, "password": self.password, "host": self.host, "port": self.port}.items() if v}

    def env(self) -> dict[str, str]:
        """libpq environment for pg_dump/pg_restore (the password never on a command line)."""
        env = dict(os.environ)
        for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("password", "PGPASSWORD")):
            value = getattr(self, key)
            if value:
                env[var] = value
        env["PGDATABASE"] = self.dbname
        return env

    def connect(self, **kwargs):
        import psycopg

        return psycopg.connect(**self.conninfo(), **kwargs)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BackupError(f"{name} not found: install PostgreSQL's client tools (deploy/scripts/install-ops-tools.sh).")
    return path


# --- the manifest ----------------------------------------------------------------------------

_TOTALS_SQL = """
SELECT a.symbol,
       COALESCE(acc.system_kind, 'users') AS holder,
       e.bucket,
       SUM(e.amount)::text,
       COUNT(*)
  FROM wallets_journalentry e
  JOIN wallets_asset a ON a.id = e.asset_id
  JOIN wallets_account acc ON acc.id = e.account_id
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
"""

_JOURNAL_SQL = """
SELECT ev.id, ev.kind, ev.idempotency_key, e.id, e.account_id, e.asset_id, e.bucket, e.amount::text
  FROM wallets_journalevent ev
  LEFT JOIN wallets_journalentry e ON e.event_id = ev.id
 ORDER BY ev.id, e.id
"""


def ledger_fingerprint(conn) -> dict[str, Any]:
    """Per-asset totals, counts and the journal hash, read on ``conn`` (inside its transaction)."""
    totals: dict[str, dict[str, str]] = {}
    entries = 0
    with conn.cursor() as cur:
        cur.execute(_TOTALS_SQL)
        for symbol, holder, bucket, total, n in cur.fetchall():
            totals.setdefault(symbol, {})[f"{holder}.{bucket}"] = total
            entries += n
        cur.execute("SELECT COUNT(*) FROM wallets_journalevent")
        events = cur.fetchone()[0]
    digest = hashlib.sha256()
    # A named (server-side) cursor streams the journal: memory stays flat however long it is.
    with conn.cursor(name="kk99_journal_hash") as cur:
        cur.itersize = 5000
        cur.execute(_JOURNAL_SQL)
        for row in cur:
            digest.update(("\x1f".join("" if v is None else str(v) for v in row) + "\n").encode())
    return {"asset_totals": totals, "events": events, "entries": entries, "journal_sha256": digest.hexdigest()}


def _snapshot_connection(target: PgTarget):
    """A connection whose (implicit) transaction is REPEATABLE READ, READ ONLY: one snapshot."""
    from psycopg import IsolationLevel

    conn = target.connect()
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class BackupResult:
    dump: Path
    manifest: Path
    data: dict[str, Any]


def backup_create(*, out_dir: Path, target: PgTarget | None = None, name: str | None = None) -> BackupResult:
    """Dump the database and write its manifest, both from one snapshot."""
    target = target or PgTarget.from_settings()
    pg_dump = _tool("pg_dump")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = name or f"kk99-{target.dbname}-{stamp}"
    dump = out_dir / f"{name}.dump"
    manifest_path = out_dir / f"{name}.manifest.json"
    if dump.exists() or manifest_path.exists():
        raise BackupError(f"{dump} already exists: a backup is never overwritten.")
    partial = dump.with_suffix(".dump.partial")
    with _snapshot_connection(target) as conn:
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        fingerprint = ledger_fingerprint(conn)
        proc = subprocess.run(
            [pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-owner", "--file", str(partial), target.dbname],
            env=target.env(), capture_output=True, text=True,
        )
        conn.commit()
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed ({proc.returncode}): {proc.stderr.strip()}")
    partial.rename(dump)
    data = {
        "version": MANIFEST_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "database": target.dbname,
        "server_version": server_version,
        "dump": dump.name,
        "dump_sha256": _sha256_file(dump),
        "dump_bytes": dump.stat().st_size,
        **fingerprint,
    }
    tmp = manifest_path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, manifest_path)
    return BackupResult(dump=dump, manifest=manifest_path, data=data)


def manifest_load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read the manifest {path}: {exc}") from exc
    if data.get("version") != MANIFEST_VERSION:
        raise BackupError(f"{path}: unknown manifest version {data.get('version')!r}")
    return data


def manifest_for_dump(dump: Path) -> Path:
    return dump.with_name(dump.name.removesuffix(".dump") + ".manifest.json")


@dataclass
class RestoreResult:
    database: str
    fingerprint: dict[str, Any]
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def fingerprint_compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("events", "entries", "journal_sha256"):
        if expected.get(key) != actual.get(key):
            problems.append(f"{key}: manifest {expected.get(key)!r}, restored {actual.get(key)!r}")
    exp_totals, act_totals = expected.get("asset_totals", {}), actual.get("asset_totals", {})
    for symbol in sorted(set(exp_totals) | set(act_totals)):
        if exp_totals.get(symbol) != act_totals.get(symbol):
            problems.append(f"totals of {symbol}: manifest {exp_totals.get(symbol)}, restored {act_totals.get(symbol)}")
    return problems


def database_create(*, admin: PgTarget, dbname: str) -> None:
    """Create ``dbname`` (empty). An existing database with tables is refused, never overwritten."""
    from psycopg import sql

    with admin.connect(autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            return
    with PgTarget(**{**admin.__dict__, "dbname": dbname}).connect() as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    if tables:
        raise BackupError(f"database {dbname!r} already has {tables} tables: restore only into a new, empty database.")


def backup_restore(*, dump: Path, dbname: str, manifest: Path | None = None, admin: PgTarget | None = None, jobs: int = 2) -> RestoreResult:
    """Restore ``dump`` into the new database ``dbname`` and verify it against its manifest."""
    admin = admin or PgTarget.from_settings()
    pg_restore = _tool("pg_restore")
    if not dump.is_file():
        raise BackupError(f"no dump at {dump}")
    expected = manifest_load(manifest or manifest_for_dump(dump))
    if expected.get("dump_sha256") and expected["dump_sha256"] != _sha256_file(dump):
        raise BackupError(f"{dump} does not match its manifest (sha256): the file is damaged or not this backup's.")
    database_create(admin=admin, dbname=dbname)
    target = PgTarget(**{**admin.__dict__, "dbname": dbname})
    proc = subprocess.run(
        [pg_restore, "--no-owner", "--exit-on-error", f"--jobs={max(1, jobs)}", "--dbname", dbname, str(dump)],
        env=target.env(), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise BackupError(f"pg_restore failed ({proc.returncode}): {proc.stderr.strip()}")
    with _snapshot_connection(target) as conn:
        actual = ledger_fingerprint(conn)
        conn.commit()
    return RestoreResult(database=dbname, fingerprint=actual, mismatches=fingerprint_compare(expected, actual))
