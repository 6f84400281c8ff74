"""Check a relayed feed against the database (``manage.py events_verify``).

Reads every message of the prefix's streams from the start and reports: events of the outbox
never seen (lost), seen more than once (duplicated), seen after a higher seq of the same stream
(reordered), gaps in a stream's seq, payloads that differ from the outbox row, and — for trades
— outbox payloads that differ from the ``trading_trade`` row (or trades without an event)."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from events import codec
from events.models import OutboxEvent
from events.outbox import trade_payload
from events.transport import FAMILIES, stream_name, subject_for, subject_prefix


@dataclass
class Report:
    received: int = 0
    expected: int = 0
    lost: list = field(default_factory=list)
    duplicated: list = field(default_factory=list)
    reordered: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    payload_diffs: list = field(default_factory=list)
    row_diffs: list = field(default_factory=list)
    gaps: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered or self.unknown or self.payload_diffs
                    or self.row_diffs or self.gaps)

    def lines(self) -> list[str]:
        out = [f"received {self.received} messages, outbox holds {self.expected} events",
               f"lost {len(self.lost)}, duplicated {len(self.duplicated)}, reordered {len(self.reordered)}, "
               f"gaps {len(self.gaps)}, unknown {len(self.unknown)}, payload diffs {len(self.payload_diffs)}, "
               f"row diffs {len(self.row_diffs)}"]
        for label in ("lost", "duplicated", "reordered", "gaps", "unknown", "payload_diffs", "row_diffs"):
            for item in getattr(self, label)[:20]:
                out.append(f"  {label}: {item}")
        return out


def read_stream_messages(*, url: str, prefix: str, timeout: float = 5.0) -> list[tuple[str, bytes]]:
    """Every (subject, data) of the prefix's streams, in stream order, family by family."""
    import nats
    from nats.js.errors import NotFoundError

    async def read():
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=timeout)
        js = nc.jetstream(timeout=timeout)
        out = []
        try:
            for family in FAMILIES:
                name = stream_name(family, prefix)
                try:
                    info = await js.stream_info(name)
                except NotFoundError:
                    continue
                if not info.state.messages:
                    continue
                for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
                    try:
                        msg = await js.get_msg(name, seq)
                    except NotFoundError:
                        continue
                    out.append((msg.subject, msg.data))
        finally:
            await nc.close()
        return out

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(read())
    finally:
        loop.close()


def _normal(event_type: str, version: int, rec: dict) -> dict:
    return codec.decode(codec.encode(event_type, version, rec))[2]


def verify(messages: list[tuple[str, bytes]], *, prefix: str | None = None, check_rows: bool = True) -> Report:
    prefix = prefix or subject_prefix()
    rows = {(r.stream, r.seq): r for r in OutboxEvent.objects.order_by("id").iterator()}
    rep = Report(received=len(messages), expected=len(rows))
    seen: set = set()
    last: dict[str, int] = defaultdict(int)
    for subject, data in messages:
        try:
            event_type, _, rec = codec.decode(data)
        except codec.UnknownSchema as exc:
            rep.unknown.append(f"{subject}: {exc}")
            continue
        key = (rec["stream"], rec["seq"])
        if subject != subject_for(rec["stream"], prefix):
            rep.unknown.append(f"{subject}: carries {key}")
        if key in seen:
            rep.duplicated.append(key)
            continue
        seen.add(key)
        if rec["seq"] < last[rec["stream"]]:
            rep.reordered.append(key)
        elif rec["seq"] != last[rec["stream"]] + 1:
            rep.gaps.append(f"{rec['stream']}: {last[rec['stream']]} → {rec['seq']}")
        last[rec["stream"]] = max(last[rec["stream"]], rec["seq"])
        row = rows.get(key)
        if row is None:
            rep.unknown.append(f"{key}: not in the outbox")
            continue
        expected = _normal(row.event_type, row.version, codec.record(row))
        if event_type != row.event_type or rec != expected:
            rep.payload_diffs.append({"key": key, "stream": rec, "outbox": expected})
    rep.lost = sorted(set(rows) - seen)
    if check_rows:
        rep.row_diffs = trade_row_diffs(rows.values())
    return rep


def trade_row_diffs(rows) -> list:
    """Each trade.executed payload equals its trading_trade row; each trade has one event."""
    from trading.models import Trade

    diffs = []
    by_key = {}
    for r in rows:
        if r.event_type == "trade.executed":
            by_key[(r.payload["symbol"], r.payload["trade_id"])] = r.payload
    trades = Trade.objects.select_related("market").order_by("market_id", "trade_id")
    for t in trades.iterator():
        key = (t.market.symbol, t.trade_id)
        payload = by_key.pop(key, None)
        if payload is None:
            diffs.append(f"trade {key}: no event")
        elif payload != trade_payload(t, t.market.symbol):
            diffs.append({"trade": key, "event": payload, "row": trade_payload(t, t.market.symbol)})
    diffs += [f"event for trade {k}: no row" for k in by_key]
    return diffs
