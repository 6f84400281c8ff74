"""Listen keys: Binance's user-data streams reached by URL (``/ws/<listenKey>``).

A client asks for a key over REST with its API key alone (Binance's ``USER_STREAM``
security: no signature) — ``/sapi/v1/userDataStream`` for the cross-margin account,
``/sapi/v1/userDataStream/isolated?symbol=`` for an isolated one (``margin.sapi``) — then
connects to ``/ws/<listenKey>`` (:class:`trading.streams.userdata.ListenKeyStreamConsumer`),
which carries the events of that one ledger account.

Rules, as Binance's: a key lives :data:`LISTEN_KEY_SECONDS` (60 min) after it was opened or
last kept alive (``PUT``); opening again while a key of the same account is alive returns
that key and extends it; ``DELETE`` ends it (open streams get ``listenKeyExpired`` and are
closed). Keys are kept in the Django cache (Redis in every served configuration), so every
API server and stream server sees the same keys; a key lost with the cache is a key the
client re-opens, as after an expiry."""
from __future__ import annotations

import secrets
import string
from dataclasses import asdict, dataclass

from django.core.cache import cache

from accounts.models import ApiKey
from kk99.publish import publish_on_commit, user_group

LISTEN_KEY_SECONDS = 3600
LISTEN_KEY_LENGTH = 60
_ALPHABET = string.ascii_letters + string.digits
_PREFIX = "streams:listenkey"


@dataclass(frozen=True)
class ListenKeyStream:
    """What a listen key opens: the user's events of one ledger account (cross or isolated
    margin account: ``isolated_symbol`` is "" for cross)."""

    user_id: int
    api_key_id: int
    ledger_account_id: int
    isolated_symbol: str


def listen_key_valid_format(key: str) -> bool:
    return len(key) == LISTEN_KEY_LENGTH and all(c in _ALPHABET for c in key)


def _key_slot(key: str) -> str:
    return f"{_PREFIX}:key:{key}"


def _owner_slot(stream: ListenKeyStream) -> str:
    return f"{_PREFIX}:owner:{stream.user_id}:{stream.ledger_account_id}"


def listen_key_open(*, stream: ListenKeyStream) -> str:
    """The account's live key (extended), or a new one."""
    key = cache.get(_owner_slot(stream))
    if not key or cache.get(_key_slot(key)) is None:
        key = "".join(secrets.choice(_ALPHABET) for _ in range(LISTEN_KEY_LENGTH))
    cache.set(_key_slot(key), asdict(stream), LISTEN_KEY_SECONDS)
    cache.set(_owner_slot(stream), key, LISTEN_KEY_SECONDS)
    return key


def listen_key_get(key: str) -> ListenKeyStream | None:
    """The stream a live key opens, or None (unknown, expired, closed or malformed)."""
    if not isinstance(key, str) or not listen_key_valid_format(key):
        return None
    found = cache.get(_key_slot(key))
    return ListenKeyStream(**found) if found else None


def listen_key_stream(key: str) -> ListenKeyStream | None:
    """What ``/ws/<key>`` may open: a live key whose API key is still active, of an active
    user (a revoked key or a deactivated user closes open streams through
    ``auth.revoked``; this refuses new ones)."""
    stream = listen_key_get(key)
    if stream is None or not ApiKey.objects.filter(pk=stream.api_key_id, user_id=stream.user_id, revoked_at__isnull=True, user__is_active=True).exists():
        return None
    return stream


def _owned(key: str, *, user_id: int, ledger_account_id: int) -> ListenKeyStream | None:
    stream = listen_key_get(key)
    if stream is None or stream.user_id != user_id or stream.ledger_account_id != ledger_account_id:
        return None  # another user's key, or another account's, is not there for this caller
    return stream


def listen_key_keepalive(key: str, *, user_id: int, ledger_account_id: int) -> bool:
    """Extend a live key of this user's account by :data:`LISTEN_KEY_SECONDS`; False if it
    is not one."""
    stream = _owned(key, user_id=user_id, ledger_account_id=ledger_account_id)
    if stream is None:
        return False
    cache.set(_key_slot(key), asdict(stream), LISTEN_KEY_SECONDS)
    cache.set(_owner_slot(stream), key, LISTEN_KEY_SECONDS)
    return True


def listen_key_close(key: str, *, user_id: int, ledger_account_id: int) -> bool:
    """End a live key of this user's account; its open streams are told and closed (the
    ``listenkey.closed`` event on the user's group). False if it is not one."""
    stream = _owned(key, user_id=user_id, ledger_account_id=ledger_account_id)
    if stream is None:
        return False
    cache.delete(_key_slot(key))
    cache.delete(_owner_slot(stream))
    publish_on_commit("listenkey.closed", {"listenKey": key}, groups=[user_group(user_id)])
    return True
