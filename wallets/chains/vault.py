"""Secrets from HashiCorp Vault / OpenBao (KV version 2) through hvac, with a loud local fallback.

Layout under the KV v2 mount (``VAULT["MOUNT"]``, default ``secret``) and prefix
(``VAULT["PREFIX"]``, default ``kk99``):

* ``<prefix>/chains/<CHAIN>/deposit`` — ``{"xpub": …}`` (ETH, TRX, BTC: the BIP44/84 account
  extended *public* key) or ``{"base": …}`` (SOL: the sweep authority's public key). The web tier
  reads only these.
* ``<prefix>/chains/<CHAIN>/hot`` — ``{"private_key": …, "address": …}``: the hot wallet, read only
  by the withdrawal signing task (a Celery worker).
* ``<prefix>/api-key-encryption`` — ``{"key": …}``: the Fernet key(s) for API-key secrets
  (see :func:`api_key_encryption_key`).

Auth: ``VAULT["AUTH"] = "token"`` (``VAULT_TOKEN``) or ``"approle"`` (``VAULT_ROLE_ID`` +
``VAULT_SECRET_ID``; the token obtained is cached per process and renewed by logging in again
on a 403).

Without ``VAULT["URL"]`` and with ``KK99["VAULT_ALLOW_LOCAL_FALLBACK"]`` (the embedded default),
secrets come from ``KK99["CHAIN_SECRETS_FALLBACK"]`` — and for chain keys missing there, from
keys derived from the *published* BIP39 test mnemonic — with a warning logged on every read
process-wide once and emitted as a Python warning. Never run real money that way.
"""
from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

import hvac
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from hvac.exceptions import Forbidden, InvalidPath, VaultError
from requests.exceptions import RequestException

from kk99.conf import kk99_setting
from wallets.chains.errors import SecretUnavailable

logger = logging.getLogger("kk99.chains.vault")

# The BIP39 test vector everybody knows: development/demo fallback only, never real funds.
DEVELOPMENT_MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

_lock = threading.Lock()
_client: hvac.Client | None = None
_client_key: tuple | None = None
_warned = False


class LocalSecretsWarning(UserWarning):
    """Secrets are being served from local settings, not Vault."""


def _conf() -> dict[str, Any]:
    return getattr(settings, "VAULT", {}) or {}


def vault_configured() -> bool:
    return bool(_conf().get("URL"))


def _login(client: hvac.Client, conf: dict[str, Any]) -> None:
    if conf.get("AUTH", "token") == "approle":
        client.auth.approle.login(role_id=conf["ROLE_ID"], secret_id=conf["SECRET_ID"])
    else:
        client.token = conf.get("TOKEN", "")


def vault_client(*, fresh: bool = False) -> hvac.Client:
    """A logged-in hvac client for the configured Vault (cached per process)."""
    global _client, _client_key
    conf = _conf()
    key = (conf.get("URL"), conf.get("AUTH"), conf.get("TOKEN"), conf.get("ROLE_ID"), conf.get("SECRET_ID"))
    with _lock:
        if fresh or _client is None or _client_key != key:
            client = hvac.Client(url=conf["URL"], timeout=conf.get("TIMEOUT", 5))
            try:
                _login(client, conf)
            except (VaultError, RequestException) as exc:
                raise SecretUnavailable(f"Vault login failed: {type(exc).__name__}.") from None
            _client, _client_key = client, key
        return _client


def _path(path: str) -> str:
    prefix = _conf().get("PREFIX", "kk99").strip("/")
    return f"{prefix}/{path.strip('/')}" if prefix else path.strip("/")


def _warn_fallback(path: str) -> None:
    global _warned
    message = (
        f"VAULT IS NOT CONFIGURED: secret {path!r} is served from local settings"
        " (KK99['CHAIN_SECRETS_FALLBACK'] / the published development mnemonic). Development only —"
        " set VAULT_ADDR and KK99_VAULT_ALLOW_LOCAL_FALLBACK=false in production."
    )
    if not _warned:
        _warned = True
        logger.warning("!" * 20 + " " + message + " " + "!" * 20)
        warnings.warn(message, LocalSecretsWarning, stacklevel=3)


@sensitive_variables()
def _fallback(path: str) -> dict[str, Any]:
    if not kk99_setting("VAULT_ALLOW_LOCAL_FALLBACK"):
        raise SecretUnavailable("Vault is not configured and the local fallback is disabled.", path=path)
    _warn_fallback(path)
    local = kk99_setting("CHAIN_SECRETS_FALLBACK")
    if path in local:
        return dict(local[path])
    from wallets.chains.hd import development_secret

    secret = development_secret(path)
    if secret is None:
        raise SecretUnavailable(f"No local fallback for secret {path!r}.", path=path)
    return secret


@sensitive_variables()
def secret_read(path: str) -> dict[str, Any]:
    """The latest version of the KV v2 secret at ``<prefix>/<path>``."""
    if not vault_configured():
        return _fallback(path)
    conf = _conf()
    for attempt in (0, 1):
        client = vault_client(fresh=attempt == 1)
        try:
            response = client.secrets.kv.v2.read_secret_version(
                path=_path(path), mount_point=conf.get("MOUNT", "secret"), raise_on_deleted_version=True
            )
            return dict(response["data"]["data"])
        except InvalidPath:
            raise SecretUnavailable(f"Vault has no secret at {path!r}.", path=path) from None
        except Forbidden:
            if attempt == 0 and conf.get("AUTH") == "approle":
                continue  # the AppRole token expired: log in again once
            raise SecretUnavailable(f"Vault refused access to {path!r}.", path=path) from None
        except (VaultError, RequestException) as exc:
            raise SecretUnavailable(f"Vault did not answer ({type(exc).__name__}).", path=path) from None
    raise SecretUnavailable(f"Vault refused access to {path!r}.", path=path)  # pragma: no cover


def secret_write(path: str, data: dict[str, Any]) -> None:
    """Create or update the KV v2 secret at ``<prefix>/<path>`` (operators' tooling and tests)."""
    if not vault_configured():
        raise SecretUnavailable("Vault is not configured; local secrets live in settings.", path=path)
    try:
        vault_client().secrets.kv.v2.create_or_update_secret(
            path=_path(path), secret=data, mount_point=_conf().get("MOUNT", "secret")
        )
    except (VaultError, RequestException) as exc:
        raise SecretUnavailable(f"Vault write failed ({type(exc).__name__}).", path=path) from None


def deposit_key_read(chain: str) -> dict[str, Any]:
    """The public derivation material of ``chain`` (xpub, or Solana's base public key)."""
    return secret_read(f"chains/{chain}/deposit")


@sensitive_variables()
def hot_wallet_read(chain: str) -> dict[str, Any]:
    """The hot wallet of ``chain`` (``private_key``, ``address``). Only the signing task calls this."""
    return secret_read(f"chains/{chain}/hot")


def api_key_encryption_key() -> str | None:
    """The API-key encryption key from Vault (``<prefix>/api-key-encryption``: ``key``), or None
    when Vault is not configured — so ``accounts.crypto.secret_box()`` can prefer it."""
    if not vault_configured():
        return None
    return secret_read("api-key-encryption").get("key")


def vault_reset() -> None:
    """Forget the cached client and the warning (tests switch Vault servers)."""
    global _client, _client_key, _warned
    with _lock:
        _client, _client_key, _warned = None, None, False
