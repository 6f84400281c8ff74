"""WebSocket benchmark (``make bench``): trade → delivered latency with 1,000 subscribers on one
market, and how many idle connections one server process holds (and its memory per
connection).

It starts its own exchange — daphne serving the ASGI app with the embedded engine, a fresh
SQLite database in a temporary directory, loopback only — and stops it at the end (≤ about two
minutes). Latency is measured from the trade's engine timestamp (``T``) to the moment a client
has parsed the message; the clients run in one asyncio process, so their own parsing time is
included (a conservative number).

    python -m trading.streams.bench_ws --write docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- ws:start -->", "<!-- ws:end -->"
# kk99.asgi currently origin-checks every WebSocket (see docs/realtime.md); bots send this.
ORIGIN = "http://127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


SETUP = """
from decimal import Decimal
from django.utils import timezone
from accounts.models import User
from wallets.models import Asset
from wallets.services import ledger_credit
for email in ("maker@bench.local", "taker@bench.local"):
    u = User.objects.filter(email=email).first() or User.objects.create_user(email=email, password="bench-pass-123456")
    u.email_verified_at = timezone.now(); u.kyc_tier = 3; u.save()
    for sym, amt in (("USDT", "100000000"), ("BTC", "10000")):
        ledger_credit(user=u, asset=Asset.objects.get(symbol=sym), amount=Decimal(amt), idempotency_key=f"bench:{email}:{sym}", kind="issuance", counter="issuance")
"""

TRADER = """
import sys, time
from decimal import Decimal
from accounts.models import User
from trading.services import order_place
maker = User.objects.get(email="maker@bench.local"); taker = User.objects.get(email="taker@bench.local")
n, gap = int(sys.argv[1]), float(sys.argv[2])
for i in range(n):
    order_place(user=maker, market="BTCUSDT", side="SELL", type="LIMIT", price=Decimal("60000"), quantity=Decimal("0.001"))
    order_place(user=taker, market="BTCUSDT", side="BUY", type="LIMIT", price=Decimal("60000"), quantity=Decimal("0.001"))
    time.sleep(gap)
"""


class Server:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="kk99-bench-")
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env.update({"DJANGO_SETTINGS_MODULE": "kk99.settings.dev", "DEBUG": "0", "KK99_VAR_DIR": self.tmp, "LOG_LEVEL": "WARNING"})
        self.proc = None

    def manage(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, input=stdin, text=True, capture_output=True, timeout=300)

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("seed_markets")
        self.manage("shell", "-c", SETUP)
        self.log = open(Path(self.tmp) / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "trading.streams.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except Exception:  # noqa: BLE001
                time.sleep(0.3)
        raise RuntimeError("server did not start")

    def trade(self, n: int, gap: float) -> subprocess.Popen:
        script = f"import sys; sys.argv = ['x', '{n}', '{gap}']\n" + TRADER
        return subprocess.Popen([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def _latency(port: int, server: Server, subscribers: int, trades: int) -> dict:
    import websockets

    url = f"ws://127.0.0.1:{port}/ws/btcusdt@trade"
    samples: list[float] = []
    received = [0]
    conns = []
    for i in range(0, subscribers, 100):
        conns += await asyncio.gather(*[websockets.connect(url, max_queue=None, ping_interval=None, open_timeout=30, origin=ORIGIN.format(port=port)) for _ in range(min(100, subscribers - i))])

    async def reader(ws):
        async for raw in ws:
            now = time.time() * 1000
            data = json.loads(raw)
            samples.append(now - data["T"])
            received[0] += 1

    tasks = [asyncio.create_task(reader(ws)) for ws in conns]
    await asyncio.sleep(1.0)  # every feed registration settled
    trader = server.trade(trades, 0.25)
    deadline = time.monotonic() + 60
    while received[0] < trades * subscribers and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if trader.poll() not in (None, 0):
            raise RuntimeError(trader.stderr.read())
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    samples.sort()
    q = statistics.quantiles(samples, n=100) if len(samples) > 100 else [0] * 99
    return {"subscribers": subscribers, "trades": trades, "delivered": len(samples), "expected": trades * subscribers,
            "p50": q[49], "p99": q[98], "max": samples[-1] if samples else 0}


async def _idle(port: int, pid: int, target: int, seconds: float) -> dict:
    import websockets

    url = f"ws://127.0.0.1:{port}/ws/btcusdt@trade"
    await asyncio.sleep(1.0)
    base = _rss_kib(pid)
    conns = []
    deadline = time.monotonic() + seconds
    error = ""
    while len(conns) < target and time.monotonic() < deadline:
        batch = min(250, target - len(conns))
        results = await asyncio.gather(*[websockets.connect(url, ping_interval=None, open_timeout=30, origin=ORIGIN.format(port=port)) for _ in range(batch)], return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        conns += ok
        if len(ok) < batch:
            error = repr(next(r for r in results if isinstance(r, BaseException)))[:160]
            break
    await asyncio.sleep(2.0)
    # still open and answering? one message round trip on a sample of them
    alive = 0
    for ws in conns[:: max(1, len(conns) // 50)]:
        try:
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            await asyncio.wait_for(ws.recv(), 10)
            alive += 1
        except Exception:  # noqa: BLE001
            pass
    rss = _rss_kib(pid)
    n = len(conns)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return {"connections": n, "sampled_alive": alive, "rss_before_mib": base / 1024, "rss_after_mib": rss / 1024,
            "kib_per_connection": (rss - base) / n if n else 0, "error": error}


def _section(lat: dict, idle: dict) -> str:
    ok = "✅" if lat["p99"] <= 50 else "❌"
    ok_idle = "✅" if idle["connections"] >= 10_000 else "❌"
    return f"""{START}
## WebSockets (trading/streams/bench_ws.py)

`python -m trading.streams.bench_ws --write docs/benchmarks.md` — one daphne process serving the
ASGI app with the embedded engine (SQLite, in-memory channel layer), clients on the same machine
over loopback ({platform.processor() or platform.machine()}, Python {platform.python_version()}). Latency = client
receive time − the trade's engine timestamp `T` (includes the engine batch commit, the publish, the
per-process market feed fan-out and the clients' own JSON parsing in one asyncio process).

| measure | result | goal |
|---|---|---|
| trade → delivered, p50 ({lat['subscribers']:,} subscribers of `btcusdt@trade`) | {lat['p50']:.1f} ms | |
| trade → delivered, p99 | {lat['p99']:.1f} ms | ≤ 50 ms {ok} |
| worst delivery | {lat['max']:.1f} ms | |
| messages delivered / expected | {lat['delivered']:,} / {lat['expected']:,} | all |
| idle connections held by one process | {idle['connections']:,} (sampled {idle['sampled_alive']} answered) | 10,000 {ok_idle} |
| server memory: before → after | {idle['rss_before_mib']:.0f} MiB → {idle['rss_after_mib']:.0f} MiB | |
| memory per idle connection | {idle['kib_per_connection']:.1f} KiB | |
{('' if not idle['error'] else f'Connection attempts stopped at: `{idle["error"]}`' + chr(10))}
{END}"""


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", help="update this markdown file between the ws markers")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--trades", type=int, default=40)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=45.0)
    args = parser.parse_args()
    server = Server()
    try:
        server.start()
        lat = asyncio.run(_latency(server.port, server, args.subscribers, args.trades))
        idle = asyncio.run(_idle(server.port, server.proc.pid, args.idle, args.idle_seconds))
    finally:
        server.stop()
    section = _section(lat, idle)
    print(section)
    if args.write:
        write_section(ROOT / args.write if not os.path.isabs(args.write) else Path(args.write), section)


if __name__ == "__main__":
    main()
