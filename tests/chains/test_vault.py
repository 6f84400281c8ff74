"""Secrets from a real Vault-compatible dev server (OpenBao), token and AppRole auth; the loud
local fallback."""
from __future__ import annotations

import hvac
import pytest

from wallets.chains.errors import SecretUnavailable
from wallets.chains.vault import LocalSecretsWarning, api_key_encryption_key, hot_wallet_read, secret_read, secret_write, vault_reset


@pytest.fixture
def vault(bao_server, settings):
    settings.VAULT = {**settings.VAULT, "URL": bao_server["url"], "AUTH": "token", "TOKEN": bao_server["token"], "MOUNT": "secret", "PREFIX": "kk99-test"}
    vault_reset()
    yield bao_server
    vault_reset()


def test_secrets_are_read_from_kv_v2_with_token_auth(vault):
    secret_write("chains/ETH/hot", {"private_key": "0xabc", "address": "0x1"})
    assert hot_wallet_read("ETH") == {"private_key": "0xabc", "address": "0x1"}
    secret_write("chains/ETH/hot", {"private_key": "0xdef", "address": "0x1"})  # a new version wins
    assert hot_wallet_read("ETH")["private_key"] == "0xdef"


def test_secrets_are_read_with_approle_auth(vault, settings):
    root = hvac.Client(url=vault["url"], token=vault["token"])
    if "approle/" not in root.sys.list_auth_methods():
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy("kk99-read", 'path "secret/data/kk99-test/*" { capabilities = ["read"] }')
    root.auth.approle.create_or_update_approle("kk99-web", token_policies=["kk99-read"], token_ttl="5m")
    role_id = root.auth.approle.read_role_id("kk99-web")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("kk99-web")["data"]["secret_id"]
    secret_write("api-key-encryption", {"key": "k" * 43 + "="})
    settings.VAULT = {**settings.VAULT, "AUTH": "approle", "TOKEN": "", "ROLE_ID": role_id, "SECRET_ID": secret_id}
    vault_reset()
    assert api_key_encryption_key() == "k" * 43 + "="
    with pytest.raises(SecretUnavailable):  # the policy grants read only
        secret_write("chains/ETH/hot", {"private_key": "x"})


def test_a_missing_secret_is_a_clear_error(vault):
    with pytest.raises(SecretUnavailable):
        secret_read("chains/NOPE/hot")


def test_a_wrong_token_is_refused(vault, settings):
    settings.VAULT = {**settings.VAULT, "TOKEN": "not-the-token"}
    vault_reset()
    with pytest.raises(SecretUnavailable):
        secret_read("chains/ETH/hot")


def test_without_vault_the_fallback_warns_loudly(settings, caplog):
    settings.KK99 = {**settings.KK99, "CHAIN_SECRETS_FALLBACK": {"chains/ETH/hot": {"private_key": "local", "address": "0x2"}}}
    with pytest.warns(LocalSecretsWarning):
        assert hot_wallet_read("ETH")["private_key"] == "local"
    assert "VAULT IS NOT CONFIGURED" in caplog.text


def test_without_vault_and_with_the_fallback_disabled_secrets_are_refused(settings):
    settings.KK99 = {**settings.KK99, "VAULT_ALLOW_LOCAL_FALLBACK": False}
    with pytest.raises(SecretUnavailable):
        hot_wallet_read("ETH")
