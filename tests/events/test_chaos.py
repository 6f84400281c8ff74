"""Chaos: under trading load, SIGKILL the relay, the engine and the NATS server (our own
instance, on a random port — the machine's shared server is never touched) again and again;
then ``events_verify`` must find 0 lost, 0 duplicated, 0 reordered, payloads equal to rows."""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from events.models import RelayCursor
from events.relay import rows_next
from events.verify import read_stream_messages, verify
from tests.fixtures import place
from tests.processes import database_url
from trading.models import EngineState, Order

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Our own nats-server, the engine and the relay as real processes."""

    def __init__(self, tmp: Path, prefix: str):
        self.tmp, self.prefix = tmp, prefix
        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.kills = {"relay": 0, "engine": 0, "nats": 0}

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        log = open(self.tmp / f"{name}.log", "a")
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _env(self) -> dict:
        env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "kk99.settings.test",
               "KK99_NATS_URL": self.url, "KK99_EVENTS_PREFIX": self.prefix, "KK99_ENGINE_IDLE_WAIT_SECONDS": "0.2",
               "KK99_ENGINE_STANDBY_RETRY_SECONDS": "0.2", "KK99_EVENTS_RELAY_BATCH": "50"}
        env.pop("REDIS_URL", None)
        return env

    def nats(self) -> None:
        self._spawn("nats", [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.tmp / "js")])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nats-server did not start")

    def engine(self) -> None:
        self._spawn("engine", [sys.executable, "manage.py", "run_engine", "--markets", "BTCUSDT", "--owner", f"chaos{self.kills['engine']}"], self._env())

    def relay(self) -> None:
        self._spawn("relay", [sys.executable, "manage.py", "events_relay"], self._env())

    def kill(self, name: str) -> None:
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        self.kills[name] += 1
        getattr(self, name)()

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def _progress() -> tuple[int, int]:
    state = EngineState.objects.get(market__symbol="BTCUSDT")
    cur = RelayCursor.objects.filter(name="default").first()
    return state.batch_count, cur.event_id if cur else 0


def _wait_for_progress(before: tuple[int, int], victim: str, c: Cluster) -> None:
    """Until the engine committed a batch AND the relay moved its cursor since ``before``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _progress()
        if now[0] > before[0] and now[1] > before[1]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no progress before killing {victim}: {before} → {_progress()}, logs in {c.tmp}")


def test_sigkilling_relay_engine_and_nats_under_load_loses_doubles_and_reorders_nothing(tmp_path, trader, market, settings):
    prefix = f"kk99chaos{uuid.uuid4().hex[:8]}"
    settings.KK99 = {**settings.KK99, "EVENTS": {**settings.KK99["EVENTS"], "SUBJECT_PREFIX": prefix}}
    users = [trader() for _ in range(4)]
    c = Cluster(tmp_path, prefix)
    rng = random.Random(16)
    try:
        c.nats()
        c.engine()
        c.relay()
        for round_ in range(12):
            victim = ["relay", "engine", "nats"][round_ % 3]
            before = _progress()
            for _ in range(15):
                side = rng.choice(["BUY", "SELL"])
                price = f"{rng.randint(98, 102)}"
                place(rng.choice(users), market, side, price=price, quantity=f"0.{rng.randint(1, 9)}", time_in_force="GTC")
            _wait_for_progress(before, victim, c)  # the victim is working when it dies
            time.sleep(rng.uniform(0.0, 0.2))
            c.kill(victim)
        # drain: every order processed, the relay caught up
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pending = Order.objects.filter(status=Order.Status.PENDING_NEW).exists()
            cur = RelayCursor.objects.filter(name="default").first()
            if not pending and cur is not None and not rows_next((cur.txid, cur.event_id), 1):
                break
            time.sleep(0.5)
        else:
            pytest.fail("engine or relay did not catch up: see " + str(tmp_path))
        messages = read_stream_messages(url=c.url, prefix=prefix)
    finally:
        c.stop()
    report = verify(messages, prefix=prefix)
    assert sum(c.kills.values()) == 12
    assert report.received >= report.expected > 100
    assert report.ok, "\n".join(report.lines())
