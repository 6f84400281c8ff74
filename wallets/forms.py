"""The staff adjustment form (admin). Validation of shape only; the rules live in
``wallets.services.adjustment_request``."""
from __future__ import annotations

import uuid

from django import forms
from django.contrib.auth import get_user_model

from wallets.models import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, Asset


class BalanceAdjustForm(forms.Form):
    email = forms.EmailField(label="User email")
    asset = forms.ModelChoiceField(queryset=Asset.objects.order_by("symbol"), to_field_name="symbol")
    amount = forms.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        help_text="Positive credits the user, negative debits their available balance.",
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}), help_text="Kept in the journal and the audit log.")
    # One key per rendered form: submitting the same form twice creates one request.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("idempotency_key", f"admin-adjust:{uuid.uuid4().hex}")
        super().__init__(*args, **kwargs)

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise forms.ValidationError("No user with this email.")
        self.cleaned_data["user"] = user
        return email

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("The amount must not be zero.")
        return amount
