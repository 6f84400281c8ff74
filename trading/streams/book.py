"""A market's top of book, kept from a snapshot plus the engine's sequenced depth diffs.

The engine publishes ``depth.diff`` events ``{first_update_id, last_update_id, bids, asks}``
whose levels carry the *absolute* quantity at a price (``"0"`` removes the level), and a
snapshot ``{last_update_id, bids, asks}`` (cache, or the database when no cache is shared).
Because levels are absolute, applying a diff the snapshot already contains is harmless; a diff
whose ``first_update_id`` is beyond ``last_update_id + 1`` is a *gap* (an event was lost between
commit and publish) and the book must be reloaded — :meth:`LocalBook.apply` says so instead
of guessing.
"""
from __future__ import annotations

from decimal import Decimal
from collections.abc import Iterable

ZERO = Decimal(0)


def _levels(rows: Iterable) -> dict[Decimal, tuple[str, str]]:
    out: dict[Decimal, tuple[str, str]] = {}
    for price, qty in rows:
        q = Decimal(str(qty))
        if q > 0:
            out[Decimal(str(price))] = (str(price), str(qty))
    return out


class Gap(Exception):
    """A diff does not follow the book's last update id: reload a snapshot."""


class LocalBook:
    """Bids and asks keyed by Decimal price; values keep the engine's strings for output."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}
        self.last_update_id = 0
        self.loaded = False

    def load(self, snapshot: dict) -> None:
        self.bids = _levels(snapshot.get("bids") or [])
        self.asks = _levels(snapshot.get("asks") or [])
        self.last_update_id = int(snapshot.get("last_update_id") or 0)
        self.loaded = True

    def apply(self, diff: dict) -> bool:
        """Apply a depth diff. Returns False when it is already contained in the book (stale),
        True when applied; raises :class:`Gap` when an update id is missing."""
        first, last = int(diff["first_update_id"]), int(diff["last_update_id"])
        if last <= self.last_update_id:
            return False
        if first > self.last_update_id + 1:
            raise Gap(f"have {self.last_update_id}, got {first}..{last}")
        for side, rows in ((self.bids, diff.get("bids") or []), (self.asks, diff.get("asks") or [])):
            for price, qty in rows:
                p = Decimal(str(price))
                if Decimal(str(qty)) > 0:
                    side[p] = (str(price), str(qty))
                else:
                    side.pop(p, None)
        self.last_update_id = last
        return True

    def changes_to(self, other: LocalBook) -> tuple[list[list[str]], list[list[str]]]:
        """The absolute-level changes that turn this book into ``other`` (qty "0" = removed):
        what a client holding this book needs to reach ``other`` after a resync."""
        out = []
        for mine, theirs in ((self.bids, other.bids), (self.asks, other.asks)):
            rows = [[s[0], s[1]] for p, s in theirs.items() if mine.get(p, (None, None))[1] is None or Decimal(mine[p][1]) != Decimal(s[1])]
            rows += [[mine[p][0], "0"] for p in mine if p not in theirs]
            out.append(rows)
        return out[0], out[1]

    def top(self, n: int | None = None) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Best ``n`` levels per side as Decimals: bids high→low, asks low→high."""
        bids = sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)[:n]
        asks = sorted(self.asks.items(), key=lambda kv: kv[0])[:n]
        return [(p, Decimal(v[1])) for p, v in bids], [(p, Decimal(v[1])) for p, v in asks]

    def top_strings(self, n: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
        bids = sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)[:n]
        asks = sorted(self.asks.items(), key=lambda kv: kv[0])[:n]
        return [list(v) for _, v in bids], [list(v) for _, v in asks]

    def best(self) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        bid = self.bids[max(self.bids)] if self.bids else None
        ask = self.asks[min(self.asks)] if self.asks else None
        return bid, ask

    def copy(self) -> LocalBook:
        b = LocalBook()
        b.bids, b.asks, b.last_update_id, b.loaded = dict(self.bids), dict(self.asks), self.last_update_id, self.loaded
        return b
