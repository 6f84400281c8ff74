"""Fault injection for the engine's recovery tests, armed only by environment variables.

``KK99_ENGINE_CRASH_AFTER_BATCHES=N`` with ``KK99_ENGINE_CRASH_POINT``:

* ``before_commit`` — SIGKILL the process inside the N-th batch transaction (nothing of it commits);
* ``after_commit_before_publish`` — SIGKILL right after its COMMIT, before any event is sent.

``KK99_ENGINE_FAULT_DEADLOCK_BATCHES=N``: the first N batches of the process fail with a real
PostgreSQL ``deadlock_detected`` (SQLSTATE 40P01) raised by the server inside the batch
transaction — what a lock cycle would raise — to prove the engine retries instead of crashing.
Unset in production: every hook is then a no-op.
"""
from __future__ import annotations

import logging
import os
import signal

from django.db import connection, transaction

logger = logging.getLogger(__name__)

_batches_in_process = 0
_deadlocks_raised = 0


def crash_plan() -> tuple[int, str]:
    after = int(os.environ.get("KK99_ENGINE_CRASH_AFTER_BATCHES") or 0)
    return after, os.environ.get("KK99_ENGINE_CRASH_POINT", "before_commit")


def die() -> None:
    logger.warning("fault injection: SIGKILL self")
    os.kill(os.getpid(), signal.SIGKILL)


class CrashHook:
    """The crash plan of one batch: :meth:`arm_on_commit` at the start of the transaction,
    :meth:`batch_written` once everything is written (inside it)."""

    def __init__(self) -> None:
        self.after, self.point = crash_plan()
        self.armed = False

    def arm_on_commit(self) -> None:
        if self.after and self.point == "after_commit_before_publish":
            # Registered first, so it runs right after COMMIT and before any publish.
            transaction.on_commit(lambda: self.armed and die())

    def batch_written(self) -> None:
        global _batches_in_process
        _batches_in_process += 1
        if self.after and _batches_in_process >= self.after:
            if self.point == "before_commit":
                die()
            self.armed = True


def maybe_deadlock() -> None:
    """Raise a server-side deadlock_detected error in the current transaction, if armed."""
    global _deadlocks_raised
    wanted = int(os.environ.get("KK99_ENGINE_FAULT_DEADLOCK_BATCHES") or 0)
    if _deadlocks_raised >= wanted or connection.vendor != "postgresql":
        return
    _deadlocks_raised += 1
    logger.warning("fault injection: deadlock_detected in this batch (%d of %d)", _deadlocks_raised, wanted)
    with connection.cursor() as cursor:
        cursor.execute("DO $$ BEGIN RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01'; END $$")
