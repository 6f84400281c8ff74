"""Candle intervals (Binance's names) and the UTC bucket arithmetic shared by the SQL and the
Python paths.

Fixed-length intervals are aligned to the Unix epoch (so 1d candles open at 00:00 UTC and 4h
candles at 00:00, 04:00 …), weeks open on Monday 00:00 UTC and months on the 1st at 00:00 UTC —
the same boundaries Binance uses. PostgreSQL's ``date_bin`` / TimescaleDB's ``time_bucket`` are
called with exactly these origins, so both paths put a trade in the same bucket."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
WEEK_ORIGIN = dt.datetime(1970, 1, 5, tzinfo=UTC)  # the first Monday after the epoch


@dataclass(frozen=True, slots=True)
class Interval:
    name: str
    seconds: int  # 0 for calendar months

    @property
    def is_month(self) -> bool:
        return self.seconds == 0

    @property
    def origin(self) -> dt.datetime:
        return WEEK_ORIGIN if self.name == "1w" else EPOCH

    @property
    def sql_interval(self) -> str:
        return "1 month" if self.is_month else f"{self.seconds} seconds"

    def floor(self, when: dt.datetime) -> dt.datetime:
        """The open time of the bucket that contains ``when``."""
        when = when.astimezone(UTC)
        if self.is_month:
            return dt.datetime(when.year, when.month, 1, tzinfo=UTC)
        elapsed = int((when - self.origin).total_seconds() // self.seconds)
        return self.origin + dt.timedelta(seconds=elapsed * self.seconds)

    def add(self, start: dt.datetime, n: int = 1) -> dt.datetime:
        """The open time ``n`` buckets after (or before, n < 0) the bucket opening at ``start``."""
        if self.is_month:
            months = start.year * 12 + (start.month - 1) + n
            return dt.datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)
        return start + dt.timedelta(seconds=self.seconds * n)

    def close_time(self, start: dt.datetime) -> dt.datetime:
        """Binance's closeTime: the last millisecond of the bucket."""
        return self.add(start) - dt.timedelta(milliseconds=1)


_MIN, _HOUR, _DAY = 60, 3600, 86400
INTERVALS: dict[str, Interval] = {
    i.name: i
    for i in (
        Interval("1m", _MIN), Interval("3m", 3 * _MIN), Interval("5m", 5 * _MIN), Interval("15m", 15 * _MIN),
        Interval("30m", 30 * _MIN), Interval("1h", _HOUR), Interval("2h", 2 * _HOUR), Interval("4h", 4 * _HOUR),
        Interval("6h", 6 * _HOUR), Interval("8h", 8 * _HOUR), Interval("12h", 12 * _HOUR), Interval("1d", _DAY),
        Interval("3d", 3 * _DAY), Interval("1w", 7 * _DAY), Interval("1M", 0),
    )
}


def interval_get(name: str) -> Interval | None:
    return INTERVALS.get(name)


def to_ms(when: dt.datetime) -> int:
    """Milliseconds since the epoch, exactly (integer arithmetic, no float rounding)."""
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=int(ms))
