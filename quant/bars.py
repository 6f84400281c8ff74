"""OHLCV bars as numpy arrays, and where they come from: the exchange's own candles or an
external CSV file (the importer users backtest their own data with).

``Bars`` is the only container the strategies and engines take. Prices are float64 here:
backtests are statistics; the live bot converts its orders back to Decimal (quant/bot.py).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

import numpy as np

from quant.errors import QuantError, QuantErrorCode

MAX_CSV_BYTES = 50 * 1024 * 1024
MAX_CSV_ROWS = 2_000_000
SYNTHETIC_START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC

_ALIASES = {
    "time": ("time", "timestamp", "date", "datetime", "open_time", "opentime"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "adj close"),
    "volume": ("volume", "vol", "v"),
}


@dataclass(frozen=True)
class Bars:
    time: np.ndarray  # int64 milliseconds since the epoch (open time of each bar)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.close)

    def __getitem__(self, sl: slice) -> Bars:
        if not isinstance(sl, slice):
            raise TypeError("Bars can only be sliced")
        return Bars(self.time[sl], self.open[sl], self.high[sl], self.low[sl], self.close[sl], self.volume[sl])

    @classmethod
    def from_arrays(cls, *, open, high, low, close, volume=None, time=None) -> Bars:
        c = np.ascontiguousarray(close, dtype=np.float64)
        n = len(c)
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (open, high, low)]
        vol = np.zeros(n) if volume is None else np.ascontiguousarray(volume, dtype=np.float64)
        t = np.arange(n, dtype=np.int64) * 60_000 if time is None else np.asarray(time, dtype=np.int64)
        bars = cls(t, arrays[0], arrays[1], arrays[2], c, vol)
        bars.validate()
        return bars

    def validate(self) -> None:
        n = len(self.close)
        for name in ("time", "open", "high", "low", "volume"):
            if len(getattr(self, name)) != n:
                raise QuantError(QuantErrorCode.BAD_DATA, f"column {name} has a different length")
        prices = np.stack([self.open, self.high, self.low, self.close])
        if n and not np.all(np.isfinite(prices)):
            raise QuantError(QuantErrorCode.BAD_DATA, "prices must be finite numbers")
        if n and (np.any(prices <= 0)):
            raise QuantError(QuantErrorCode.BAD_DATA, "prices must be positive")
        if n and (np.any(self.high < np.maximum(self.open, self.close)) or np.any(self.low > np.minimum(self.open, self.close))):
            bad = int(np.argmax((self.high < np.maximum(self.open, self.close)) | (self.low > np.minimum(self.open, self.close))))
            raise QuantError(QuantErrorCode.BAD_DATA, f"row {bad + 1}: high/low do not contain open/close")
        if n and (not np.all(np.isfinite(self.volume)) or np.any(self.volume < 0)):
            raise QuantError(QuantErrorCode.BAD_DATA, "volume must be a non-negative number")
        if n > 1 and np.any(np.diff(self.time) <= 0):
            bad = int(np.argmax(np.diff(self.time) <= 0))
            raise QuantError(QuantErrorCode.BAD_DATA, f"row {bad + 2}: times must strictly increase")

    def rounded_to(self, tick: float) -> Bars:
        """The same bars with prices on a ``tick`` grid (how the exchange-replay engine sees
        them: integer ticks)."""
        r = lambda a: np.maximum(np.round(a / tick), 1.0) * tick
        return Bars(self.time, r(self.open), r(self.high), r(self.low), r(self.close), self.volume)

    def median_step_ms(self) -> int:
        return int(np.median(np.diff(self.time))) if len(self.time) > 1 else 0


def _parse_time(value: str) -> int:
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        # Seconds or milliseconds since the epoch (anything after 2001-09 in ms is > 1e12).
        return int(number if number > 1e11 else number * 1000)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QuantError(QuantErrorCode.BAD_DATA, f"cannot read the time {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def bars_from_csv(data: bytes | str) -> Bars:
    """Read OHLCV from CSV text with a header row. Columns are found by name
    (time/timestamp/date, open, high, low, close, volume — any case; volume optional);
    times may be ISO 8601 or epoch seconds/milliseconds. Rows are sorted by time. Raises
    ``QuantError(BAD_DATA)`` with the offending row on anything it cannot read."""
    if isinstance(data, bytes):
        if len(data) > MAX_CSV_BYTES:
            raise QuantError(QuantErrorCode.BAD_DATA, "the file is too large")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise QuantError(QuantErrorCode.BAD_DATA, "the file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(data))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise QuantError(QuantErrorCode.BAD_DATA, "the file is empty") from None
    cols: dict[str, int] = {}
    for key, names in _ALIASES.items():
        for i, h in enumerate(header):
            if h in names:
                cols[key] = i
                break
    if "time" not in cols and header and header[0] == "":
        cols["time"] = 0  # an unnamed first column: a pandas index written with to_csv()
    missing = [k for k in ("time", "open", "high", "low", "close") if k not in cols]
    if missing:
        raise QuantError(QuantErrorCode.BAD_DATA, f"missing column(s): {', '.join(missing)}")
    times, rows = [], []
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(rows) >= MAX_CSV_ROWS:
            raise QuantError(QuantErrorCode.BAD_DATA, f"more than {MAX_CSV_ROWS} rows")
        try:
            times.append(_parse_time(row[cols["time"]]))
            rows.append([float(row[cols[k]]) for k in ("open", "high", "low", "close")]
                        + [float(row[cols["volume"]]) if "volume" in cols else 0.0])
        except (IndexError, ValueError):
            raise QuantError(QuantErrorCode.BAD_DATA, f"line {lineno}: cannot read the row") from None
        except QuantError as exc:
            raise QuantError(QuantErrorCode.BAD_DATA, f"line {lineno}: {exc.message}") from None
    if len(rows) < 2:
        raise QuantError(QuantErrorCode.BAD_DATA, "need at least two rows")
    t = np.asarray(times, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    m = np.asarray(rows, dtype=np.float64)[order]
    return Bars.from_arrays(time=t[order], open=m[:, 0], high=m[:, 1], low=m[:, 2], close=m[:, 3], volume=m[:, 4])


def bars_to_csv(bars: Bars) -> str:
    out = io.StringIO()
    out.write("time,open,high,low,close,volume\n")
    for row in zip(bars.time.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
                   bars.close.tolist(), bars.volume.tolist()):
        out.write(",".join(repr(v) for v in row) + "\n")
    return out.getvalue()


def synthetic_bars(n: int, *, seed: int = 0, start: float = 100.0, vol: float = 0.01,
                   step_ms: int = 3_600_000) -> Bars:
    """A geometric random walk with consistent OHLC (tests, benchmarks, the docs example)."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.empty(n)
    open_[0] = start
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, vol / 4, n - 1))
    wick = np.abs(rng.normal(0.0, vol / 2, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.uniform(1.0, 10.0, n)
    return Bars.from_arrays(time=SYNTHETIC_START_MS + np.arange(n, dtype=np.int64) * step_ms, open=open_, high=high, low=low,
                            close=close, volume=volume)
