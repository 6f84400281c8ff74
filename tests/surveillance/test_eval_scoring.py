"""The replay's labelling rule (surveillance.evaluation._score), on hand-made alerts: no
database, no replay."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from surveillance.evaluation import START, Injection, _score


def alert(detector, symbol, accounts, start_min, end_min, key="k"):
    return SimpleNamespace(
        detector=detector, market=SimpleNamespace(symbol=symbol), accounts=list(accounts), alert_key=key,
        window_start=START + timedelta(minutes=start_min), window_end=START + timedelta(minutes=end_min),
        created_at=START + timedelta(minutes=end_min + 5),
    )


def rows_of(result):
    return {r["type"]: r for r in result.rows}


def test_a_wash_alert_on_a_self_trade_printed_by_a_spoofing_injection_is_attributed_not_false():
    spoof = Injection("spoofing", "VAEUSD", (26,), START + timedelta(minutes=70), START + timedelta(minutes=80))
    spoof_alert = alert("spoofing", "VAEUSD", (26,), 60, 120, key="s1")
    wash_alert = alert("wash", "VAEUSD", (26,), 60, 120, key="w1")
    self_trade = ("VAEUSD", 26, START + timedelta(minutes=75))
    result = _score([spoof_alert, wash_alert], [spoof], orders=0, trades=0, self_trades=[self_trade])
    rows = rows_of(result)
    assert rows["wash"]["false_alerts"] == 0 and rows["wash"]["precision"] == 1.0
    assert rows["wash"]["injected"] == 0  # recall stays over the designed injections
    assert [(a[0], a[4]) for a in result.attributed] == [("w1", "spoofing")]
    # without the printed self trade the same alert is a false alert
    result = _score([spoof_alert, wash_alert], [spoof], orders=0, trades=0, self_trades=[])
    assert rows_of(result)["wash"]["false_alerts"] == 1 and result.attributed == []


def test_a_self_trade_elsewhere_does_not_excuse_a_wash_alert():
    wash_alert = alert("wash", "VAEUSD", (26,), 60, 120, key="w1")
    other_market = ("VBEUSD", 26, START + timedelta(minutes=75))
    other_account = ("VAEUSD", 27, START + timedelta(minutes=75))
    hours_later = ("VAEUSD", 26, START + timedelta(minutes=300))
    result = _score([wash_alert], [], orders=0, trades=0, self_trades=[other_market, other_account, hours_later])
    assert rows_of(result)["wash"]["false_alerts"] == 1
