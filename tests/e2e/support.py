"""Run inside the e2e server's environment (``manage.py shell -c``): fund and verify a user,
the way support staff would (the browser test cannot receive the verification email)."""
from __future__ import annotations

from decimal import Decimal

from django.utils import timezone


def fund_user(email: str, amounts: dict[str, str], *, create_password: str | None = None) -> int:
    from accounts.models import User
    from wallets.models import Asset
    from wallets.services import ledger_credit

    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=create_password)
    user.email_verified_at = user.email_verified_at or timezone.now()
    user.kyc_tier = max(user.kyc_tier, 2)
    user.save()
    for symbol, amount in amounts.items():
        ledger_credit(
            user=user, asset=Asset.objects.get(symbol=symbol), amount=Decimal(amount),
            idempotency_key=f"e2e-fund:{email}:{symbol}:{amount}", kind="issuance", counter="issuance",
        )
    return user.pk


def margin_fund(email: str, asset: str, amount: str, *, isolated_symbol: str = "") -> int:
    """Margin terms for ``asset`` (if the demo has none), then ``amount`` moved from the user's
    spot wallet into their cross (or isolated) margin account, through the service."""
    from accounts.models import User
    from margin.models import MarginAsset
    from margin.services import margin_account_for, margin_transfer
    from wallets.models import Asset

    user = User.objects.get(email=email)
    coin = Asset.objects.get(symbol=asset)
    MarginAsset.objects.get_or_create(asset=coin, defaults={"collateral_ratio": Decimal("1")})
    margin = margin_account_for(user, isolated_symbol or None)
    margin_transfer(user=user, asset=coin, amount=Decimal(amount), from_margin=None, to_margin=margin, idempotency_key=f"e2e-margin:{email}:{asset}:{isolated_symbol}:{amount}")
    return margin.pk
