"""Money in the admin, through the one formatter (:mod:`kk99.numbers`).

Django's admin shows a ``DecimalField`` at the field's ``decimal_places`` — 18 for every
amount column here ("1.000000000000000000 BTC"). :class:`MoneyAdmin` (a mixin for
``ModelAdmin`` and inlines) swaps every decimal field that the admin *displays* — list
columns, and read-only fields on detail pages — for a column that formats the value:

* at the row's asset precision when the row has an ``asset`` (ledger entries, balances,
  deposits, withdrawals, adjustments): ``fmt_fixed(value, asset.precision)`` → ``1,000.50000000``;
* at the market's tick / step size for prices and quantities of a row with a ``market`` (quote
  amounts at the quote asset's precision);
* otherwise exactly, trailing zeros dropped (``fmt_amount(value, decimal_places)``).

Editable decimal inputs keep exact values but without the zero tail (``10`` rather than
``10.000000000000000000``). ``tests/kk99/test_admin_numbers.py`` checks that every registered
admin whose model has a decimal field uses the mixin.
"""
from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.db import models

from kk99.numbers import fmt_amount, fmt_fixed

MONEY_PREFIX = "money__"


def _places(increment: Decimal) -> int:
    return max(0, -int(Decimal(increment).normalize().as_tuple().exponent))


def money_places(obj, field_name: str) -> int | None:
    """The decimals ``obj.<field_name>`` is shown with, or None (exact, no zero tail)."""
    if field_name.endswith("_usdt"):
        return None  # a valuation, not an amount of the row's asset
    asset = getattr(obj, "asset", None)
    if asset is not None and hasattr(asset, "precision"):
        return int(asset.precision)
    market = getattr(obj, "market", None)
    if market is not None and hasattr(market, "tick_size"):
        if "quote" in field_name:
            return int(market.quote.precision)
        if "price" in field_name:
            return _places(market.tick_size)
        if "qty" in field_name or "quantity" in field_name:
            return _places(market.step_size)
    return None


def money_text(obj, field_name: str, value, *, max_places: int = 18) -> str:
    """``value`` (``obj``'s ``field_name``, or a figure computed from its fields) as the admin
    shows it: at the places :func:`money_places` finds, else exact without the zero tail."""
    if value is None:
        return "-"
    places = money_places(obj, field_name)
    return fmt_fixed(value, places) if places is not None else fmt_amount(value, max_places)


def _decimal_field(model, name) -> models.DecimalField | None:
    if not isinstance(name, str):
        return None
    try:
        field = model._meta.get_field(name)
    except Exception:  # not a model field (a method, a lookup): left alone
        return None
    return field if isinstance(field, models.DecimalField) else None


class TrimmedDecimalField(forms.DecimalField):
    """An editable decimal shown exactly, without the model's zero tail."""

    def prepare_value(self, value):
        if isinstance(value, Decimal) and value.is_finite():
            text = f"{value.normalize():f}"
            return "0" if text in ("-0", "0") else text
        return value


class MoneyAdmin:
    """Mixin (first base) for ``admin.ModelAdmin`` / inlines: decimal columns and read-only
    decimal fields through the one formatter (see the module docstring)."""

    formfield_overrides = {models.DecimalField: {"form_class": TrimmedDecimalField}}

    def _money_name(self, field: models.DecimalField) -> str:
        """A display callable for ``field`` registered on this admin under a stable name."""
        name = MONEY_PREFIX + field.name
        if not hasattr(self, name):
            def show(obj, _field=field):
                return money_text(obj, _field.name, getattr(obj, _field.name), max_places=_field.decimal_places)

            setattr(self, name, admin.display(description=field.verbose_name, ordering=field.name)(show))
        return name

    def _shown_read_only(self, request, obj) -> set[str]:
        """The decimal fields a detail page shows as text: the read-only ones, and all of
        them on a view-only page (Django then shows every field read-only)."""
        names = {f.name for f in self.model._meta.get_fields() if isinstance(f, models.DecimalField)}
        if obj is not None and not self.has_change_permission(request, obj):
            return names
        return names & {n for n in super().get_readonly_fields(request, obj) if isinstance(n, str)}

    def _swap(self, names, only: set[str] | None = None) -> list:
        out = []
        for name in names:
            field = _decimal_field(self.model, name)
            out.append(self._money_name(field) if field is not None and (only is None or name in only) else name)
        return out

    def get_list_display(self, request):
        return self._swap(super().get_list_display(request))

    def get_readonly_fields(self, request, obj=None):
        return self._swap(super().get_readonly_fields(request, obj))

    def get_fields(self, request, obj=None):
        only = self._shown_read_only(request, obj)
        fields = self._swap(super().get_fields(request, obj), only)
        # Fields derived from the form lose the swapped ones (excluded from it): add them back.
        if self.fields:
            return fields
        present = set(fields)
        for f in self.model._meta.get_fields():
            if f.name in only and MONEY_PREFIX + f.name not in present:
                fields.append(self._money_name(f))
        return fields

    def get_fieldsets(self, request, obj=None):
        only = self._shown_read_only(request, obj)

        def swap(fields):
            return [tuple(self._swap(f, only)) if isinstance(f, (list, tuple)) else self._swap([f], only)[0] for f in fields]

        return [(title, {**opts, "fields": swap(opts.get("fields", ()))}) for title, opts in super().get_fieldsets(request, obj)]

    def get_exclude(self, request, obj=None):
        # Neither the swapped field nor its display name may become a form input.
        exclude = list(super().get_exclude(request, obj) or [])
        for name in self._shown_read_only(request, obj):
            exclude += [name, MONEY_PREFIX + name]
        return exclude or None
