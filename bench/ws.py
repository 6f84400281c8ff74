"""WebSocket benchmark (``make bench``): trade → delivered latency with 1,000 subscribers on one
market, and how many idle connections one server process holds (and its memory per
connection).

It starts its own exchange — one ASGI server process (uvicorn by default, ``--server daphne``
for comparison) serving the app with the embedded engine, a fresh SQLite database in a
temporary directory, loopback only — and stops it at the end (about two minutes).

The clients must not be the bottleneck: they run in several processes (``--clients``,
``--idle-clients``) using :mod:`trading.streams.wsclient`, a lean raw-asyncio client that
stamps every frame with the time its bytes arrived. Latency = that time − the trade's engine
timestamp ``T`` (ms since the epoch, taken when the engine batch creates the trade, before
its commit): it covers the batch commit, the publish, the per-process market feed, the
fan-out and the server's socket writes. The CPU seconds of the server, the clients and the
order-placing process during the run are reported, so the split of the machine's cores is
visible. ``--profile DIR`` records the server with py-spy (collapsed stacks) meanwhile.

    python -m bench.ws --write docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- ws:start -->", "<!-- ws:end -->"
STREAM_PATH = "/ws/btcusdt@trade"
MAX_IDLE_SECONDS = 90.0
CONNECTS_IN_FLIGHT = 50  # per client process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int, *, main_thread: bool = False) -> float:
    """User + system CPU time of a process (all its threads), or of its main thread only
    (the server's event loop; the embedded engine runs in another thread)."""
    try:
        stat = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


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
    # The two bench traders send far more than the default order rate (risk/services.py).
    from risk.models import RiskLimit
    RiskLimit.objects.update_or_create(user=u, market=None, defaults={"orders_per_10s": 10**9, "orders_per_day": 10**9, "max_open_orders": 10**9, "max_open_orders_per_market": 10**9})
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

SERVERS = {
    # The production server (docs/deploy): uvicorn, websockets' sans-I/O protocol (no task per
    # connection), uvloop + httptools, no per-message deflate (it would compress every frame
    # once per connection, with a zlib context per connection).
    "uvicorn": lambda port, ws="websockets-sansio": [
        sys.executable, "-m", "uvicorn", "trading.streams.asgi:application", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--ws", ws, "--ws-per-message-deflate", "false",
        "--lifespan", "off", "--no-access-log", "--backlog", "4096", "--log-level", "warning",
    ],
    "daphne": lambda port, ws=None: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "trading.streams.asgi:application"],
}


class Server:
    def __init__(self, kind: str, ws: str | None = None) -> None:
        self.kind, self.ws = kind, ws
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
        self.proc = subprocess.Popen(self.command(self.port), cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except Exception:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        raise RuntimeError(f"server did not start; see {self.log.name}")

    def command(self, port: int) -> list[str]:
        return SERVERS[self.kind](port, self.ws) if self.ws else SERVERS[self.kind](port)

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
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- client processes ------------------------------------------------------------------------


async def _connect_many(port: int, count: int, deadline: float, on_message=None) -> tuple[list, str]:
    """Open up to ``count`` connections (``CONNECTS_IN_FLIGHT`` handshakes at a time) until
    ``deadline``; stop at the first refused one."""
    from trading.streams.wsclient import ws_connect

    conns: list = []
    error = ""
    sem = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

    async def one() -> None:
        nonlocal error
        if error or time.monotonic() > deadline:
            return
        async with sem:
            if error or time.monotonic() > deadline:
                return
            try:
                conns.append(await ws_connect(port, STREAM_PATH, on_message=on_message, timeout=max(1.0, deadline - time.monotonic())))
            except Exception as exc:
                error = error or repr(exc)[:160]

    await asyncio.gather(*(one() for _ in range(count)))
    return conns, error


async def _stdin_lines():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _client_latency(port: int, count: int) -> None:
    samples: list[tuple[int, float]] = []

    def on_message(payload: bytes, received_ms: float) -> None:
        data = json.loads(payload)
        samples.append((data["t"], round(received_ms - data["T"], 2)))

    stdin = await _stdin_lines()
    conns, error = await _connect_many(port, count, time.monotonic() + 60, on_message)
    _say({"ready": len(conns), "error": error})
    while (line := (await stdin.readline()).strip()) not in (b"stop", b""):
        if line == b"flush":  # the samples of one round
            _say({"samples": samples})
            samples = []
    for c in conns:
        c.close()


async def _client_idle(port: int, count: int, seconds: float) -> None:
    stdin = await _stdin_lines()
    conns, error = await _connect_many(port, count, time.monotonic() + seconds)
    _say({"connected": len(conns), "error": error})
    while True:
        line = (await stdin.readline()).strip()
        if line == b"check":  # still open and answering? one request round trip on a sample
            alive, sample = 0, conns[:: max(1, len(conns) // 25)]
            for c in sample:
                answered = asyncio.get_running_loop().create_future()
                c.on_message = lambda payload, _, f=answered: f.done() or f.set_result(payload)
                try:
                    c.send_text(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
                    await asyncio.wait_for(answered, 10)
                    alive += 1
                except Exception:
                    pass
            _say({"alive": alive, "sampled": len(sample)})
        elif line in (b"stop", b""):
            break
    for c in conns:
        c.close()
    await asyncio.sleep(0.5)


class Clients:
    """Client processes driven over stdin/stdout, one JSON object per line."""

    def __init__(self, mode: str, port: int, total: int, processes: int, *extra: str) -> None:
        share = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        self.procs = [
            subprocess.Popen([sys.executable, "-m", "bench.ws", "--client", mode, "--port", str(port), "--count", str(n), *extra],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for n in share if n
        ]

    def read(self) -> list[dict]:
        return [json.loads(p.stdout.readline() or "{}") for p in self.procs]

    def tell(self, line: str) -> None:
        for p in self.procs:
            p.stdin.write(line + "\n")
            p.stdin.flush()

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            try:
                p.stdin.close()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


# --- the two measurements --------------------------------------------------------------------


def _profile_start(pid: int, out: Path | None, seconds: int) -> subprocess.Popen | None:
    if out is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return subprocess.Popen([spy, "record", "-p", str(pid), "-r", "200", "-d", str(seconds), "--nonblocking",
                             "--format", "raw", "-o", str(out / "server.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _quantiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=100) if len(values) > 100 else [0.0] * 99


def _latency_round(server: Server, clients: Clients, trades: int, profile: Path | None) -> dict:
    """One round: ``trades`` trades 250 ms apart, every subscriber's delivery of each."""
    cpu0 = {"server": _cpu_seconds(server.proc.pid), "loop": _cpu_seconds(server.proc.pid, main_thread=True), "clients": clients.cpu_seconds()}
    ticks0 = _machine_ticks()
    wall0 = time.monotonic()
    gap = 0.25
    spy = _profile_start(server.proc.pid, profile, int(trades * gap) + 2)
    trader = server.trade(trades, gap)
    trader_cpu = 0.0
    while trader.poll() is None:
        trader_cpu = max(trader_cpu, _cpu_seconds(trader.pid))
        time.sleep(0.2)
    if trader.returncode != 0:
        raise RuntimeError(trader.stderr.read())
    time.sleep(2.0)  # the last trade's frames
    wall = time.monotonic() - wall0
    ticks1 = _machine_ticks()
    busy = (ticks1[0] - ticks0[0]) / max(1, ticks1[1] - ticks0[1])  # fraction of all cores
    cpu = {"server": _cpu_seconds(server.proc.pid) - cpu0["server"], "loop": _cpu_seconds(server.proc.pid, main_thread=True) - cpu0["loop"],
           "clients": clients.cpu_seconds() - cpu0["clients"], "trader": trader_cpu, "machine": busy * (os.cpu_count() or 1) * wall}  # machine: everything running
    clients.tell("flush")
    samples = [s for r in clients.read() for s in r.get("samples", [])]
    if spy is not None:
        spy.wait(timeout=60)
    return {"samples": samples, "wall": wall, "cpu": cpu, "p99": _quantiles([ms for _, ms in samples])[98]}


def measure_latency(server: Server, subscribers: int, trades: int, rounds: int, processes: int, profile: Path | None) -> dict:
    clients = Clients("latency", server.port, subscribers, processes)
    try:
        ready = clients.read()
        connected = sum(r.get("ready", 0) for r in ready)
        if connected < subscribers:
            raise RuntimeError(f"only {connected} of {subscribers} subscribers connected: {[r.get('error') for r in ready]}")
        time.sleep(1.0)  # every feed registration settled
        done = [_latency_round(server, clients, trades, profile if i == 0 else None) for i in range(rounds)]
        clients.tell("stop")
    finally:
        clients.stop()
    samples = [s for r in done for s in r["samples"]]
    lat = sorted(ms for _, ms in samples)
    by_trade: dict[int, list[float]] = {}
    for tid, ms in samples:
        by_trade.setdefault(tid, []).append(ms)
    q = _quantiles(lat)
    wall = sum(r["wall"] for r in done)
    cpu = {k: sum(r["cpu"][k] for r in done) for k in done[0]["cpu"]}
    return {
        "subscribers": subscribers, "trades": trades * rounds, "rounds": rounds, "clients": len(clients.procs),
        "delivered": len(lat), "expected": trades * rounds * subscribers,
        "p50": q[49], "p99": q[98], "max": lat[-1] if lat else 0.0,
        "round_p99": [r["p99"] for r in done],
        "round_busy": [r["cpu"]["machine"] / r["wall"] / (os.cpu_count() or 1) for r in done],
        "first": statistics.median(min(v) for v in by_trade.values()) if by_trade else 0.0,
        "spread": statistics.median(max(v) - min(v) for v in by_trade.values()) if by_trade else 0.0,
        "wall": wall, "cpu": cpu,
    }


def measure_idle(server: Server, target: int, processes: int, seconds: float) -> dict:
    pid = server.proc.pid
    time.sleep(1.0)
    base = _rss_kib(pid)
    t0 = time.monotonic()
    clients = Clients("idle", server.port, target, processes, "--seconds", str(seconds))
    try:
        done = clients.read()
        took = time.monotonic() - t0
        n = sum(d.get("connected", 0) for d in done)
        errors = [d["error"] for d in done if d.get("error")]
        time.sleep(2.0)
        rss = _rss_kib(pid)
        clients.tell("check")
        checks = clients.read()
        clients.tell("stop")
    finally:
        clients.stop()
    return {"connections": n, "seconds": took, "clients": len(clients.procs), "rate": n / took if took else 0.0,
            "sampled": sum(c.get("sampled", 0) for c in checks), "alive": sum(c.get("alive", 0) for c in checks),
            "rss_before_mib": base / 1024, "rss_after_mib": rss / 1024, "kib_per_connection": (rss - base) / n if n else 0.0,
            "error": errors[0] if errors else ""}


# --- report ----------------------------------------------------------------------------------


HISTORY = """History (same machine, 2026-11-25; single 40-trade rounds, load averages at start).
Before the fan-out work — daphne, each frame sent from one task per connection through
Channels' send wrappers, one `websockets`-library client process: p50 132 ms, p99 413 ms,
5,750 idle connections in 45 s, 35 KiB per connection. Lean multi-process client alone, server
unchanged (load 1.9): p50 92 ms, p99 341 ms. Then uvicorn (load 1.9): p50 63 ms, p99 191 ms;
+ synchronous sends and no session wrapper on data frames (load 1.5): p50 32 ms, p99 66 ms;
+ no queue/task per idle connection (load 3.5): p50 25 ms, p99 48 ms, 10,000 idle connections
in 10 s, 26 KiB each. Current code under daphne (load 4.7): p50 75 ms, p99 374 ms (first
subscriber served after 51 ms: Twisted writes on a later reactor turn), 10,000 in 18 s, 27 KiB."""


def _section(meta: dict, lat: dict, idle: dict) -> str:
    ok = "✅" if lat["p99"] <= 50 else "❌"
    ok_idle = "✅" if idle["connections"] >= 10_000 else "❌"
    cpu = lat["cpu"]
    share = lambda s: f"{s:.1f} s ({100 * s / lat['wall']:.0f} % of one core)"
    others = max(0.0, cpu["machine"] - cpu["server"] - cpu["clients"] - cpu["trader"])
    stopped = f"\nConnection attempts stopped at: `{idle['error']}`\n" if idle["error"] else ""
    per_sub = 1000 * lat["spread"] / max(1, lat["subscribers"] - 1)
    cpu_cell = (
        f"server {share(cpu['server'])} (event loop {cpu['loop']:.1f} s; rest: embedded engine), clients {share(cpu['clients'])}, "
        f"placer {share(cpu['trader'])}; rest of machine {share(others)}"
    )
    return f"""{START}
## WebSockets (bench/ws.py)

`python -m bench.ws --write docs/benchmarks.md` — one **{meta['server']}** process
({meta['server_cmd']}) serving the ASGI app with the embedded engine (SQLite, in-memory channel
layer); clients on the same machine over loopback: {meta['machine']}, Python
{platform.python_version()}, load average at start {meta['load']}, at the end {meta['load_end']} (the cores are shared with other work).
Clients: {lat['clients']} latency processes and {idle['clients']} idle-connection processes of the lean raw-asyncio
client (`trading/streams/wsclient.py`), which stamps each frame with the time its bytes arrived.
Latency = that time − the trade's engine timestamp `T` (ms; taken when the engine batch starts,
before matching and commit), so it covers the batch, its commit, the publish, the market feed,
the fan-out and the socket writes.

| measure | result | goal |
|---|---|---|
| trade → delivered, p50 ({lat['subscribers']:,} subscribers of `btcusdt@trade`, {lat['trades']} trades in {lat['rounds']} rounds) | {lat['p50']:.1f} ms | |
| trade → delivered, p99 | {lat['p99']:.1f} ms | ≤ 50 ms {ok} |
| p99 of each round (whole machine busy during it) | {' / '.join(f"{p:.1f} ms ({100 * b:.0f} %)" for p, b in zip(lat['round_p99'], lat['round_busy']))} | |
| worst delivery | {lat['max']:.1f} ms | |
| per trade (median): first subscriber served / first → last subscriber | {lat['first']:.1f} ms / {lat['spread']:.1f} ms | |
| messages delivered / expected | {lat['delivered']:,} / {lat['expected']:,} | all |
| CPU during the latency run ({lat['wall']:.0f} s wall, {os.cpu_count()} cores) | {cpu_cell} | |
| idle connections held by one process | {idle['connections']:,} in {idle['seconds']:.0f} s ({idle['rate']:.0f}/s; {idle['alive']} of {idle['sampled']} sampled answered a request) | 10,000 {ok_idle} |
| server memory: before → after | {idle['rss_before_mib']:.0f} MiB → {idle['rss_after_mib']:.0f} MiB | |
| memory per idle connection | {idle['kib_per_connection']:.1f} KiB | |
{stopped}
**Where the time goes** (`--profile DIR` records the server with py-spy). *Before the first
frame* ({lat['first']:.1f} ms median): `T` is taken when the engine batch starts, so this is the
batch's matching, settlement and SQLite commit plus the publish into the server's loop (one
instrumented run: the event reached the feed 10 ms after `T`, median; the first frame left
right after). *Fan-out* ({lat['spread']:.1f} ms from first to last subscriber, ≈ {per_sub:.0f} µs each,
all in the event loop): about 70 % of the profiled fan-out is the `send()` system call
itself — on loopback it also runs the receiving side's TCP processing — and the rest is Python:
`deliver` → `Outbox.put` (the send runs synchronously, no task switch) → websockets' framing.
JSON is encoded once per event (`FeedEvent.cached`) and every connection gets the same string;
only the UTF-8 encoding and the frame header are per connection, inside the server (ASGI has
no way to hand it shared frame bytes). The embedded engine thread (SQLite polled every 50 ms)
used {(cpu['server'] - cpu['loop']) / max(cpu['loop'], 0.01):.1f}× the CPU of the event loop thread in this run and competes with the
fan-out for the GIL; with Redis the engine is a process of its own (`manage.py run_engine`). Memory
per connection is mostly uvicorn's and websockets' per-connection state, then Channels'
middleware scope copies; the outbox costs nothing while idle.

{HISTORY}
{END}"""


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def _machine() -> str:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} × {model or platform.machine()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", help="update this markdown file between the ws markers")
    parser.add_argument("--server", choices=sorted(SERVERS), default="uvicorn")
    parser.add_argument("--ws", choices=("websockets-sansio", "websockets", "wsproto"), help="uvicorn's WebSocket protocol (default websockets-sansio)")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--trades", type=int, default=40, help="trades per round")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds (the machine's load varies: each is reported)")
    parser.add_argument("--clients", type=int, default=2, help="latency client processes")
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--idle-clients", type=int, default=4, help="idle-connection client processes")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help=f"connect window (at most {MAX_IDLE_SECONDS:.0f} s)")
    parser.add_argument("--profile", type=Path, help="record the server with py-spy into this directory")
    parser.add_argument("--only", choices=("latency", "idle"))
    # internal: a client process
    parser.add_argument("--client", choices=("latency", "idle"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _raise_fd_limit()  # inherited by the server and the client processes
    if args.client == "latency":
        asyncio.run(_client_latency(args.port, args.count))
        return
    if args.client == "idle":
        asyncio.run(_client_idle(args.port, args.count, args.seconds))
        return
    server = Server(args.server, args.ws)
    meta = {"server": args.server, "server_cmd": "`" + " ".join(server.command(0)[3:]).replace(" --port 0", "") + "`",
            "machine": _machine(), "load": " / ".join(f"{x:.2f}" for x in os.getloadavg())}
    print(f"load average at start: {meta['load']}", file=sys.stderr)
    lat = idle = None
    try:
        server.start()
        if args.only != "latency":  # first, on a fresh process: memory per connection is not hidden by freed memory reused
            idle = measure_idle(server, args.idle, args.idle_clients, min(args.idle_seconds, MAX_IDLE_SECONDS))
            print(json.dumps(idle), file=sys.stderr)
        if args.only != "idle":
            lat = measure_latency(server, args.subscribers, args.trades, args.rounds, args.clients, args.profile)
            print(json.dumps(lat), file=sys.stderr)
    finally:
        server.stop()
    meta["load_end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    if lat and idle:
        section = _section(meta, lat, idle)
        print(section)
        if args.write:
            write_section(ROOT / args.write if not os.path.isabs(args.write) else Path(args.write), section)


if __name__ == "__main__":
    main()
