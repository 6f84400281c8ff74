"""Template filters over :mod:`kk99.numbers` — ``{% load kk99_numbers %}``:
``{{ price|fixed:2 }}``, ``{{ balance|amount }}``, ``{{ fee|amount:asset.precision }}``."""
from __future__ import annotations

from django import template

from kk99.numbers import AMOUNT_PLACES, fmt_amount, fmt_fixed

register = template.Library()


@register.filter
def fixed(value, places=2):
    return fmt_fixed(value, int(places))


@register.filter
def amount(value, max_places=AMOUNT_PLACES):
    return fmt_amount(value, min(int(max_places), AMOUNT_PLACES))
