"""A downstream consumer, as an example (docs/events.md): a durable JetStream pull consumer of
one family that decodes Avro single-object messages, applies each event exactly once per
(stream, seq) and notices gaps.

    DJANGO_SETTINGS_MODULE=kk99.settings.dev .venv/bin/python -m events.consumer_example market

It needs only ``nats-py``, ``fastavro`` and ``events/schemas`` (Django is used here for the
settings). A real consumer stores ``last_seq`` per stream in its own database, in the same
transaction as the effect of the event — that is what makes its processing exactly-once."""
from __future__ import annotations

import asyncio
import sys


async def consume(family: str, *, url: str, prefix: str, durable: str = "example", limit: int | None = None) -> dict:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from events import codec
    from events.transport import stream_name

    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        f"{prefix}.{family}.>", durable=durable, stream=stream_name(family, prefix),
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL),
    )
    last_seq: dict[str, int] = {}  # in a real consumer: a table, updated with the effect
    handled = 0
    try:
        while limit is None or handled < limit:
            try:
                msgs = await sub.fetch(100, timeout=2)
            except nats.errors.TimeoutError:
                if limit is None:
                    continue
                break
            for msg in msgs:
                event_type, _, rec = codec.decode(msg.data)
                stream, seq = rec["stream"], rec["seq"]
                expected = last_seq.get(stream, 0) + 1
                if seq < expected:
                    await msg.ack()  # a copy: already applied
                    continue
                if seq > expected:
                    print(f"gap in {stream}: expected {expected}, got {seq} — resync from the REST API", file=sys.stderr)
                print(f"{stream}#{seq} {event_type} {rec}")
                last_seq[stream] = seq
                handled += 1
                await msg.ack()
    finally:
        await nc.close()
    return last_seq


def main() -> None:
    import django

    django.setup()
    from events.transport import events_setting, subject_prefix

    family = sys.argv[1] if len(sys.argv) > 1 else "market"
    asyncio.run(consume(family, url=events_setting("NATS_URL"), prefix=subject_prefix()))


if __name__ == "__main__":
    main()
