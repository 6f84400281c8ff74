from __future__ import annotations

import uuid

from django import forms

from kk99.numbers import fmt_amount
from wallets.chains.models import IDEMPOTENCY_KEY_MAX_LENGTH, ChainAsset
from wallets.models import Asset


class WithdrawalForm(forms.Form):
    chain_asset = forms.ModelChoiceField(queryset=ChainAsset.objects.none(), label="Asset and network")
    address = forms.CharField(max_length=100)
    amount = forms.DecimalField(max_digits=38, decimal_places=18, min_value=0)
    otp = forms.CharField(max_length=16, required=False, label="2FA code")
    # One token per rendered form: submitting it twice (double click, a retry after an error
    # page) returns the withdrawal the first submission created.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=IDEMPOTENCY_KEY_MAX_LENGTH)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("idempotency_key", f"form:{uuid.uuid4().hex}")
        super().__init__(*args, **kwargs)
        self.fields["chain_asset"].queryset = ChainAsset.objects.filter(is_active=True, asset__withdraw_enabled=True).select_related("asset")
        self.fields["chain_asset"].label_from_instance = lambda ca: f"{ca.asset.symbol} on {ca.get_chain_display()} (network fee {fmt_amount(ca.withdrawal_fee)}, min {fmt_amount(ca.min_withdrawal)})"


class WithdrawalAddressForm(forms.Form):
    """A new address-book entry. The service validates the address for the network."""

    chain = forms.ChoiceField(label="Network")
    asset = forms.ModelChoiceField(queryset=Asset.objects.none(), required=False, empty_label="Any asset on this network")
    address = forms.CharField(max_length=100)
    label = forms.CharField(max_length=60, help_text="For you, e.g. “Ledger cold wallet”.")

    def __init__(self, *args, chains: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["chain"].choices = chains
        self.fields["asset"].queryset = Asset.objects.filter(chain_assets__is_active=True).distinct().order_by("symbol")

    def clean(self):
        data = super().clean()
        asset, chain = data.get("asset"), data.get("chain")
        if asset is not None and chain and not ChainAsset.objects.filter(asset=asset, chain=chain, is_active=True).exists():
            self.add_error("asset", f"{asset.symbol} cannot be withdrawn on this network.")
        return data
