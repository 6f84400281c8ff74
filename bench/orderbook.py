"""Order-book benchmark: the same command streams through four paths.

    python -m bench.orderbook [--write docs/benchmarks.md] [--commands N]

(a) the C program ``bench_orderbook`` (batch API for throughput; one ``ob_execute``
    per command, clock read around each, for latency);
(b) Python batch API: ``execute_buffer(CommandBuffer)`` (arrays stay in C memory) and
    ``execute(list[Command]) -> list[Event]`` (decoded events), in batches of 10,000;
(c) Python, one method call per command (``add_limit`` / ``cancel`` / ...);
(d) the pure-Python reference book, one call per command.

Streams (deterministic, seeded):
  * exchange-core-like: ~9% GTC, 3% IOC, 6% cancel, 82% reduce/replace (half each),
    about 1,000 resting orders over about 750 price levels;
  * add-heavy: 70% GTC, 10% IOC, 10% cancel, 5% market, 5% reduce; the book grows to
    several hundred thousand resting orders.
Not a test: numbers depend on the machine. ``--write`` rewrites only the section
between ``<!-- native:start -->`` and ``<!-- native:end -->``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_section
from trading.native.book import CommandBuffer, OrderBook
from trading.native.reference import ReferenceBook
from trading.native.types import Command, CommandType, EventKind, Side, TimeInForce

HERE = Path(__file__).resolve().parents[1] / "trading" / "native"  # the C sources and the bench program
MID = 100_000
BATCH = 10_000
EXPECTED_ORDERS = 1 << 20


# ---- streams ------------------------------------------------------------------------


class _Live:
    """Ids of resting orders, with O(1) random pick and removal."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.pos: dict[int, int] = {}

    def add(self, oid: int) -> None:
        if oid not in self.pos:
            self.pos[oid] = len(self.ids)
            self.ids.append(oid)

    def remove(self, oid: int) -> None:
        i = self.pos.pop(oid, None)
        if i is None:
            return
        last = self.ids.pop()
        if last != oid:
            self.ids[i] = last
            self.pos[last] = i

    def pick(self, rng: random.Random) -> int:
        return self.ids[rng.randrange(len(self.ids))]

    def __len__(self) -> int:
        return len(self.ids)


def _generate(n: int, seed: int, choose) -> list[Command]:
    """Build a stream by driving a C book, so cancels/reduces target live orders."""
    rng = random.Random(seed)
    book = OrderBook(EXPECTED_ORDERS)
    live = _Live()
    out: list[Command] = []
    next_id = 1
    while len(out) < n:
        cmd, next_id = choose(rng, book, live, next_id)
        out.append(cmd)
        c = cmd
        if c.type == CommandType.LIMIT:
            events = book.add_limit(c.order_id, c.owner, c.side, c.price, c.qty, c.tif)
        elif c.type == CommandType.MARKET:
            events = book.add_market(c.order_id, c.owner, c.side, c.qty)
        elif c.type == CommandType.CANCEL:
            events = book.cancel(c.order_id)
        elif c.type == CommandType.REDUCE:
            events = book.reduce(c.order_id, c.qty)
        else:
            events = book.replace(c.order_id, c.price, c.qty)
        for e in events:
            if e.kind == EventKind.TRADE and e.maker_remaining == 0:
                live.remove(e.maker_id)
        if book.get_order(c.order_id) is not None:
            live.add(c.order_id)
        else:
            live.remove(c.order_id)
    return out


def _passive(rng: random.Random, side: int, spread: int) -> int:
    off = rng.randint(1, spread)
    return MID - off if side == Side.BUY else MID + off


def exchange_core_mix(n: int, seed: int = 1) -> list[Command]:
    def choose(rng, book, live, next_id):
        side = rng.randrange(2)
        r = rng.random()
        if len(live) < 1000 and next_id <= 1000:
            r = 0.0  # prefill
        elif len(live) > 1100 and r < 0.09:
            r = 0.15  # too many: cancel instead of add
        elif len(live) < 900 and 0.12 <= r < 0.18:
            r = 0.0  # too few: add instead of cancel
        if r < 0.09:
            price = _passive(rng, side, 375)
            if rng.random() < 0.05:  # marketable
                price = MID + rng.randint(0, 8) if side == Side.BUY else MID - rng.randint(0, 8)
            return Command.limit(next_id, rng.randint(1, 1000), side, price, rng.randint(1, 100)), next_id + 1
        if r < 0.12:
            price = MID + rng.randint(0, 30) if side == Side.BUY else MID - rng.randint(0, 30)
            return Command.limit(next_id, rng.randint(1, 1000), side, price, rng.randint(1, 60),
                                 TimeInForce.IOC), next_id + 1
        oid = live.pick(rng)
        if r < 0.18:
            return Command.cancel(oid), next_id
        o = book.get_order(oid)
        if r < 0.59 and o.remaining_qty > 1:
            return Command.reduce(oid, rng.randint(1, o.remaining_qty - 1)), next_id
        return Command.replace(oid, _passive(rng, o.side, 375), rng.randint(1, 100)), next_id

    return _generate(n, seed, choose)


def add_heavy_mix(n: int, seed: int = 2) -> list[Command]:
    def choose(rng, book, live, next_id):
        side = rng.randrange(2)
        r = rng.random()
        if r < 0.70 or len(live) < 100:
            return Command.limit(next_id, rng.randint(1, 10_000), side, _passive(rng, side, 1000),
                                 rng.randint(1, 100)), next_id + 1
        if r < 0.80:
            price = MID + rng.randint(0, 20) if side == Side.BUY else MID - rng.randint(0, 20)
            return Command.limit(next_id, rng.randint(1, 10_000), side, price, rng.randint(1, 200),
                                 TimeInForce.IOC), next_id + 1
        if r < 0.85:
            return Command.market(next_id, rng.randint(1, 10_000), side, rng.randint(1, 200)), next_id + 1
        oid = live.pick(rng)
        if r < 0.95:
            return Command.cancel(oid), next_id
        o = book.get_order(oid)
        if o.remaining_qty > 1:
            return Command.reduce(oid, rng.randint(1, o.remaining_qty - 1)), next_id
        return Command.cancel(oid), next_id

    return _generate(n, seed, choose)


# ---- runners ----------------------------------------------------------------------------


def _percentiles(samples_ns: list[float]) -> dict[str, float]:
    s = sorted(samples_ns)
    n = len(s)
    return {"p50_ns": s[n // 2], "p99_ns": s[int(n * 0.99)], "p999_ns": s[int(n * 0.999)], "max_ns": s[-1]}


def run_c(stream: list[Command]) -> dict:
    subprocess.run(["make", "-s", "-C", str(HERE), "bench_orderbook"], check=True)
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(CommandBuffer.from_commands(stream).to_bytes())
        path = f.name
    try:
        out = subprocess.run([str(HERE / "bench_orderbook"), path, str(EXPECTED_ORDERS)], check=True,
                             capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    r = json.loads(out)
    r["ops_per_s"] = r["batch_ops_per_s"]
    return r


def run_python_buffers(stream: list[Command]) -> dict:
    book = OrderBook(EXPECTED_ORDERS)
    chunks = [stream[i:i + BATCH] for i in range(0, len(stream), BATCH)]
    per_op, events, total = [], 0, 0.0
    for chunk in chunks:
        t0 = time.perf_counter_ns()
        out = book.execute_buffer(CommandBuffer.from_commands(chunk))
        dt = time.perf_counter_ns() - t0
        total += dt
        events += len(out)
        per_op.append(dt / len(chunk))
    return {"ops_per_s": len(stream) / (total / 1e9), "events": events, **_percentiles(per_op)}


def run_python_list(stream: list[Command]) -> dict:
    book = OrderBook(EXPECTED_ORDERS)
    chunks = [stream[i:i + BATCH] for i in range(0, len(stream), BATCH)]
    per_op, events, total = [], 0, 0.0
    for chunk in chunks:
        t0 = time.perf_counter_ns()
        out = book.execute(chunk)
        dt = time.perf_counter_ns() - t0
        total += dt
        events += len(out)
        per_op.append(dt / len(chunk))
    return {"ops_per_s": len(stream) / (total / 1e9), "events": events, **_percentiles(per_op)}


def _one_by_one(book, stream: list[Command]) -> dict:
    calls = {
        CommandType.LIMIT: lambda c: book.add_limit(c.order_id, c.owner, c.side, c.price, c.qty, c.tif),
        CommandType.MARKET: lambda c: book.add_market(c.order_id, c.owner, c.side, c.qty),
        CommandType.CANCEL: lambda c: book.cancel(c.order_id),
        CommandType.REDUCE: lambda c: book.reduce(c.order_id, c.qty),
        CommandType.REPLACE: lambda c: book.replace(c.order_id, c.price, c.qty),
    }
    lat = [0] * len(stream)
    events = 0
    clock = time.perf_counter_ns
    t_all = clock()
    for i, c in enumerate(stream):
        call = calls[c.type]
        t0 = clock()
        events += len(call(c))
        lat[i] = clock() - t0
    total = clock() - t_all
    return {"ops_per_s": len(stream) / (sum(lat) / 1e9), "wall_ops_per_s": len(stream) / (total / 1e9),
            "events": events, **_percentiles(lat)}


def run_python_calls(stream: list[Command]) -> dict:
    return _one_by_one(OrderBook(EXPECTED_ORDERS), stream)


def run_reference(stream: list[Command]) -> dict:
    return _one_by_one(ReferenceBook(), stream)


# ---- report --------------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.2f} at start (other processes share the cores)"
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}{load}")


ROWS = [
    ("a", "C program (batch API; latency: one ob_execute per command)", "c"),
    ("b", "Python batch, execute_buffer (arrays stay in C memory)", "py_buffers"),
    ("b'", "Python batch, execute -> list[Event]", "py_list"),
    ("c", "Python, one method call per command", "py_calls"),
    ("d", "pure-Python reference book, one call per command", "reference"),
]


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def render(results: dict, elapsed: float) -> str:
    lines = [
        "## Native order book",
        "",
        f"Machine: {machine()}. Command: `make bench` (= `.venv/bin/python -m bench.orderbook "
        f"--write docs/benchmarks.md`); whole run {elapsed:.0f} s. Latencies in µs. For (a) the latency run "
        "calls `ob_execute` once per command with a monotonic clock read around it "
        "(clock overhead included, shown below); for (b)/(b') a \"latency\" is a 10,000-command batch's "
        "time divided by 10,000 (amortised, not per order); for (c)/(d) each call is timed.",
        "",
    ]
    for name, res in results.items():
        c = res["c"]
        lines += [
            f"### {name}: {res['n']:,} commands, {c['events']:,} events, {c['trades']:,} trades, "
            f"{c['resting_at_end']:,} orders resting at the end",
            "",
            "| path | ops/s | p50 | p99 | p99.9 | max | vs reference |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        ref = res["reference"]["ops_per_s"]
        for tag, label, key in ROWS:
            r = res[key]
            lines.append(
                f"| ({tag}) {label} | {r['ops_per_s']:,.0f} | {_us(r['p50_ns'])} | {_us(r['p99_ns'])} | "
                f"{_us(r['p999_ns'])} | {_us(r['max_ns'])} | {r['ops_per_s'] / ref:,.1f}× |"
            )
        lines += [
            "",
            f"C one-call-per-command rate {c['single_ops_per_s']:,.0f} ops/s; clock overhead "
            f"{c['timer_overhead_ns']} ns per reading pair. Ratios: C / Python batch (buffers) "
            f"{c['ops_per_s'] / res['py_buffers']['ops_per_s']:.1f}×, C / Python per call "
            f"{c['ops_per_s'] / res['py_calls']['ops_per_s']:.1f}×, C / reference "
            f"{c['ops_per_s'] / ref:.0f}×. All paths produced the same number of events: "
            f"{'yes' if res['events_agree'] else 'NO'}.",
            "",
        ]
    mix = results.get("exchange-core-like mix")
    if mix:
        c = mix["c"]
        goals = [
            ("C ≥ 5,000,000 ops/s", c["ops_per_s"] >= 5e6, f"{c['ops_per_s']:,.0f}"),
            ("C p99 ≤ 2 µs", c["p99_ns"] <= 2000, f"{_us(c['p99_ns'])} µs"),
            ("Python batch ≥ 1,000,000 orders/s (execute_buffer)", mix["py_buffers"]["ops_per_s"] >= 1e6,
             f"{mix['py_buffers']['ops_per_s']:,.0f}"),
            ("Python batch ≥ 1,000,000 orders/s (execute → list[Event])", mix["py_list"]["ops_per_s"] >= 1e6,
             f"{mix['py_list']['ops_per_s']:,.0f}"),
            ("C ≥ 100× reference", c["ops_per_s"] >= 100 * mix["reference"]["ops_per_s"],
             f"{c['ops_per_s'] / mix['reference']['ops_per_s']:,.0f}×"),
        ]
        lines += ["### Goals (exchange-core-like mix)", "", "| goal | measured | met |", "|---|---:|:---:|"]
        lines += [f"| {g} | {v} | {'yes' if ok else 'no'} |" for g, ok, v in goals]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", type=Path, help="markdown file whose native section to rewrite")
    ap.add_argument("--commands", type=int, default=1_000_000, help="commands per stream")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    results = {}
    for name, gen in (("exchange-core-like mix", exchange_core_mix), ("add-heavy mix", add_heavy_mix)):
        print(f"[{name}] generating {args.commands:,} commands ...", file=sys.stderr, flush=True)
        stream = gen(args.commands)
        res = {"n": len(stream)}
        for key, fn in (("c", run_c), ("py_buffers", run_python_buffers), ("py_list", run_python_list),
                        ("py_calls", run_python_calls), ("reference", run_reference)):
            print(f"[{name}] {key} ...", file=sys.stderr, flush=True)
            res[key] = fn(stream)
        counts = {res[k]["events"] for k in ("c", "py_buffers", "py_list", "py_calls", "reference")}
        res["events_agree"] = len(counts) == 1
        results[name] = res
    body = render(results, time.perf_counter() - started)
    print(body)
    if args.write:
        write_section(args.write, "native", body)
        print(f"wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
