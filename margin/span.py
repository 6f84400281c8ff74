"""SPAN-style portfolio margin: the maintenance requirement of a cross margin account as the
worst loss over a table of price scenarios, less inter-asset spread credits, never below a
flat percentage of the gross position value.

Pure: no database, no settings, no clock. Inputs are the account's net position per asset
(+ owned, − owed), USDT prices and daily EWMA volatilities; the scenario table is data read
from a versioned parameter file (``margin/scenarios/<version>.json``, :func:`load_params`).

How one requirement is computed (docs/margin.md, "Portfolio margin (SPAN-style)", has the
worked example):

1. Scan range per asset, a fraction of the price:
   ``r = max(floor, vol_multiplier × vol)`` rounded **up** to ``scan_range.rounding``, or the
   asset's fixed ``scan_range`` override; ``missing_vol_range`` is the range of an asset without a
   volatility (no daily history yet), never below its floor. The quote asset (USDT) has no price risk: ``r = 0``.
2. Each scenario moves the price by ``m = r × price_move`` and counts the loss at ``weight``:
   ``loss = −V × m × weight`` with ``V = quantity × price`` (signed). A price cannot fall below
   zero, so a long's move is clamped at −100 % (``m ≥ −1``). Positions are linear (spot and
   borrowed spot), so the ``vol`` up/down leg of a scenario changes nothing; it is kept in the
   table for display and for instruments with optionality later.
3. Scenarios combine **per asset**, as CME SPAN does per combined commodity: the asset's scan
   risk is its worst scenario loss (≥ 0 because the table has a zero move), and the portfolio's
   scan risk is the **sum** over assets. Assets are *not* assumed to move together — that would
   hand every long/short pair a full offset. Offsets come only from step 4.
4. Spread credits, pairs in the table's order (priority, as CME tiers): for a pair whose legs
   have opposite signs, the matched value ``M = min(remaining |V_A|, remaining |V_B|)`` earns
   ``credit = rate × M × (u_A + u_B)`` where ``u`` is the asset's scan risk per unit of value;
   ``M`` is then used up on both legs (a position earns a credit once). With ``rate ≤ 1`` a
   credit never exceeds the scan risk it offsets.
5. ``requirement = max(scan_risk − credits, minimum_pct × Σ|V|)``.

Rounding: every loss and scan risk is rounded up (toward +∞) to ``requirement_quantum``;
credits are rounded down; the minimum up — each in the exchange's favour, each exactly once,
computed with integer arithmetic (``price_move`` fractions such as 1/3 are rational, never a
truncated decimal)."""
from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
ZERO = Decimal(0)
ONE = Decimal(1)
VOL_LEGS = ("up", "down", "none")
_ASSET_KEYS = {"floor", "vol_multiplier", "scan_range", "minimum_pct"}
_TOP_KEYS = {"version", "description", "quote_asset", "requirement_quantum", "initial_factor", "scan_range", "minimum_pct", "scenarios", "assets", "spread_credits"}
_SCAN_KEYS = {"vol_multiplier", "floor", "missing_vol_range", "rounding"}
# Multiplications of finite decimals are exact at this precision for every realistic amount
# (38-digit NUMERIC balances × prices × ranges); divisions never happen in Decimal here.
_PREC = 120


class SpanParamsError(ValueError):
    """The parameter file is unreadable or inconsistent; the message names the file and field."""


class SpanInputError(ValueError):
    """Positions, prices or volatilities the computation cannot use (missing or non-positive price…)."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    id: int
    price_move: Fraction  # multiple of the scan range (+ up, − down)
    vol: str  # "up" / "down" / "none" — no effect on linear positions
    weight: Decimal  # share of the loss counted (1, or 0.35 for the extreme moves)


@dataclasses.dataclass(frozen=True)
class AssetParams:
    floor: Decimal
    vol_multiplier: Decimal
    scan_range: Decimal | None  # fixed override: the volatility is ignored
    minimum_pct: Decimal


@dataclasses.dataclass(frozen=True)
class SpreadCreditRule:
    legs: tuple[str, str]
    credit_rate: Decimal


@dataclasses.dataclass(frozen=True)
class SpanParams:
    version: str
    description: str
    quote_asset: str
    requirement_quantum: Decimal
    initial_factor: Decimal  # an order must leave equity ≥ initial_factor × requirement (margin.whatif)
    vol_multiplier: Decimal
    floor: Decimal
    missing_vol_range: Decimal
    rounding: Decimal
    minimum_pct: Decimal
    scenarios: tuple[Scenario, ...]
    assets: Mapping[str, AssetParams]
    spread_credits: tuple[SpreadCreditRule, ...]
    # Derived tables (unit losses per (sign, scan range)), filled on first use; exact values.
    _memo: dict = dataclasses.field(default_factory=dict, compare=False, repr=False, hash=False)

    def asset(self, symbol: str) -> AssetParams:
        found = self.assets.get(symbol)
        if found is not None:
            return found
        default = self._memo.get("default")
        if default is None:
            default = self._memo["default"] = AssetParams(floor=self.floor, vol_multiplier=self.vol_multiplier, scan_range=None, minimum_pct=self.minimum_pct)
        return default


class AssetRisk(NamedTuple):  # a tuple: built 20× per what-if, so cheap to make
    symbol: str
    quantity: Decimal
    price: Decimal
    value: Decimal  # quantity × price, signed
    scan_range: Decimal
    losses: tuple[Decimal, ...]  # one per scenario, in table order (+ = loss)
    scan_risk: Decimal  # worst of losses, ≥ 0
    worst_scenario: int  # id of the scenario that gave scan_risk


@dataclasses.dataclass(frozen=True)
class SpreadCredit:
    legs: tuple[str, str]
    matched_value: Decimal
    credit: Decimal


@dataclasses.dataclass(frozen=True)
class SpanResult:
    version: str
    requirement: Decimal
    scan_risk: Decimal
    spread_credit: Decimal
    minimum: Decimal
    gross_value: Decimal
    assets: tuple[AssetRisk, ...]
    credits: tuple[SpreadCredit, ...]
    # Σ over assets of each scenario's loss as if every asset took that scenario at once —
    # for display only; the requirement sums each asset's own worst (see the module doc).
    scenario_losses: tuple[Decimal, ...]


# --- the parameter file ------------------------------------------------------------------------


def available_versions() -> list[str]:
    """Every parameter file's version, sorted."""
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.json"))


def _dec(value: Any, where: str, *, lo: Decimal | None = None, hi: Decimal | None = None, lo_open: bool = False) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise SpanParamsError(f"{where}: expected a decimal string, got {value!r}")
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise SpanParamsError(f"{where}: {value!r} is not a decimal") from None
    if not out.is_finite():
        raise SpanParamsError(f"{where}: {value!r} is not finite")
    if lo is not None and (out < lo or (lo_open and out == lo)):
        raise SpanParamsError(f"{where}: {value!r} must be {'>' if lo_open else '≥'} {lo}")
    if hi is not None and out > hi:
        raise SpanParamsError(f"{where}: {value!r} must be ≤ {hi}")
    return out


def _only(obj: Any, keys: set[str], where: str, *, required: set[str] = frozenset()) -> dict:
    if not isinstance(obj, dict):
        raise SpanParamsError(f"{where}: expected an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - keys)
    if unknown:
        raise SpanParamsError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(keys))})")
    missing = sorted(required - set(obj))
    if missing:
        raise SpanParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    return obj


def _symbol(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or not value.isalnum() or value.upper() != value:
        raise SpanParamsError(f"{where}: {value!r} is not an asset symbol (upper-case letters and digits)")
    return value


def params_from_dict(data: Any, *, source: str = "<dict>") -> SpanParams:
    """Validate a parsed parameter file; every problem raises :class:`SpanParamsError`
    naming ``source`` and the field."""
    p = f"{source}: "
    top = _only(data, _TOP_KEYS, source, required={"version", "quote_asset", "requirement_quantum", "initial_factor", "scan_range", "minimum_pct", "scenarios"})
    version = top["version"]
    if not isinstance(version, str) or not version.strip():
        raise SpanParamsError(p + "version: expected a non-empty string")
    quantum = _dec(top["requirement_quantum"], p + "requirement_quantum", lo=ZERO, lo_open=True, hi=ONE)
    if quantum != ONE.scaleb(quantum.adjusted()):
        raise SpanParamsError(p + f"requirement_quantum: {top['requirement_quantum']!r} must be a power of ten (1, 0.01, 0.00000001 …)")
    initial_factor = _dec(top["initial_factor"], p + "initial_factor", lo=ONE, hi=Decimal(10))
    scan = _only(top["scan_range"], _SCAN_KEYS, p + "scan_range", required=_SCAN_KEYS)
    vol_multiplier = _dec(scan["vol_multiplier"], p + "scan_range.vol_multiplier", lo=ZERO, lo_open=True)
    floor = _dec(scan["floor"], p + "scan_range.floor", lo=ZERO, hi=ONE)
    missing_vol_range = _dec(scan["missing_vol_range"], p + "scan_range.missing_vol_range", lo=ZERO, lo_open=True)
    rounding = _dec(scan["rounding"], p + "scan_range.rounding", lo=ZERO, lo_open=True, hi=Decimal("0.01"))
    minimum_pct = _dec(top["minimum_pct"], p + "minimum_pct", lo=ZERO, hi=ONE)

    raw_scenarios = top["scenarios"]
    if not isinstance(raw_scenarios, list) or not raw_scenarios:
        raise SpanParamsError(p + "scenarios: expected a non-empty list")
    scenarios = []
    for i, raw in enumerate(raw_scenarios):
        w = f"{p}scenarios[{i}]"
        s = _only(raw, {"id", "price_move", "vol", "weight"}, w, required={"id", "price_move", "vol", "weight"})
        if isinstance(s["id"], bool) or not isinstance(s["id"], int):
            raise SpanParamsError(f"{w}.id: expected an integer")
        if not isinstance(s["price_move"], str):
            raise SpanParamsError(f"{w}.price_move: expected a string such as \"-2/3\", got {s['price_move']!r}")
        try:
            move = Fraction(s["price_move"])
        except (ValueError, ZeroDivisionError):
            raise SpanParamsError(f"{w}.price_move: {s['price_move']!r} is not a fraction or decimal") from None
        if abs(move) > 10:
            raise SpanParamsError(f"{w}.price_move: {s['price_move']!r} is more than 10 scan ranges")
        if s["vol"] not in VOL_LEGS:
            raise SpanParamsError(f"{w}.vol: {s['vol']!r} is not one of {', '.join(VOL_LEGS)}")
        weight = _dec(s["weight"], f"{w}.weight", lo=ZERO, lo_open=True, hi=ONE)
        scenarios.append(Scenario(id=s["id"], price_move=move, vol=s["vol"], weight=weight))
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise SpanParamsError(p + "scenarios: ids must be unique")
    if not any(s.price_move == 0 for s in scenarios):
        raise SpanParamsError(p + "scenarios: the table needs a zero price move (scan risk is never negative)")
    if not (any(s.price_move > 0 for s in scenarios) and any(s.price_move < 0 for s in scenarios)):
        raise SpanParamsError(p + "scenarios: the table needs moves in both directions (longs and shorts both carry risk)")

    assets = {}
    raw_assets = top.get("assets", {})
    if not isinstance(raw_assets, dict):
        raise SpanParamsError(p + "assets: expected an object keyed by asset symbol")
    for symbol, raw in raw_assets.items():
        w = f"{p}assets.{symbol}"
        _symbol(symbol, w)
        a = _only(raw, _ASSET_KEYS, w)
        if not a:
            raise SpanParamsError(f"{w}: empty override")
        assets[symbol] = AssetParams(
            floor=_dec(a["floor"], f"{w}.floor", lo=ZERO, hi=ONE) if "floor" in a else floor,
            vol_multiplier=_dec(a["vol_multiplier"], f"{w}.vol_multiplier", lo=ZERO, lo_open=True) if "vol_multiplier" in a else vol_multiplier,
            scan_range=_dec(a["scan_range"], f"{w}.scan_range", lo=ZERO, hi=ONE) if "scan_range" in a else None,
            minimum_pct=_dec(a["minimum_pct"], f"{w}.minimum_pct", lo=ZERO, hi=ONE) if "minimum_pct" in a else minimum_pct,
        )
    quote = _symbol(top["quote_asset"], p + "quote_asset")
    if quote in assets:
        raise SpanParamsError(f"{p}assets.{quote}: the quote asset has no price risk; it takes no override")

    credits = []
    seen: set[frozenset] = set()
    raw_credits = top.get("spread_credits", [])
    if not isinstance(raw_credits, list):
        raise SpanParamsError(p + "spread_credits: expected a list")
    for i, raw in enumerate(raw_credits):
        w = f"{p}spread_credits[{i}]"
        c = _only(raw, {"legs", "credit_rate"}, w, required={"legs", "credit_rate"})
        legs = c["legs"]
        if not isinstance(legs, list) or len(legs) != 2:
            raise SpanParamsError(f"{w}.legs: expected two asset symbols")
        a, b = (_symbol(x, f"{w}.legs") for x in legs)
        if a == b:
            raise SpanParamsError(f"{w}.legs: a pair needs two different assets")
        if quote in (a, b):
            raise SpanParamsError(f"{w}.legs: the quote asset {quote} has no risk to offset")
        if frozenset((a, b)) in seen:
            raise SpanParamsError(f"{w}.legs: {a}/{b} is listed twice")
        seen.add(frozenset((a, b)))
        credits.append(SpreadCreditRule(legs=(a, b), credit_rate=_dec(c["credit_rate"], f"{w}.credit_rate", lo=ZERO, hi=ONE)))
    description = top.get("description", "")
    if not isinstance(description, str):
        raise SpanParamsError(p + "description: expected a string")
    return SpanParams(
        version=version, description=description, quote_asset=quote, requirement_quantum=quantum, initial_factor=initial_factor, vol_multiplier=vol_multiplier, floor=floor,
        missing_vol_range=missing_vol_range, rounding=rounding, minimum_pct=minimum_pct, scenarios=tuple(scenarios), assets=assets, spread_credits=tuple(credits),
    )


@functools.lru_cache(maxsize=16)
def _load(version: str) -> SpanParams:
    path = SCENARIOS_DIR / f"{version}.json"
    if "/" in version or "\\" in version or not path.is_file():
        raise SpanParamsError(f"no SPAN parameter file {version!r} (have: {', '.join(available_versions()) or 'none'})")
    try:
        # Numbers are parsed as Decimal, never float.
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise SpanParamsError(f"{path.name}: not valid JSON: {exc}") from None
    params = params_from_dict(data, source=path.name)
    if params.version != version:
        raise SpanParamsError(f"{path.name}: version {params.version!r} does not match the file name")
    return params


def load_params(version: str | None = None) -> SpanParams:
    """The parameters of ``version`` (``margin/scenarios/<version>.json``), parsed once per
    process; ``None`` = the newest file. (The active version is chosen by the caller from
    settings — :func:`margin.whatif.active_params` — so this module stays free of settings.)"""
    if version is None:
        versions = available_versions()
        if not versions:
            raise SpanParamsError(f"no SPAN parameter files in {SCENARIOS_DIR}")
        version = versions[-1]
    return _load(version)


# --- the computation ---------------------------------------------------------------------------


def _ceil_q(numerator: Decimal, den: int, exp: int) -> Decimal:
    """``numerator / den`` rounded toward +∞ to ``10**exp`` — exactly (⌈⌈x⌉/n⌉ = ⌈x/n⌉)."""
    i = int(numerator.scaleb(-exp).to_integral_value(rounding=ROUND_CEILING))
    if den != 1:
        i = -((-i) // den)
    return Decimal(i).scaleb(exp)


def _floor_q(numerator: Decimal, den: int, exp: int) -> Decimal:
    i = int(numerator.scaleb(-exp).to_integral_value(rounding=ROUND_FLOOR))
    return Decimal(i // den).scaleb(exp)


def scan_range(symbol: str, vol: Decimal | None, params: SpanParams) -> Decimal:
    """Step 1: the asset's scan range as a fraction of its price."""
    if symbol == params.quote_asset:
        return ZERO
    a = params.asset(symbol)
    if a.scan_range is not None:
        return a.scan_range
    if vol is None:
        r = max(a.floor, params.missing_vol_range)
    else:
        v = Decimal(vol)
        if not v.is_finite() or v < 0:
            raise SpanInputError(f"volatility of {symbol} must be a finite number ≥ 0, got {vol!r}")
        r = max(a.floor, a.vol_multiplier * v)
    return r.quantize(params.rounding, rounding=ROUND_CEILING)


def _unit_losses(sign: int, r: Decimal, params: SpanParams) -> tuple[tuple[tuple[Decimal, int], ...], int]:
    """Loss per unit of |value| in each scenario as (numerator, denominator): ``−sign × m × w``
    with ``m = r × price_move`` (a long's m clamped at −1); and the index of the worst one.
    Memoised per parameter set: ranges take few distinct values."""
    key = (sign, r)
    found = params._memo.get(key)
    if found is not None:
        return found
    out = []
    for s in params.scenarios:
        num, den = s.price_move.numerator, s.price_move.denominator
        if sign > 0 and r * num < -den:  # the price would go below zero
            out.append((s.weight, 1))
        else:
            out.append((-sign * r * num * s.weight, den))
    worst = max(range(len(out)), key=lambda i: Fraction(out[i][0]) / out[i][1])
    found = (tuple(out), worst)
    params._memo[key] = found
    return found


def _asset_terms(symbol: str, sign: int, vol: Decimal | None, params: SpanParams) -> tuple[Decimal, tuple[tuple[Decimal, int], ...], int, Decimal]:
    """(scan range, unit losses, index of the worst, minimum_pct) of one asset and direction —
    memoised per (symbol, direction, volatility): they depend on nothing else."""
    key = (symbol, sign, vol)
    found = params._memo.get(key)
    if found is None:
        if len(params._memo) > 50_000:  # volatilities change daily: keep a long-lived process bounded
            params._memo.clear()
        r = scan_range(symbol, vol, params)
        unit, worst_i = _unit_losses(sign, r, params)
        found = params._memo[key] = (r, unit, worst_i, params.asset(symbol).minimum_pct)
    return found


def portfolio_requirement(
    positions: Mapping[str, Decimal], prices: Mapping[str, Decimal], vols: Mapping[str, Decimal], params: SpanParams, *, detail: bool = True
) -> SpanResult:
    """The maintenance requirement (USDT) of net ``positions`` (see the module doc for every step).

    ``detail=False`` skips the per-scenario loss table (``AssetRisk.losses`` and
    ``scenario_losses`` come back empty) — the what-if path needs only the requirement, and the
    worst scenario per (direction, scan range) is known in advance, so the result is the same."""
    q = params.requirement_quantum.as_tuple().exponent
    n_scen = len(params.scenarios)
    assets: list[AssetRisk] = []
    worst_units: dict[str, tuple[Decimal, int]] = {}  # the worst unit loss per asset, for the credits
    totals = [ZERO] * n_scen if detail else []
    scan_total = ZERO
    gross = ZERO
    minimum_num = ZERO
    with localcontext() as ctx:
        ctx.prec = _PREC
        for symbol in sorted(positions):
            qty = Decimal(positions[symbol])
            if not qty.is_finite():
                raise SpanInputError(f"position in {symbol} is not a finite number")
            if qty == 0 or symbol == params.quote_asset:
                continue
            price = prices.get(symbol)
            if price is None:
                raise SpanInputError(f"no price for {symbol}")
            price = Decimal(price)
            if not price.is_finite() or price <= 0:
                raise SpanInputError(f"price of {symbol} must be > 0, got {price}")
            r, unit, worst_i, minimum_pct = _asset_terms(symbol, 1 if qty > 0 else -1, vols.get(symbol), params)
            value = qty * price
            size = abs(value)
            n, d = unit[worst_i]
            worst = _ceil_q(size * n, d, q)
            if worst > 0:
                worst_units[symbol] = (n, d)
            else:  # a zero range: no scenario loses
                worst, worst_i = ZERO, 0
                worst_units[symbol] = (ZERO, 1)
            if detail:
                losses = tuple(_ceil_q(size * n, d, q) for n, d in unit)
                for i, loss in enumerate(losses):
                    totals[i] += loss
            else:
                losses = ()
            scan_total += worst
            gross += size
            minimum_num += size * minimum_pct
            assets.append(AssetRisk(symbol, qty, price, value, r, losses, worst, params.scenarios[worst_i].id))

        by_symbol = {a.symbol: a for a in assets}
        remaining = {a.symbol: abs(a.value) for a in assets}
        credits = []
        credit_total = ZERO
        for rule in params.spread_credits:
            a, b = rule.legs
            if a not in by_symbol or b not in by_symbol or rule.credit_rate == 0:
                continue
            if (by_symbol[a].quantity > 0) == (by_symbol[b].quantity > 0):
                continue  # same direction: no offset
            matched = min(remaining[a], remaining[b])
            if matched == 0:
                continue
            (na, da), (nb, db) = worst_units[a], worst_units[b]
            # rate × M × (na/da + nb/db), rounded down once.
            credit = _floor_q(rule.credit_rate * matched * (na * db + nb * da), da * db, q)
            remaining[a] -= matched
            remaining[b] -= matched
            credits.append(SpreadCredit(legs=rule.legs, matched_value=matched, credit=credit))
            credit_total += credit
        minimum = _ceil_q(minimum_num, 1, q)
        requirement = max(scan_total - credit_total, minimum)
    return SpanResult(
        version=params.version, requirement=requirement, scan_risk=scan_total, spread_credit=credit_total, minimum=minimum, gross_value=gross,
        assets=tuple(assets), credits=tuple(credits), scenario_losses=tuple(totals),
    )


def flat_requirement(positions: Mapping[str, Decimal], prices: Mapping[str, Decimal], *, pct: Decimal, quote_asset: str = "USDT", quantum: Decimal = Decimal("0.00000001")) -> Decimal:
    """The comparison baseline: a flat ``pct`` of the gross position value (Σ |quantity × price|
    over non-quote assets), rounded up — what a percentage-margin venue would ask."""
    gross = ZERO
    with localcontext() as ctx:
        ctx.prec = _PREC
        for symbol, qty in positions.items():
            if qty and symbol != quote_asset:
                gross += abs(Decimal(qty) * Decimal(prices[symbol]))
        return _ceil_q(gross * pct, 1, quantum.as_tuple().exponent)
