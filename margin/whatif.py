"""What-if: the portfolio-margin requirement and equity of a margin account after a hypothetical
change (an order about to be placed, a borrow, a transfer out), computed before it is accepted.

    order_requirement_after(account, *, asset_deltas={"BTC": +1, "USDT": -60000}) -> WhatIf

Reads the account once (:func:`account_snapshot`: balances, loans, prices through
``margin.pricing``, cached volatilities) and then runs the pure :func:`what_if` — the SPAN
computation of :mod:`margin.span` on the positions before and after. Nothing is written.

Rules (docs/margin.md, "Portfolio margin (SPAN-style)"):

* position per asset = available + locked − (loan principal + interest owed), + the delta;
* equity = Σ position × USDT price (the quote asset at 1); an owned asset without a price counts
  0 (and no risk), an owed one without a price cannot be valued → :class:`WhatIfError`;
* maintenance = ``SpanResult.requirement``; an order needs equity ≥ ``initial_factor`` ×
  maintenance afterwards (``initial_factor`` is in the parameter file), **or** must not worsen
  the account's shortfall (a risk-reducing order is never refused for being reducing).

Caching: the parsed parameter file (:func:`margin.span.load_params`, once per process) and the
volatilities (:mod:`margin.span_inputs`, per asset and UTC day, from closed daily candles only —
they cannot change during the day). Prices are never cached: ``margin.pricing`` is their one home."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal

from margin import span

ZERO = Decimal(0)


class WhatIfError(ValueError):
    """The account cannot be valued (an owed asset without a price)."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the what-if needs to know about one account, read once."""

    holdings: Mapping[str, Decimal]  # available + locked, per asset symbol
    debts: Mapping[str, Decimal]  # principal + interest owed, per asset symbol
    prices: Mapping[str, Decimal]  # USDT per unit; the quote asset may be absent (it is 1)
    vols: Mapping[str, Decimal]  # daily EWMA volatility; absent = the file's missing_vol_range


@dataclasses.dataclass(frozen=True)
class WhatIf:
    version: str
    equity_before: Decimal
    equity_after: Decimal
    requirement_before: Decimal  # maintenance (SPAN)
    requirement_after: Decimal
    initial_after: Decimal  # initial_factor × requirement_after: what an order must leave covered
    accepted: bool  # equity_after ≥ initial_after, or the shortfall does not grow
    result_after: span.SpanResult

    @property
    def consumed(self) -> Decimal:
        """The margin the change would consume (negative: it frees margin)."""
        return self.requirement_after - self.requirement_before

    @property
    def headroom_after(self) -> Decimal:
        return self.equity_after - self.initial_after


def _positions(snapshot: Snapshot, deltas: Mapping[str, Decimal], quote: str) -> tuple[dict[str, Decimal], Decimal, dict[str, Decimal]]:
    """Net positions (+ deltas), equity, and the prices SPAN needs. Unpriced owned assets are
    dropped (worth 0, no risk); unpriced owed assets are an error."""
    net: dict[str, Decimal] = {}
    for table, sign in ((snapshot.holdings, 1), (snapshot.debts, -1), (deltas, 1)):
        for symbol, amount in table.items():
            if amount:
                net[symbol] = net.get(symbol, ZERO) + (amount if sign > 0 else -amount)
    positions: dict[str, Decimal] = {}
    prices: dict[str, Decimal] = {}
    equity = ZERO
    for symbol, qty in net.items():
        if not qty:
            continue
        if symbol == quote:
            equity += qty
            positions[symbol] = qty
            continue
        price = snapshot.prices.get(symbol)
        if price is None:
            if qty < 0:
                raise WhatIfError(f"{symbol} is owed but has no price; the account cannot be valued")
            continue
        equity += qty * price
        positions[symbol] = qty
        prices[symbol] = price
    return positions, equity, prices


def what_if(snapshot: Snapshot, *, asset_deltas: Mapping[str, Decimal], params: span.SpanParams) -> WhatIf:
    """Pure: the requirement and equity before and after ``asset_deltas`` (see the module doc)."""
    quote = params.quote_asset
    pos_before, eq_before, px_before = _positions(snapshot, {}, quote)
    pos_after, eq_after, px_after = _positions(snapshot, asset_deltas, quote)
    before = span.portfolio_requirement(pos_before, px_before, snapshot.vols, params, detail=False)
    after = span.portfolio_requirement(pos_after, px_after, snapshot.vols, params, detail=False)
    initial_before = before.requirement * params.initial_factor
    initial_after = after.requirement * params.initial_factor
    accepted = eq_after >= initial_after or (eq_after - initial_after) >= (eq_before - initial_before)
    return WhatIf(
        version=params.version, equity_before=eq_before, equity_after=eq_after, requirement_before=before.requirement,
        requirement_after=after.requirement, initial_after=initial_after, accepted=accepted, result_after=after,
    )
