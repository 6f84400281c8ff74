"""The engine process loop: ownership (advisory locks), wake-ups (LISTEN/NOTIFY), batches.

PostgreSQL
    A dedicated autocommit connection holds one session-level advisory lock per owned market
    (``pg_try_advisory_lock(ADVISORY_CLASS, market_id)``) and LISTENs on ``kk99_engine``.
    Markets whose lock another process holds are retried every ENGINE_STANDBY_RETRY_SECONDS:
    that is the hot standby — when the owner dies its connection closes, the lock is free,
    and the standby takes the market (bumping the epoch, rebuilding the book) within about a
    second. A deposed owner that is still running (stalled, partitioned) is fenced: its next
    batch sees the new epoch and fails (:class:`~trading.engine.core.Fenced`), and the
    process exits with status 3.
    Idle, the loop blocks in ``connection.notifies(timeout=…)``; ``order_place`` and
    ``order_cancel`` NOTIFY right after their commit (:mod:`trading.engine.wakeup`), so a new
    order wakes the engine within milliseconds.
SQLite (the embedded demo)
    No advisory locks and no NOTIFY: one engine process is assumed (the epoch still fences a
    second one) and the loop polls every ENGINE_SQLITE_POLL_SECONDS.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from django.db import close_old_connections, connection
from django.db.backends.signals import connection_created
from django.db.utils import InterfaceError, OperationalError

from kk99 import metrics
from kk99.conf import kk99_setting
from trading.engine.core import Fenced, MarketEngine
from trading.engine.signals import batch_committed
from trading.engine.sql import pg_connect
from trading.engine.wakeup import NOTIFY_CHANNEL
from trading.models import Market

logger = logging.getLogger(__name__)

ADVISORY_CLASS = 0x4B4B  # "KK": the first key of every engine advisory lock
EXIT_FENCED = 3


class EngineRunner:
    def __init__(self, symbols: list[str] | None = None, *, owner: str | None = None) -> None:
        self.wanted = [s.upper() for s in symbols] if symbols else None
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.engines: dict[str, MarketEngine] = {}
        self.stopping = threading.Event()
        self._lock_conn = None
        self._market_ids: dict[str, int] = {}
        self._symbols_at = float("-inf")  # when the market list was last read
        self._thread: int | None = None
        # batch_committed, coalesced per market: trades committed since the last send, and when
        # the receivers last ran (monotonic seconds).
        self._hook_trades: dict[str, int] = {}
        self._hook_at: dict[str, float] = {}

    # --- wiring --------------------------------------------------------------------------

    @property
    def on_postgres(self) -> bool:
        return connection.vendor == "postgresql"

    def _symbols(self) -> list[str]:
        """The markets to run, re-read at most every ENGINE_STANDBY_RETRY_SECONDS (a new
        market is picked up within that; a woken engine goes straight to its batch)."""
        now = time.monotonic()
        if now - self._symbols_at >= kk99_setting("ENGINE_STANDBY_RETRY_SECONDS"):
            qs = Market.objects.order_by("symbol")
            if self.wanted:
                qs = qs.filter(symbol__in=self.wanted)
            self._market_ids = dict(qs.values_list("symbol", "pk"))
            self._symbols_at = now
        return list(self._market_ids)

    def _open_lock_connection(self):
        conn = pg_connect(application_name=f"kk99-engine {self.owner}")
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return conn

    def _try_lock(self, symbol: str) -> bool:
        if not self.on_postgres:
            return True
        row = self._lock_conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (ADVISORY_CLASS, self._market_ids[symbol])).fetchone()
        return bool(row[0])

    # --- the loop ----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def _configure_session(self, sender=None, connection=None, **kwargs) -> None:
        """Our own sessions abort a transaction left idle (a stalled process) after a few
        seconds, releasing its row locks: the standby's epoch bump is never blocked long."""
        if connection is not None and connection.vendor == "postgresql" and threading.get_ident() == self._thread:
            timeout_ms = int(kk99_setting("ENGINE_STALLED_TX_TIMEOUT_SECONDS") * 1000)
            with connection.cursor() as cursor:
                cursor.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
                cursor.execute("SELECT set_config('application_name', %s, false)", [f"kk99-engine-db {self.owner}"[:63]])

    def run(self, *, max_seconds: float | None = None) -> int:
        """Run until stopped (signal, ``stopping`` set, or ``max_seconds``). Returns an exit code."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        self._thread = threading.get_ident()
        if self.on_postgres:
            connection_created.connect(self._configure_session, weak=False, dispatch_uid=f"kk99-engine-{id(self)}")
            if connection.connection is not None:
                self._configure_session(connection=connection)
            self._lock_conn = self._open_lock_connection()
        try:
            while not self.stopping.is_set():
                if deadline and time.monotonic() > deadline:
                    break
                symbols = self._symbols()
                self._acquire(symbols)
                work = self._run_batches()
                self._run_hooks()
                if work == 0:
                    self._wait(all_owned=len(self.engines) == len(symbols))
        except Fenced as exc:
            metrics.ENGINE_FENCED.inc()
            for symbol in self.engines:
                metrics.ENGINE_OWNED.labels(market=symbol).set(0)
            logger.error("engine %s fenced: %s — exiting", self.owner, exc)
            return EXIT_FENCED
        finally:
            connection_created.disconnect(dispatch_uid=f"kk99-engine-{id(self)}")
            if self._lock_conn is not None:
                try:
                    self._lock_conn.close()
                except Exception:
                    pass
        return 0

    def _acquire(self, symbols: list[str]) -> None:
        for symbol in symbols:
            if symbol in self.engines:
                continue
            if self._try_lock(symbol):
                engine = MarketEngine(symbol, owner=self.owner)
                engine.start()
                self.engines[symbol] = engine
                metrics.ENGINE_TAKEOVERS.labels(market=symbol).inc()
                metrics.ENGINE_OWNED.labels(market=symbol).set(1)

    def _run_batches(self) -> int:
        work = 0
        for symbol, engine in list(self.engines.items()):
            try:
                if engine.surely_idle():  # one unlocked read instead of an empty locked batch
                    continue
                started = time.perf_counter()
                result = engine.process_batch()
            except Fenced:
                raise
            except (OperationalError, InterfaceError):
                logger.exception("engine %s: database error in %s; reconnecting", self.owner, symbol)
                close_old_connections()
                connection.close()
                time.sleep(0.2)
                continue
            except Exception:  # the engine rolled back and will retry one by one,
                # quarantining a command that fails alone (MarketEngine.process_batch): go on.
                logger.exception("engine %s: batch failed in %s; retrying its commands one by one", self.owner, symbol)
                work += 1
                continue
            metrics.engine_batch_done(
                symbol, commands=result.commands, trades=result.trades, quarantined=result.quarantined, seconds=time.perf_counter() - started
            )
            work += result.commands
            if result.trades:
                self._hook_trades[symbol] = self._hook_trades.get(symbol, 0) + result.trades
        return work

    def _run_hooks(self) -> None:
        """Send :data:`~trading.engine.signals.batch_committed` for every market that traded
        since its last send, unless its receivers ran less than ENGINE_BATCH_HOOK_INTERVAL_SECONDS
        ago: under load the mark is recomputed a few times a second instead of after every
        batch (a pause of the engine thread between batches each time). A market left waiting
        is sent on the trailing edge — :meth:`_wait` wakes for it — so every committed trade is
        followed by a recompute within the interval (plus one batch)."""
        if not self._hook_trades:
            return
        interval = kk99_setting("ENGINE_BATCH_HOOK_INTERVAL_SECONDS")
        now = time.monotonic()
        for symbol in sorted(self._hook_trades):
            if now - self._hook_at.get(symbol, float("-inf")) < interval:
                continue  # on the trailing edge: _wait wakes up for it
            trades = self._hook_trades.pop(symbol)
            engine = self.engines.get(symbol)
            if engine is None:  # lost the market meanwhile: its new owner recomputes
                continue
            self._hook_at[symbol] = now
            self._batch_committed(symbol, engine, trades)

    def _hook_wait(self) -> float | None:
        """Seconds until the next coalesced hook is due (None: none pending)."""
        if not self._hook_trades:
            return None
        interval = kk99_setting("ENGINE_BATCH_HOOK_INTERVAL_SECONDS")
        now = time.monotonic()
        return max(0.0, min(self._hook_at.get(s, float("-inf")) + interval - now for s in self._hook_trades))

    def _batch_committed(self, symbol: str, engine: MarketEngine, trades: int) -> None:
        """After the commit: receivers of :data:`trading.engine.signals.batch_committed` (the
        mark price and the liquidation hook); one failing is logged, never fatal."""
        sent = batch_committed.send_robust(sender=MarketEngine, symbol=symbol, trades=trades, last_price=engine.last_price, market=engine.market)
        for receiver, outcome in sent:
            if isinstance(outcome, Exception):
                logger.error("engine %s: batch_committed receiver %r failed in %s", self.owner, receiver, symbol, exc_info=outcome)

    def _wait(self, *, all_owned: bool) -> None:
        if not self.on_postgres:
            time.sleep(kk99_setting("ENGINE_SQLITE_POLL_SECONDS"))
            return
        timeout = kk99_setting("ENGINE_IDLE_WAIT_SECONDS") if all_owned else kk99_setting("ENGINE_STANDBY_RETRY_SECONDS")
        hook = self._hook_wait()
        if hook is not None:
            timeout = min(timeout, hook)
        # Raises if the lock connection died: then our locks are gone too, and we must stop.
        for _ in self._lock_conn.notifies(timeout=timeout, stop_after=1):
            pass
