"""The CSV importer, the exchange-candle and recorded-flow selectors, and the `backtest`
command end to end."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from quant.bars import bars_from_csv, bars_to_csv, synthetic_bars
from quant.errors import QuantError, QuantErrorCode
from quant.selectors import bars_for_market, flow_for_market
from tests.api.factories import make_market, write_trade

UTC = dt.UTC


def test_csv_round_trip_is_exact():
    bars = synthetic_bars(300, seed=1)
    back = bars_from_csv(bars_to_csv(bars))
    for name in ("time", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(back, name), getattr(bars, name))


def test_csv_columns_are_found_by_name_times_in_any_supported_form_and_rows_sorted():
    text = (
        "Date,Volume,Close,Low,High,Open\n"
        "2024-01-02T00:00:00Z,5,11,9,12,10\n"
        "2024-01-01,4,10,9,10.5,9.5\n"
    )
    bars = bars_from_csv(text)
    assert bars.time.tolist() == [1704067200000, 1704153600000]
    assert bars.open.tolist() == [9.5, 10] and bars.volume.tolist() == [4, 5]
    seconds = bars_from_csv("timestamp,open,high,low,close\n1704067200,1,2,0.5,1\n1704067260,1,2,0.5,1\n")
    millis = bars_from_csv("open_time,open,high,low,close\n1704067200000,1,2,0.5,1\n1704067260000,1,2,0.5,1\n")
    assert seconds.time.tolist() == millis.time.tolist() == [1704067200000, 1704067260000]
    assert seconds.volume.tolist() == [0, 0]  # volume is optional


def test_a_pandas_index_column_without_a_name_is_the_time(goog):
    assert len(goog) == 2148 and goog.time[0] == int(dt.datetime(2004, 8, 19, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("open,high,low,close\n1,2,0.5,1\n", "missing column(s): time"),
    ("time,open,high,low,close\n2024-01-01,1,2,0.5,1\n", "at least two rows"),
    ("time,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,0.5,nan\n", "finite"),
    ("time,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,-1,2,-2,1\n", "positive"),
    ("time,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,0.9,0.5,1\n", "row 2: high/low"),
    ("time,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-01,1,2,0.5,1\n", "strictly increase"),
    ("time,open,high,low,close\nyesterday,1,2,0.5,1\n2024-01-02,1,2,0.5,1\n", "line 2: cannot read the time"),
    ("time,open,high,low,close,volume\n2024-01-01,1,2,0.5,1,-3\n2024-01-02,1,2,0.5,1,1\n", "volume"),
])
def test_bad_csv_is_refused_with_a_reason(text, message):
    with pytest.raises(QuantError) as exc:
        bars_from_csv(text)
    assert exc.value.code == QuantErrorCode.BAD_DATA and message in exc.value.message


def test_non_utf8_bytes_are_refused():
    with pytest.raises(QuantError):
        bars_from_csv(b"\xff\xfe\x00bad")


@pytest.fixture
def market_with_tape(db):
    market = make_market()
    t0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    for i, (price, buyer_maker) in enumerate([(100, False), (101, True), (102, False), (99, True)]):
        write_trade(market, price=str(price), qty="0.5", at=t0 + dt.timedelta(hours=i, minutes=10), buyer_maker=buyer_maker)
    return market, t0


def test_exchange_candles_and_recorded_flow_line_up(market_with_tape, monkeypatch):
    market, t0 = market_with_tape
    import marketdata.selectors as ms

    monkeypatch.setattr(ms.timezone, "now", lambda: t0 + dt.timedelta(hours=3, minutes=30))
    bars = bars_for_market(symbol="btcusdt", interval="1h", limit=10)
    assert bars.close.tolist() == [100, 101, 102, 99]
    flow = flow_for_market(symbol="BTCUSDT", bars=bars, interval="1h")
    assert flow == [(0, "BUY", 100.0, 0.5), (1, "SELL", 101.0, 0.5), (2, "BUY", 102.0, 0.5), (3, "SELL", 99.0, 0.5)]
    with pytest.raises(QuantError):
        bars_for_market(symbol="NOPE", interval="1h")
    with pytest.raises(QuantError):
        bars_for_market(symbol="BTCUSDT", interval="7h")


def test_backtest_command_prints_metrics_and_writes_the_report(tmp_path, capsys):
    csv = tmp_path / "mine.csv"
    csv.write_text(bars_to_csv(synthetic_bars(600, seed=5)))
    out = tmp_path / "reports" / "run"
    call_command("backtest", "--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=20", "--csv", str(csv),
                 "--stop-loss", "0.03", "--out", str(out))
    text = capsys.readouterr().out
    assert "sma_cross(fast=10, slow=20" in text and "Sharpe" in text and "Max drawdown" in text
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = out.with_suffix(".html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html


def test_backtest_command_replay_engine(tmp_path, capsys):
    csv = tmp_path / "mine.csv"
    csv.write_text(bars_to_csv(synthetic_bars(300, seed=6).rounded_to(0.01)))
    call_command("backtest", "--strategy", "ema_cross", "--csv", str(csv), "--engine", "replay", "--lot-size", "0.001",
                 "--out", str(tmp_path / "r"))
    assert "book commands" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--param", "fast"], "key=value"),
    (["--param", "fast=50"], "fast must be shorter"),
    (["--csv", "/nonexistent/file.csv"], "cannot read"),
])
def test_backtest_command_refuses_bad_arguments(args, message, tmp_path):
    with pytest.raises(CommandError) as exc:
        call_command("backtest", "--strategy", "sma_cross", *args, "--out", str(tmp_path / "r"))
    assert message in str(exc.value)


def test_backtest_command_grid_and_walk_forward(tmp_path, capsys):
    csv = tmp_path / "mine.csv"
    csv.write_text(bars_to_csv(synthetic_bars(1200, seed=9)))
    call_command("backtest", "--strategy", "sma_cross", "--grid", "fast=5,10", "--grid", "slow=20,40", "--csv", str(csv),
                 "--out", str(tmp_path / "g"))
    text = capsys.readouterr().out
    assert "grid of 4 combinations" in text and text.count("  sharpe ") == 4
    call_command("backtest", "--strategy", "sma_cross", "--grid", "fast=5,10", "--grid", "slow=20,40", "--csv", str(csv),
                 "--walk-forward", "600:200", "--anchored", "--out", str(tmp_path / "wf"))
    text = capsys.readouterr().out
    assert "walk-forward (anchored)" in text and text.count("train 0-") == 3 and "out of sample, all folds chained" in text
    assert (tmp_path / "wf.png").exists()


def test_backtest_command_runs_a_vote(tmp_path, capsys):
    csv = tmp_path / "mine.csv"
    csv.write_text(bars_to_csv(synthetic_bars(600, seed=10)))
    call_command("backtest", "--strategy", "vote", "--param", "members=ema_cross+rsi_reversion+bollinger_reversion",
                 "--param", "mode=majority", "--param", "ema_cross.fast=5", "--csv", str(csv), "--out", str(tmp_path / "v"))
    assert "vote[majority](ema_cross(fast=5" in capsys.readouterr().out
