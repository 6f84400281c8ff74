"""margin.span: the scenario table reproduced for a hand-worked portfolio, the parameter file's
validation, and properties (Hypothesis) that hold for every portfolio: the requirement is never
below its floor, grows with the portfolio, credits never make it negative, a hedged pair needs
less than its legs apart, and every figure is the exact rational result rounded once."""
from __future__ import annotations

import copy
import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from margin import span

D = Decimal
VERSION = "2026-11-a"  # a published parameter file is never edited: a change is a new version


def _file_dict(version: str = VERSION) -> dict:
    return json.loads((span.SCENARIOS_DIR / f"{version}.json").read_text(), parse_float=Decimal)


# --- the hand-worked portfolio --------------------------------------------------------------

HAND_POSITIONS = {"BTC": D("1"), "ETH": D("-20"), "SOL": D("-1"), "KK99": D("1000"), "USDT": D("-1000")}
HAND_PRICES = {"BTC": D("60000"), "ETH": D("3000"), "SOL": D("100"), "KK99": D("1")}
HAND_VOLS = {"BTC": D("0.03"), "ETH": D("0.04"), "SOL": D("0.0301"), "KK99": D("0.12")}


def test_scenario_table_reproduced_for_a_hand_worked_portfolio():
    """Parameters 2026-11-a: multiplier 3.5, floor 8 % (ETH 10 %, KK99 40 % with multiplier 5),
    range rounded up to 0.0001, minimum 3 % of gross, credits BTC/ETH 50 %, ETH/SOL 35 %,
    BTC/SOL 30 % in that order. Portfolio: +1 BTC @ 60000, −20 ETH @ 3000, −1 SOL @ 100,
    +1000 KK99 @ 1, −1000 USDT.

    Scan ranges:  BTC max(0.08, 3.5 × 0.03 = 0.105)   = 0.1050
                  ETH max(0.10, 3.5 × 0.04 = 0.14)    = 0.1400
                  SOL max(0.08, 3.5 × 0.0301 = 0.10535) → rounded up 0.1054
                  KK99 max(0.40, 5 × 0.12 = 0.60)     = 0.6000
                  USDT: quote asset, no price risk.
    Losses (+ = loss; V = qty × price; loss = −V × range × move × weight):
      BTC  V = +60000: ±1/3 → ∓2100, ±2/3 → ∓4200, ±1 → ∓6300, ±2 @ 35 % → ∓4410.
           worst 6300 in scenario 13 (−1, vol up; 14 ties and the first wins).
      ETH  V = −60000: +1/3 → 2800, +2/3 → 5600, +1 → 8400, +2 @ 35 % → 5880. worst 8400 (#11).
      SOL  V = −100: +1/3 → 100 × 0.1054 / 3 = 3.51333…  → rounded up 3.51333334,
           −1/3 → −3.51333…, rounded toward +∞ → −3.51333333; +1 → 10.54 (#11).
      KK99 V = +1000: −2/3 → 400; −1 → 600 (#13); −2 @ 35 % would be −120 %: a price cannot
           go below 0, so the move is clamped at −100 % → 0.35 × 1000 = 350.
    Scan risk = 6300 + 8400 + 10.54 + 600 = 15310.54.
    Credits: BTC/ETH opposite, matched min(60000, 60000) = 60000 →
             0.50 × 60000 × (0.105 + 0.14) = 7350; BTC and ETH are used up, so
             ETH/SOL (both short: none) and BTC/SOL (BTC used up: matched 0) give nothing.
    Minimum = 3 % × (60000 + 60000 + 100 + 1000) = 3633.
    Requirement = max(15310.54 − 7350, 3633) = 7960.54."""
    params = span.load_params(VERSION)

    result = span.portfolio_requirement(HAND_POSITIONS, HAND_PRICES, HAND_VOLS, params)

    by = {a.symbol: a for a in result.assets}
    assert [a.symbol for a in result.assets] == ["BTC", "ETH", "KK99", "SOL"]  # USDT carries no risk
    assert (by["BTC"].scan_range, by["ETH"].scan_range, by["SOL"].scan_range, by["KK99"].scan_range) == (D("0.105"), D("0.14"), D("0.1054"), D("0.6"))
    table = {s: [f"{x:.8f}" for x in by[s].losses] for s in by}
    #                 1    2    3        4        5       6       7        8        9       10      11       12       13      14      15       16
    assert table["BTC"] == [*("0.00000000",) * 2, *("-2100.00000000",) * 2, *("2100.00000000",) * 2, *("-4200.00000000",) * 2, *("4200.00000000",) * 2,
                            *("-6300.00000000",) * 2, *("6300.00000000",) * 2, "-4410.00000000", "4410.00000000"]
    assert table["ETH"] == [*("0.00000000",) * 2, *("2800.00000000",) * 2, *("-2800.00000000",) * 2, *("5600.00000000",) * 2, *("-5600.00000000",) * 2,
                            *("8400.00000000",) * 2, *("-8400.00000000",) * 2, "5880.00000000", "-5880.00000000"]
    assert table["SOL"][2:6] == ["3.51333334", "3.51333334", "-3.51333333", "-3.51333333"]
    assert table["SOL"][10] == "10.54000000" and table["SOL"][14] == "7.37800000"
    assert table["KK99"][8] == "400.00000000" and table["KK99"][12] == "600.00000000"
    assert table["KK99"][15] == "350.00000000"  # clamped at −100 %, not 0.35 × 1.2 × 1000 = 420
    assert {s: (by[s].scan_risk, by[s].worst_scenario) for s in by} == {
        "BTC": (D("6300"), 13), "ETH": (D("8400"), 11), "SOL": (D("10.54"), 11), "KK99": (D("600"), 13)}
    assert result.scan_risk == D("15310.54")
    assert [(c.legs, c.matched_value, c.credit) for c in result.credits] == [(("BTC", "ETH"), D("60000"), D("7350"))]
    assert result.spread_credit == D("7350")
    assert result.gross_value == D("121100")
    assert result.minimum == D("3633")
    assert result.requirement == D("7960.54")
    assert str(result.requirement) == "7960.54000000"  # at the quantum
    # Display row: scenario 11 (+1 range for every asset at once) = −6300 + 8400 + 10.54 − 600.
    assert result.scenario_losses[10] == D("1510.54")


def test_detail_off_gives_the_same_requirement_without_the_table():
    params = span.load_params(VERSION)
    full = span.portfolio_requirement(HAND_POSITIONS, HAND_PRICES, HAND_VOLS, params)
    lean = span.portfolio_requirement(HAND_POSITIONS, HAND_PRICES, HAND_VOLS, params, detail=False)
    assert (lean.requirement, lean.scan_risk, lean.spread_credit, lean.minimum) == (full.requirement, full.scan_risk, full.spread_credit, full.minimum)
    assert lean.scenario_losses == () and all(a.losses == () for a in lean.assets)
    assert [a.worst_scenario for a in lean.assets] == [a.worst_scenario for a in full.assets]


def test_minimum_applies_when_the_scan_risk_is_smaller():
    # A tight hedge: credits take scan risk below 3 % of gross, so the minimum binds.
    params = span.params_from_dict({**_file_dict(), "spread_credits": [{"legs": ["BTC", "ETH"], "credit_rate": "1"}]})
    result = span.portfolio_requirement({"BTC": D("1"), "ETH": D("-20")}, HAND_PRICES, {"BTC": D("0.03"), "ETH": D("0.03")}, params)
    # Both ranges 3.5 × 0.03 = 0.105 (above the 8 % / 10 % floors): scan 6300 + 6300 = 12600;
    # credit 1 × 60000 × (0.105 + 0.105) = 12600; minimum 3 % × 120000 = 3600.
    assert result.scan_risk == D("12600") and result.spread_credit == D("12600")
    assert result.requirement == result.minimum == D("3600")


def test_missing_volatility_uses_the_conservative_default_and_overrides_win():
    params = span.load_params(VERSION)
    assert span.scan_range("DOGE", None, params) == D("0.30")  # missing_vol_range
    assert span.scan_range("USDC", D("0.5"), params) == D("0.02")  # fixed override ignores the vol
    assert span.scan_range("USDT", D("0.5"), params) == 0  # the quote asset
    assert span.scan_range("DOGE", D("0.001"), params) == D("0.08")  # the floor


def test_a_position_without_a_price_is_refused():
    with pytest.raises(span.SpanInputError, match="no price for ETH"):
        span.portfolio_requirement({"ETH": D("1")}, {}, {}, span.load_params(VERSION))
    with pytest.raises(span.SpanInputError, match="must be > 0"):
        span.portfolio_requirement({"ETH": D("1")}, {"ETH": D("0")}, {}, span.load_params(VERSION))


def test_flat_requirement_is_a_percentage_of_gross_value():
    assert span.flat_requirement(HAND_POSITIONS, HAND_PRICES, pct=D("0.1")) == D("12110")


# --- the parameter file ---------------------------------------------------------------------


def test_every_shipped_parameter_file_is_valid_and_has_the_cme_table():
    versions = span.available_versions()
    assert VERSION in versions
    for version in versions:
        params = span.load_params(version)
        assert params.version == version
        moves = sorted(s.price_move for s in params.scenarios)
        assert len(params.scenarios) == 16
        assert set(moves) == {Fraction(n, 3) for n in range(-3, 4)} | {Fraction(-2), Fraction(2)}
        assert {s.weight for s in params.scenarios if abs(s.price_move) == 2} == {D("0.35")}


def test_load_params_without_a_version_gives_the_newest():
    assert span.load_params().version == span.available_versions()[-1]


def test_unknown_version_is_a_clear_error():
    with pytest.raises(span.SpanParamsError, match="no SPAN parameter file 'nope'"):
        span.load_params("nope")
    with pytest.raises(span.SpanParamsError, match="no SPAN parameter file"):
        span.load_params("../settings")


def _broken(mutate) -> dict:
    data = copy.deepcopy(_file_dict())
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("scenarios"), r"missing key\(s\) scenarios"),
        (lambda d: d.update(scenarioz=[]), r"unknown key\(s\) scenarioz"),
        (lambda d: d["scenarios"][2].update(weight="1.5"), r"scenarios\[2\]\.weight: '1.5' must be ≤ 1"),
        (lambda d: d["scenarios"][2].update(weight=0.5), r"scenarios\[2\]\.weight: expected a decimal string"),
        (lambda d: d["scenarios"][3].update(price_move="1/0"), r"scenarios\[3\]\.price_move: '1/0' is not a fraction"),
        (lambda d: d["scenarios"][3].update(vol="sideways"), r"scenarios\[3\]\.vol: 'sideways' is not one of"),
        (lambda d: d["scenarios"][4].update(id=1), "ids must be unique"),
        (lambda d: d.update(scenarios=[s for s in d["scenarios"] if s["price_move"] != "0"]), "needs a zero price move"),
        (lambda d: d.update(scenarios=[s for s in d["scenarios"] if not s["price_move"].startswith("-")]), "moves in both directions"),
        (lambda d: d["scan_range"].update(floor="-0.1"), r"scan_range\.floor: '-0.1' must be ≥ 0"),
        (lambda d: d["scan_range"].update(vol_multiplier="abc"), r"scan_range\.vol_multiplier: 'abc' is not a decimal"),
        (lambda d: d.update(requirement_quantum="0.05"), "must be a power of ten"),
        (lambda d: d["assets"].update(ETH={"flor": "0.1"}), r"assets\.ETH: unknown key\(s\) flor"),
        (lambda d: d["assets"].update(USDT={"floor": "0.1"}), "the quote asset has no price risk"),
        (lambda d: d["assets"].update(eth={"floor": "0.1"}), "is not an asset symbol"),
        (lambda d: d["spread_credits"].append({"legs": ["ETH", "BTC"], "credit_rate": "0.1"}), "ETH/BTC is listed twice"),
        (lambda d: d["spread_credits"].append({"legs": ["ETH", "ETH"], "credit_rate": "0.1"}), "two different assets"),
        (lambda d: d["spread_credits"][0].update(credit_rate="1.01"), r"credit_rate: '1.01' must be ≤ 1"),
        (lambda d: d["spread_credits"].append({"legs": ["BTC", "USDT"], "credit_rate": "0.1"}), "quote asset USDT has no risk to offset"),
    ],
)
def test_invalid_parameter_files_are_refused_with_the_field_named(mutate, message):
    with pytest.raises(span.SpanParamsError, match=message):
        span.params_from_dict(_broken(mutate), source="x.json")


def test_a_file_whose_version_differs_from_its_name_is_refused(tmp_path, monkeypatch):
    (tmp_path / "v9.json").write_text(json.dumps({**json.loads((span.SCENARIOS_DIR / f"{VERSION}.json").read_text())}))
    monkeypatch.setattr(span, "SCENARIOS_DIR", tmp_path)
    span._load.cache_clear()
    try:
        with pytest.raises(span.SpanParamsError, match="does not match the file name"):
            span.load_params("v9")
        (tmp_path / "bad.json").write_text("{not json")
        with pytest.raises(span.SpanParamsError, match="bad.json: not valid JSON"):
            span.load_params("bad")
    finally:
        span._load.cache_clear()


# --- properties -----------------------------------------------------------------------------

SYMBOLS = ["BTC", "ETH", "SOL", "KK99", "DOGE", "USDT"]
quantities = st.decimals(min_value=D("-1000"), max_value=D("1000"), places=4, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4, allow_nan=False, allow_infinity=False)
vols = st.one_of(st.none(), st.decimals(min_value=D("0"), max_value=D("0.5"), places=5, allow_nan=False, allow_infinity=False))


@st.composite
def portfolios(draw, symbols=SYMBOLS):
    chosen = draw(st.lists(st.sampled_from(symbols), min_size=1, max_size=len(symbols), unique=True))
    positions = {s: draw(quantities) for s in chosen}
    price = {s: draw(prices) for s in chosen if s != "USDT"}
    vol = {s: v for s in chosen if (v := draw(vols)) is not None}
    return positions, price, vol


PARAMS = span.load_params(VERSION)
NO_MINIMUM = span.params_from_dict({**_file_dict(), "minimum_pct": "0", "assets": {}, "spread_credits": [
    {"legs": ["BTC", "ETH"], "credit_rate": "1"}, {"legs": ["ETH", "SOL"], "credit_rate": "0.9"}, {"legs": ["SOL", "DOGE"], "credit_rate": "0.5"}]})


@settings(max_examples=150, deadline=None)
@given(portfolios())
def test_requirement_is_never_below_its_floor_nor_negative(pf):
    positions, price, vol = pf
    for params in (PARAMS, NO_MINIMUM):
        r = span.portfolio_requirement(positions, price, vol, params)
        assert r.requirement >= r.minimum >= 0
        assert r.spread_credit <= r.scan_risk  # a credit never exceeds the risk it offsets
        assert r.scan_risk - r.spread_credit >= 0
        assert all(a.scan_risk >= 0 for a in r.assets)


@settings(max_examples=150, deadline=None)
@given(portfolios(), st.integers(min_value=1, max_value=50))
def test_requirement_is_monotone_in_position_size(pf, k):
    positions, price, vol = pf
    bigger = {s: q * k for s, q in positions.items()}
    small = span.portfolio_requirement(positions, price, vol, PARAMS).requirement
    large = span.portfolio_requirement(bigger, price, vol, PARAMS).requirement
    assert large >= small
    # Homogeneous of degree 1 up to one rounding quantum per rounded term.
    assert abs(large - k * small) <= k * D("0.00000001") * (2 * len(positions) + 2)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SYMBOLS[:-1]), min_size=1, unique=True), st.data())
def test_adding_to_a_long_only_portfolio_never_lowers_the_requirement(symbols, data):
    positions = {s: data.draw(st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=4)) for s in symbols}
    price = {s: data.draw(prices) for s in symbols}
    extra = data.draw(st.sampled_from(symbols))
    more = {**positions, extra: positions[extra] + data.draw(st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=4))}
    assert span.portfolio_requirement(more, price, {}, PARAMS).requirement >= span.portfolio_requirement(positions, price, {}, PARAMS).requirement


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=D("0.001"), max_value=D("100"), places=3),
    st.decimals(min_value=D("0.001"), max_value=D("2000"), places=3),
    prices, prices, vols, vols,
)
def test_a_hedged_pair_needs_less_than_its_legs_apart(qa, qb, pa, pb, va, vb):
    price = {"BTC": pa, "ETH": pb}
    vol = {k: v for k, v in (("BTC", va), ("ETH", vb)) if v is not None}
    long_a = span.portfolio_requirement({"BTC": qa}, price, vol, PARAMS).requirement
    short_b = span.portfolio_requirement({"ETH": -qb}, price, vol, PARAMS).requirement
    both = span.portfolio_requirement({"BTC": qa, "ETH": -qb}, price, vol, PARAMS)
    assert both.requirement <= long_a + short_b
    if both.spread_credit > 0 and both.requirement > both.minimum:
        assert both.requirement < long_a + short_b
    # Same direction: no credit, and the two apart add up exactly (floors and scans are additive).
    same = span.portfolio_requirement({"BTC": qa, "ETH": qb}, price, vol, PARAMS)
    assert same.spread_credit == 0


def _exact_scan(positions, price, vol, params) -> dict[str, Fraction]:
    """An independent oracle in rational arithmetic: each asset's worst scenario loss."""
    out = {}
    for s, q in positions.items():
        if q == 0 or s == params.quote_asset:
            continue
        r = Fraction(span.scan_range(s, vol.get(s), params))
        value = Fraction(q) * Fraction(price[s])
        losses = []
        for sc in params.scenarios:
            move = r * sc.price_move
            if value > 0 and move < -1:
                move = Fraction(-1)
            losses.append(-value * move * Fraction(sc.weight))
        out[s] = max(max(losses), Fraction(0))
    return out


@settings(max_examples=150, deadline=None)
@given(portfolios())
def test_each_scan_risk_is_the_exact_rational_worst_loss_rounded_up_once(pf):
    positions, price, vol = pf
    r = span.portfolio_requirement(positions, price, vol, PARAMS)
    exact = _exact_scan(positions, price, vol, PARAMS)
    quantum = Fraction(PARAMS.requirement_quantum)
    for a in r.assets:
        got = Fraction(a.scan_risk)
        assert got >= exact[a.symbol] > got - quantum
        assert got / quantum == int(got / quantum)


@settings(max_examples=150, deadline=None)
@given(portfolios())
def test_a_position_earns_credit_for_its_value_at_most_once(pf):
    positions, price, vol = pf
    r = span.portfolio_requirement(positions, price, vol, NO_MINIMUM)
    used: dict[str, Decimal] = {}
    for c in r.credits:
        for leg in c.legs:
            used[leg] = used.get(leg, D(0)) + c.matched_value
    by = {a.symbol: a for a in r.assets}
    for symbol, matched in used.items():
        assert matched <= abs(by[symbol].value)
    for c in r.credits:  # only opposite directions earn a credit
        a, b = c.legs
        assert (by[a].quantity > 0) != (by[b].quantity > 0)
