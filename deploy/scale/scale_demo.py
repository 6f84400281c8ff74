"""Scale-out proof on one machine (``make scale-demo``; tests/ops/test_scale_out.py runs it small).

    .venv/bin/python deploy/scale/scale_demo.py [--write docs/benchmarks.md] [--json]

Against one PostgreSQL database (its own, recreated: ``--database-url``) and Redis:

1. **Engine throughput, one vs two engines, same run.** A backlog of ``--backlog`` crossing
   orders per market (4 markets) is placed with no engine running; one engine owning all four
   markets drains it and is timed. Then a second, equal backlog is drained by two engines
   owning two markets each.
2. **Scale-out with failures.** 2 web processes (uvicorn), 2 supervised engines owning
   different markets (``kk99 engines run``) + 1 supervised standby for all of them, 2 Celery
   workers + beat. Signed ``POST /api/v3/order`` load from client threads across both webs
   for ``--seconds``; a third of the way in the owner of the first market group is SIGKILLed
   (its supervisor restarts it; the standby takes the markets), half-way the first web process
   is SIGKILLed (clients move to the other web).
3. **Checks.** Every order the API accepted exists and was processed (nothing lost), trade ids
   per market are gap-free (nothing doubled), ``ledger_audit`` passes, ``/metrics`` shows an
   owner for every market and Celery tasks run, ``kk99 status`` is healthy, and throughput
   never stopped for long: settled orders per second are sampled throughout.

Exit status 0 when every check passed. Not a benchmark of peak speed: the point is that
throughput continues and nothing is lost while processes die.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode, urlparse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # bench.http_settings lives at the top of the checkout
SETTINGS = "bench.http_settings"  # the benchmarks' settings: limits lifted for load, same code paths
GROUP_A = ["AAAUSDT", "BBBUSDT"]
GROUP_B = ["CCCUSDT", "DDDUSDT"]
MARKETS = GROUP_A + GROUP_B


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def _recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- set-up (Django in this process) -----------------------------------------------------------

def _seed(users: int) -> list[tuple[object, str, str]]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from accounts.services import api_key_create
    from trading.models import EngineState, Market
    from wallets.models import Asset
    from wallets.services import ledger_credit

    call_command("migrate", verbosity=0, interactive=False)
    quote = Asset.objects.create(symbol="USDT", name="Tether", precision=8)
    bases = {}
    for symbol in MARKETS:
        base = Asset.objects.create(symbol=symbol[:3], name=symbol[:3], precision=8)
        bases[symbol] = base
        market = Market.objects.create(
            symbol=symbol, base=base, quote=quote, tick_size=Decimal("0.01"), step_size=Decimal("0.001"), min_qty=Decimal("0.001"),
            max_qty=Decimal("1000"), min_notional=Decimal("1"), price_band_pct=Decimal("50"), reference_price=Decimal("100"),
        )
        EngineState.objects.get_or_create(market=market)
    out = []
    User = get_user_model()
    for i in range(users):
        user = User.objects.create_user(email=f"scale{i}@example.com", password="scale-password-123", kyc_tier=3)
        for asset in [quote, *bases.values()]:
            ledger_credit(user=user, asset=asset, amount=Decimal("100000000"), idempotency_key=f"scale:{i}:{asset.symbol}", kind="issuance", counter="issuance")
        api_key, secret = api_key_create(user=user, label="scale", permissions=["trade"])
        out.append((user, api_key.key, secret))
    return out


def _backlog(users, per_market: int, rng: random.Random) -> int:
    """Crossing orders placed with no engine running: they wait as PENDING_NEW."""
    from trading.models import Market
    from trading.services import order_place

    markets = list(Market.objects.filter(symbol__in=MARKETS))
    n = 0
    for i in range(per_market):
        for market in markets:
            user = users[(i + n) % len(users)][0]
            side = "BUY" if i % 2 else "SELL"
            price = Decimal(rng.randint(9900, 10100)) / 100
            order_place(user=user, market=market, side=side, type="LIMIT", quantity=Decimal(rng.randint(20, 200)) / 1000, price=price)
            n += 1
    return n


def _pending() -> int:
    from trading.models import Order

    return Order.objects.filter(status=Order.Status.PENDING_NEW).count()


def _settled() -> int:
    from trading.models import Order

    return Order.objects.exclude(status=Order.Status.PENDING_NEW).count()


# --- processes ---------------------------------------------------------------------------------

class Procs:
    def __init__(self, env: dict, logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], **extra) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # closed when the process is stopped
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **{k: str(v) for k, v in extra.items()}}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _engine_cmd(markets: list[str], owner: str) -> list[str]:
    return [sys.executable, "-m", "kk99.cli", "engines", "run", "--markets", ",".join(markets), "--owner", owner]


def _drain_timed(procs: Procs, engines: dict[str, list[str]], total: int, timeout: float) -> float:
    start = time.monotonic()
    for owner, markets in engines.items():
        procs.start(f"bench-{owner}", [sys.executable, "manage.py", "run_engine", "--markets", ",".join(markets), "--owner", owner])
    _wait(lambda: _pending() == 0, timeout, "the backlog to drain", interval=0.05)
    elapsed = time.monotonic() - start
    for owner in engines:
        procs.stop(f"bench-{owner}")
    return elapsed


# --- HTTP load ---------------------------------------------------------------------------------

class Load:
    def __init__(self, ports: list[int], keys: list[tuple[str, str]], seconds: float, threads: int) -> None:
        self.ports = ports
        self.keys = keys
        self.seconds = seconds
        self.threads = threads
        self.accepted: list[int] = []
        self.errors: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def _one(self, t: int) -> None:
        rng = random.Random(t)
        port_i = t % len(self.ports)
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[port_i], timeout=10)
        i = 0
        while not self.stop.is_set():
            key, secret = self.keys[(t + i) % len(self.keys)]
            params = {"symbol": MARKETS[(t + i) % len(MARKETS)], "side": "BUY" if (i + t) % 2 else "SELL", "type": "LIMIT", "timeInForce": "GTC",
                      "quantity": f"{rng.randint(20, 200) / 1000:.3f}", "price": f"{rng.randint(9900, 10100) / 100:.2f}",
                      "newOrderRespType": "ACK", "timestamp": int(time.time() * 1000), "recvWindow": 60000}
            query = urlencode(params)
            body = f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"
            i += 1
            try:
                conn.request("POST", "/api/v3/order", body=body, headers={"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200:
                    with self.lock:
                        self.accepted.append(int(json.loads(data)["orderId"]))
                else:
                    self._error(f"http {resp.status}")
            except (OSError, http.client.HTTPException) as exc:
                # The web process died (or the connection dropped): go to the other one. A request
                # whose answer was lost may or may not have been accepted; it is not counted as
                # accepted, and the nothing-lost check is about the accepted ones.
                self._error(type(exc).__name__)
                conn.close()
                port_i = (port_i + 1) % len(self.ports)
                conn = http.client.HTTPConnection("127.0.0.1", self.ports[port_i], timeout=10)
                time.sleep(0.05)
        conn.close()

    def _error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._one, args=(t,), daemon=True) for t in range(self.threads)]
        for th in threads:
            th.start()
        return threads


def _scrape(port: int, timeout: float = 5) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout).read().decode()


def _metric(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


# --- the run -----------------------------------------------------------------------------------

def run(args) -> dict:
    t_start = time.monotonic()
    _recreate_database(args.database_url)
    env = {**os.environ, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url, "DJANGO_SETTINGS_MODULE": SETTINGS,
           "KK99_ENGINE_IDLE_WAIT_SECONDS": "0.5", "KK99_ENGINE_STANDBY_RETRY_SECONDS": "0.2", "KK99_LEDGER_AUDIT_SECONDS": "3",
           "DB_POOL_MAX_SIZE": "6", "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")})
    import django

    django.setup()
    from django.db import connection

    from trading.models import EngineState, Order, Trade

    logdir = Path(args.log_dir)
    logdir.mkdir(parents=True, exist_ok=True)
    procs = Procs(env, logdir)
    rng = random.Random(15)
    result: dict = {"checks": {}}
    try:
        users = _seed(args.users)
        keys = [(k, s) for _, k, s in users]

        # 1. one engine vs two engines.
        n1 = _backlog(users, args.backlog, rng)
        connection.close()
        t1 = _drain_timed(procs, {"solo": MARKETS}, n1, timeout=600)
        n2 = _backlog(users, args.backlog, rng)
        connection.close()
        t2 = _drain_timed(procs, {"pair-a": GROUP_A, "pair-b": GROUP_B}, n2, timeout=600)
        result["engine"] = {"orders": n1, "one_engine_seconds": round(t1, 2), "one_engine_per_second": round(n1 / t1, 1),
                            "two_engines_seconds": round(t2, 2), "two_engines_per_second": round(n2 / t2, 1)}

        # 2. the scale-out topology.
        web_ports = [_free_port(), _free_port()]
        metric_ports = {"owner-a": _free_port(), "owner-b": _free_port(), "standby": _free_port(), "worker-1": _free_port(), "worker-2": _free_port()}
        for i, port in enumerate(web_ports, 1):
            procs.start(f"web-{i}", [sys.executable, "-m", "uvicorn", "kk99.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                                     "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"])
        procs.start("owner-a", _engine_cmd(GROUP_A, "owner-a"), KK99_METRICS_PORT=metric_ports["owner-a"])
        procs.start("owner-b", _engine_cmd(GROUP_B, "owner-b"), KK99_METRICS_PORT=metric_ports["owner-b"])
        _wait(lambda: set(EngineState.objects.filter(market__symbol__in=GROUP_A).values_list("owner", flat=True)) == {"owner-a"}
              and set(EngineState.objects.filter(market__symbol__in=GROUP_B).values_list("owner", flat=True)) == {"owner-b"}, 120, "owners")
        procs.start("standby", _engine_cmd(MARKETS, "standby"), KK99_METRICS_PORT=metric_ports["standby"])
        for i in (1, 2):
            # Prefork children count into PROMETHEUS_MULTIPROC_DIR; the worker's main process serves the sum.
            mp_dir = logdir / f"prometheus-worker-{i}"
            shutil.rmtree(mp_dir, ignore_errors=True)
            mp_dir.mkdir(parents=True)
            procs.start(f"celery-worker-{i}", [sys.executable, "-m", "celery", "-A", "kk99", "worker", "--concurrency", "2", "-n", f"w{i}@%h",
                                               "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                        KK99_METRICS_PORT=metric_ports[f"worker-{i}"], PROMETHEUS_MULTIPROC_DIR=mp_dir)
        procs.start("celery-beat", [sys.executable, "-m", "celery", "-A", "kk99", "beat", "--loglevel", "WARNING", "-s", str(logdir / "beat-schedule")])
        for port in web_ports:
            _wait(lambda p=port: _port_open(p), 120, f"web on {port}")
        _wait(lambda: _status(env)[1].get("engine_processes") and len(_status(env)[1]["engine_processes"]) == 3, 120, "3 engine processes")

        load = Load(web_ports, keys, args.seconds, args.threads)
        timeline: list[tuple[float, int]] = []
        threads = load.run()
        t0 = time.monotonic()
        events = []
        killed_engine = killed_web = False
        while time.monotonic() - t0 < args.seconds:
            now = time.monotonic() - t0
            timeline.append((round(now, 2), _settled()))
            if not killed_engine and now >= args.seconds / 3:
                child = _children(procs.procs["owner-a"].pid)
                for pid in child:
                    os.kill(pid, signal.SIGKILL)
                events.append({"t": round(now, 2), "event": f"SIGKILL engine owner-a (run_engine pid {child})"})
                killed_engine = True
            if not killed_web and now >= args.seconds / 2:
                os.killpg(procs.procs["web-1"].pid, signal.SIGKILL)
                events.append({"t": round(now, 2), "event": f"SIGKILL web-1 (pid {procs.procs['web-1'].pid})"})
                killed_web = True
            time.sleep(0.5)
        load.stop.set()
        for th in threads:
            th.join(timeout=30)
        _wait(lambda: _pending() == 0, 180, "every accepted order processed", interval=0.2)
        timeline.append((round(time.monotonic() - t0, 2), _settled()))

        # 3. checks.
        accepted = set(load.accepted)
        found = dict(Order.objects.filter(pk__in=accepted).values_list("pk", "status"))
        lost = sorted(accepted - set(found))
        unprocessed = [pk for pk, st in found.items() if st == Order.Status.PENDING_NEW]
        gapless = {}
        for symbol in MARKETS:
            ids = list(Trade.objects.filter(market__symbol=symbol).order_by("trade_id").values_list("trade_id", flat=True))
            state = EngineState.objects.get(market__symbol=symbol)
            gapless[symbol] = ids == list(range(1, len(ids) + 1)) and state.last_trade_id == len(ids)
        audit = subprocess.run([sys.executable, "manage.py", "ledger_audit"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        code, status = _status(env)
        web2 = _scrape(web_ports[1])
        owners_up = {m: _metric(web2, "kk99_engine_owner_up", market=m) for m in MARKETS}
        standby_takeovers = _metric(_scrape(metric_ports["standby"]), "kk99_engine_takeovers_total")
        celery_tasks = sum(_metric(_scrape(metric_ports[w]), "kk99_celery_tasks_total") for w in ("worker-1", "worker-2"))
        owners = dict(EngineState.objects.filter(market__symbol__in=MARKETS).values_list("market__symbol", "owner"))

        # Throughput per window: did settling ever stop?
        rates = []
        for (ta, ca), (tb, cb) in zip(timeline, timeline[4:]):
            rates.append(round((cb - ca) / max(tb - ta, 1e-6), 1))
        result.update({
            "accepted": len(accepted), "lost": len(lost), "unprocessed": len(unprocessed), "client_errors": load.errors,
            "events": events, "owners_after": owners, "owner_up_metric": owners_up, "standby_takeovers": standby_takeovers,
            "celery_tasks": celery_tasks, "status_exit": code, "status_roles": sorted(p["role"] for p in status.get("engine_processes", [])),
            "throughput_windows_per_second": rates, "http_orders_per_second": round(len(accepted) / args.seconds, 1),
            "ledger_audit_exit": audit.returncode, "trades": Trade.objects.filter(market__symbol__in=MARKETS).count(),
        })
        result["checks"] = {
            "nothing_lost": not lost and not unprocessed and len(accepted) > 0,
            "nothing_doubled": all(gapless.values()),
            "ledger_audit_passes": audit.returncode == 0,
            "standby_took_over": owners.get(GROUP_A[0]) == "standby" or standby_takeovers >= 1,
            "every_market_owned": all(v == 1 for v in owners_up.values()),
            "kk99_status_healthy": code == 0,
            "celery_ran_tasks": celery_tasks > 0,
            "throughput_continued": len(rates) > 2 and max(rates[len(rates) // 2:]) > 0,
        }
    finally:
        procs.stop_all()
        connection.close()
    result["ok"] = bool(result["checks"]) and all(result["checks"].values())
    result["seconds_total"] = round(time.monotonic() - t_start, 1)
    result["logs"] = str(logdir)
    return result


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _status(env: dict) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "kk99.cli", "status", "--json", "--celery-timeout", "2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, {}


def render(r: dict, args) -> str:
    e = r["engine"]
    return "\n".join([
        "## Scale-out: one vs two engines, and processes killed under load (`make scale-demo`)",
        "",
        f"Same run, same database: a backlog of {e['orders']:,} crossing orders over 4 markets, drained by the engine(s) "
        f"(settlement committed). Machine: {os.cpu_count()} cores shared with other work; the numbers are only as good as the cores were idle.",
        "",
        "| engines | backlog drained in | orders/s |",
        "|---|---:|---:|",
        f"| 1 (owns all 4 markets) | {e['one_engine_seconds']} s | {e['one_engine_per_second']:,} |",
        f"| 2 (2 markets each) | {e['two_engines_seconds']} s | {e['two_engines_per_second']:,} |",
        "",
        f"Then 2 uvicorn web processes, 2 supervised engine owners + 1 standby, 2 Celery workers + beat, "
        f"{args.threads} client threads placing signed orders for {args.seconds:.0f} s:",
        "",
        *[f"- t={ev['t']} s: {ev['event']}" for ev in r["events"]],
        f"- {r['accepted']:,} orders accepted ({r['http_orders_per_second']} /s over both webs), {r['lost']} lost, {r['unprocessed']} unprocessed; "
        f"{r['trades']:,} trades, ids gap-free per market; client errors while a web died: {r['client_errors'] or 'none'}",
        f"- settled orders/s in 2-second windows: {r['throughput_windows_per_second']}",
        f"- owners after: {r['owners_after']}; `kk99 status` exit {r['status_exit']} with roles {r['status_roles']}; "
        f"`/metrics` owner_up {r['owner_up_metric']}; Celery tasks run: {r['celery_tasks']:.0f}",
        f"- `ledger_audit` exit {r['ledger_audit_exit']}. Checks: " + ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in r["checks"].items()),
        "",
        f"Command: `make scale-demo` (`deploy/scale/scale_demo.py --backlog {args.backlog} --seconds {args.seconds:.0f}`); whole run {r['seconds_total']:.0f} s.",
    ])


def write_section(path: Path, text: str) -> None:
    start, end = "<!-- scale:start -->", "<!-- scale:end -->"
    doc = path.read_text() if path.exists() else ""
    block = f"{start}\n{text}\n{end}"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=os.environ.get("KK99_SCALE_PG_URL", "postgres://root@127.0.0.1:5432/kk99_scale_demo"))
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    ap.add_argument("--backlog", type=int, default=500, help="orders per market in each engine-throughput backlog")
    ap.add_argument("--seconds", type=float, default=30.0, help="duration of the HTTP load with the kills")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--log-dir", default=str(ROOT / "var" / "scale-demo"))
    ap.add_argument("--write", default=None, help="write the section into this markdown file")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = run(args)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    else:
        print(render(r, args) if r.get("engine") else json.dumps(r, indent=2, default=str))
    if args.write and r.get("engine"):
        write_section(Path(args.write), render(r, args))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
