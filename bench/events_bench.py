"""Throughput of the event relay (a benchmark, not a test).

    .venv/bin/python -m bench.events_bench --write docs/benchmarks.md

1. Creates a fresh database (``--database-url``, default ``…/kk99_bench_events``), migrates it
   and writes ``--events`` outbox events (``balance.changed``, over ``--streams`` account
   streams, 100 per transaction) through :func:`events.outbox.events_append` — the producers'
   own path (its rate is reported too).
2. Relays them with :func:`events.relay.relay_run` to NATS JetStream (``--nats-url``, streams
   under a fresh prefix, deleted afterwards), each message Avro single-object encoded, published
   with its ``Nats-Msg-Id`` and acknowledged one at a time (the order guarantee), the cursor
   saved per batch. Also reported: Avro encoding alone.

Writes its section between ``<!-- events:start -->`` and ``<!-- events:end -->``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from decimal import Decimal
from pathlib import Path

from bench.common import django_setup, recreate_database, write_section

DEFAULT_DB = "postgres://root@127.0.0.1:5432/kk99_bench_events"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()

    prefix = f"kk99bench{uuid.uuid4().hex[:8]}"
    recreate_database(args.database_url)
    django_setup(args.database_url, redis_url=None, env={"KK99_NATS_URL": args.nats_url, "KK99_EVENTS_PREFIX": prefix}, quiet=False)
    from django.core.management import call_command
    from django.db import transaction

    from events import codec
    from events.models import OutboxEvent
    from events.outbox import account_stream, events_append
    from events.relay import relay_run
    from events.transport import NatsTransport

    call_command("migrate", verbosity=0, interactive=False)
    t0 = time.perf_counter()
    for start in range(0, args.events, 100):
        with transaction.atomic():
            events_append([
                (account_stream(i % args.streams + 1), "balance.changed", {
                    "account_id": i % args.streams + 1, "asset_id": 1, "journal_event_id": i, "kind": "trade",
                    "delta_available": str(Decimal(i) / 1000), "delta_locked": "0",
                })
                for i in range(start, min(start + 100, args.events))
            ])
    write_s = time.perf_counter() - t0

    rows = list(OutboxEvent.objects.order_by("id")[:5000])
    t0 = time.perf_counter()
    for r in rows:
        codec.encode(r.event_type, r.version, codec.record(r))
    encode_rate = len(rows) / (time.perf_counter() - t0)

    transport = NatsTransport(url=args.nats_url, prefix=prefix)
    transport.open()
    try:
        transport.ensure_streams()
        t0 = time.perf_counter()
        relayed = relay_run(transport, limit=args.batch, stop_when_idle=True, prefix=prefix)
        relay_s = time.perf_counter() - t0
        transport.delete_streams()
    finally:
        transport.close()
    assert relayed == args.events, (relayed, args.events)

    text = (
        "## Event relay (`bench/events_bench.py`)\n\n"
        f"{args.events:,} `balance.changed` events over {args.streams} account streams; relay batch {args.batch}; "
        f"NATS JetStream at {args.nats_url} (file storage); {platform.machine()}, {os.cpu_count()} cores, shared machine.\n\n"
        "| step | rate |\n|---|---|\n"
        f"| outbox write (`events_append`, 100 events per transaction) | {args.events / write_s:,.0f} events/s |\n"
        f"| Avro single-object encoding alone | {encode_rate:,.0f} events/s |\n"
        f"| **relay: read, encode, publish + ack one at a time, save cursor** | **{relayed / relay_s:,.0f} events/s** |\n\n"
        "Command: `.venv/bin/python -m bench.events_bench --write docs/benchmarks.md`.\n"
    )
    print(text)
    if args.write:
        write_section(args.write, "events", text)


if __name__ == "__main__":
    main()
