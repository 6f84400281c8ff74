"""Exact Decimal ↔ integer conversion for one market (ticks for prices, lots for quantities).

The C book works in int64 ticks and lots; a fill's quote amount is ticks × lots quote units,
one unit being tick_size × step_size of the quote asset. Any value that is not an exact
multiple is a bug upstream (order_place enforces the filters) and raises."""
from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal


class Units:
    __slots__ = ("tick", "step", "quote_unit")

    def __init__(self, tick_size: Decimal, step_size: Decimal) -> None:
        self.tick = tick_size.normalize()
        self.step = step_size.normalize()
        self.quote_unit = (self.tick * self.step).normalize()

    @staticmethod
    def _exact(value: Decimal, unit: Decimal, what: str) -> int:
        n = value / unit
        if n != n.to_integral_value():
            raise ValueError(f"{what} {value} is not a multiple of {unit}")
        return int(n)

    def ticks(self, price: Decimal) -> int:
        return self._exact(price, self.tick, "price")

    def lots(self, qty: Decimal) -> int:
        return self._exact(qty, self.step, "quantity")

    def quote_units_floor(self, amount: Decimal) -> int:
        """How many whole quote units a budget buys (the rest can never be spent)."""
        return int((amount / self.quote_unit).to_integral_value(rounding=ROUND_FLOOR))

    def price(self, ticks: int) -> Decimal:
        return self.tick * ticks

    def qty(self, lots: int) -> Decimal:
        return self.step * lots

    def quote(self, units: int) -> Decimal:
        return self.quote_unit * units
