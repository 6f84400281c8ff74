"""pgBackRest configuration (point-in-time recovery): pgBackRest itself reads it without an
unknown option, and PostgreSQL's archive_command pushes WAL to the same stanza."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "deploy" / "pgbackrest"
PGBACKREST = shutil.which("pgbackrest")
needs_pgbackrest = pytest.mark.skipif(PGBACKREST is None, reason="pgbackrest missing: run deploy/scripts/install-ops-tools.sh")


def _read_with_pgbackrest(config: Path) -> str:
    env = {**os.environ, "PGBACKREST_REPO1_CIPHER_PASS": "test-only"}
    proc = subprocess.run([PGBACKREST, f"--config={config}", "--stanza=kk99", "--repo=2", "--log-level-console=warn", "info"],
                          capture_output=True, text=True, env=env, timeout=60)
    return proc.stdout + proc.stderr


@needs_pgbackrest
def test_pgbackrest_reads_the_configuration_without_unknown_options():
    out = _read_with_pgbackrest(CONF / "pgbackrest.conf")
    assert "invalid option" not in out and "stanza: kk99" in out, out


@needs_pgbackrest
def test_pgbackrest_would_report_a_misspelt_option(tmp_path):
    bad = tmp_path / "pgbackrest.conf"
    bad.write_text((CONF / "pgbackrest.conf").read_text().replace("repo1-retention-full=", "repo1-retention-fulll="))
    assert "invalid option 'repo1-retention-fulll'" in _read_with_pgbackrest(bad)


def test_wal_archiving_pushes_to_the_kk99_stanza_and_backups_are_scheduled():
    archive = (CONF / "postgresql.conf.d" / "archive.conf").read_text()
    assert "archive_mode = on" in archive and "pgbackrest --stanza=kk99 archive-push %p" in archive
    cron = (CONF / "crontab").read_text()
    assert "--type=full backup" in cron and "--type=diff backup" in cron and "verify" in cron
