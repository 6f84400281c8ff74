from decimal import Decimal

import pytest
from cryptography.fernet import Fernet

from accounts import crypto, services
from accounts.audit import AuditAction
from accounts.selectors import kyc_limits, user_can_trade, user_can_withdraw

pytestmark = pytest.mark.django_db


def test_kyc_limits_come_from_the_settings_table(user, settings):
    assert kyc_limits(user=user) == {"tier": 1, **settings.KK99["KYC_TIERS"][1]}
    assert kyc_limits(user=user)["daily_withdrawal_usdt"] == Decimal("2000")


def test_trade_and_withdraw_rules(make_user):
    fresh = make_user("fresh@example.com", verified=False)
    verified = make_user("ok@example.com")
    frozen = make_user("frozen@example.com", is_frozen=True)
    assert not user_can_trade(user=fresh) and not user_can_withdraw(user=fresh)
    assert user_can_trade(user=verified) and user_can_withdraw(user=verified)
    assert not user_can_trade(user=frozen) and not user_can_withdraw(user=frozen)


def test_secret_box_uses_the_configured_key_and_supports_rotation(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.KK99 = {**settings.KK99, "API_KEY_ENCRYPTION_KEY": old}
    token = crypto.encrypt_text("s3cret")
    assert Fernet(old.encode()).decrypt(token.encode()) == b"s3cret"
    settings.KK99 = {**settings.KK99, "API_KEY_ENCRYPTION_KEY": f"{new},{old}"}
    assert crypto.decrypt_text(token) == "s3cret"
    assert Fernet(new.encode()).decrypt(crypto.encrypt_text("x").encode()) == b"x"


def test_secret_box_without_a_key_derives_one_and_warns(settings, caplog):
    settings.KK99 = {**settings.KK99, "API_KEY_ENCRYPTION_KEY": None}
    crypto._warn_derived_key.cache_clear()
    token = crypto.encrypt_text("s3cret")
    assert Fernet(crypto.derived_development_key(settings.SECRET_KEY).encode()).decrypt(token.encode()) == b"s3cret"
    assert "DERIVED FROM SECRET_KEY" in caplog.text


def test_every_security_action_in_the_enum_has_a_writer():
    """Guard: each AuditAction is written somewhere: in accounts, by the wallets ledger
    (balance adjustments), by wallets.chains (deposits, withdrawals, KK99 supply) or by the
    operators' ``kk99`` CLI (kk99/ops.py, kk99/cli.py), by margin (transfers, loans, pool
    funding, liquidations), by the kill switches (risk) or by surveillance."""
    import pathlib

    root = pathlib.Path(services.__file__).parent.parent
    files = [*root.joinpath("accounts").glob("*.py"), *root.joinpath("wallets").glob("*.py"), *root.joinpath("wallets", "chains").rglob("*.py"),
             root / "kk99" / "ops.py", root / "kk99" / "cli.py", *root.joinpath("margin").glob("*.py"), *root.joinpath("risk").glob("*.py"),
             *root.joinpath("surveillance").glob("*.py")]
    source = "".join(p.read_text() for p in files)
    for action in AuditAction:
        assert f"AuditAction.{action.name}" in source, action
