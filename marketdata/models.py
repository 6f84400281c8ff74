"""Market data has no tables of its own: candles, tickers and averages are computed on read
from ``trading.Trade`` (see :mod:`marketdata.selectors` and docs/marketdata.md for why)."""
