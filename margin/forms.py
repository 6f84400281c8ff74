"""The margin page's forms (transfer, borrow, repay). A hidden ``request_key`` made when the
page renders is the action's idempotency key: submitting the same form twice acts once."""
from __future__ import annotations

from decimal import Decimal

from django import forms


class MarginActionForm(forms.Form):
    ACTIONS = [("to_margin", "Transfer in (from spot)"), ("from_margin", "Transfer out (to spot)"), ("borrow", "Borrow"), ("repay", "Repay")]

    action = forms.ChoiceField(choices=ACTIONS)
    asset = forms.CharField(max_length=16)
    amount = forms.DecimalField(max_digits=38, decimal_places=18, min_value=Decimal("0.000000000000000001"))
    isolated_symbol = forms.CharField(max_length=32, required=False)
    request_key = forms.RegexField(r"^[A-Za-z0-9_-]{8,64}$")
