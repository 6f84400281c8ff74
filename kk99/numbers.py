"""The one number formatter of the user interface (templates, the trading page's fragments, the
admin; ``static/js/kk99.js`` ``KK99.fmt``/``KK99.fmtAmount`` follow the same rules).

Two shapes, both exact (Decimal in, string out), with thousands separators and never a
scientific notation:

* :func:`fmt_fixed` — a market's price or quantity at that market's precision (every row of
  a column lines up): ``fmt_fixed(Decimal("60000"), 2) == "60,000.00"``.
* :func:`fmt_amount` — a balance or a fee outside a market: at most ``max_places`` decimals
  (rounded down — never show more than the user holds), trailing zeros dropped:
  ``fmt_amount(Decimal("0.000001000")) == "0.000001"``, ``fmt_amount(Decimal("1E+1")) == "10"``.
"""
from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

DASH = "—"
AMOUNT_PLACES = 8


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def fmt_fixed(value, places: int, *, grouping: bool = True) -> str:
    """``value`` rounded half-even to exactly ``places`` decimals."""
    d = _decimal(value)
    if d is None:
        return DASH
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN) if places >= 0 else d
    if q.is_zero():
        q = abs(q)  # no "-0.00"
    return f"{q:,.{places}f}" if grouping else f"{q:.{places}f}"


def fmt_amount(value, max_places: int = AMOUNT_PLACES, *, grouping: bool = True) -> str:
    """``value`` cut (not rounded) to ``max_places`` decimals, trailing zeros dropped."""
    d = _decimal(value)
    if d is None:
        return DASH
    q = d.quantize(Decimal(1).scaleb(-max_places), rounding=ROUND_DOWN)
    if q.is_zero():
        return "0"
    text = f"{q:,f}" if grouping else f"{q:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_signed(value, max_places: int = 18) -> str:
    """:func:`fmt_amount` with an explicit sign (ledger legs: ``+1,234.5`` / ``-1,234.5``)."""
    text = fmt_amount(value, max_places)
    return text if text.startswith("-") or text in ("0", DASH) else "+" + text
