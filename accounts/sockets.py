"""Closing a user's open WebSockets when their credentials stop being valid.

A WebSocket is authenticated once, when it opens (the session cookie for the browser streams,
a signed subscription for ``/ws-api/v3``); without this, a socket opened before a logout, a
password change or a key revocation kept streaming private data. The services publish
``auth.revoked`` to the user's group after commit (:func:`user_sockets_close_on_commit`, the
one path — called by the User post-save hook in ``accounts/apps.py`` for password changes
and deactivation, by ``api_key_revoke`` and by the logout record) and every consumer that
joined that group closes itself (:func:`socket_should_close`):

* password changed or reset, account deactivated, an API key revoked — every socket of the
  user (browser pages reconnect with their still-valid session; WS-API clients must
  re-subscribe with a valid key);
* logout — only the sockets of that browser session (other devices stay signed in).
"""
from __future__ import annotations

import hashlib

from kk99.publish import publish_on_commit, user_group

AUTH_REVOKED_EVENT = "auth.revoked"
CLOSE_AUTH_REVOKED = 4401  # WebSocket close code: credentials revoked, authenticate again


def session_fingerprint(session_key: str) -> str:
    """Names a session on the channel layer without sending the session key itself."""
    return hashlib.sha256(f"kk99-socket:{session_key}".encode()).hexdigest()[:32]


def user_sockets_close_on_commit(*, user_id: int, reason: str, session_key: str | None = None) -> None:
    payload = {"user_id": int(user_id), "reason": reason, "session": session_fingerprint(session_key) if session_key else None}
    publish_on_commit(AUTH_REVOKED_EVENT, payload, groups=[user_group(user_id)])


def socket_should_close(payload: dict, *, user_ids, session_key: str | None = None) -> bool:
    """Whether a socket serving ``user_ids`` (opened in ``session_key``, if a browser one)
    must close for this ``auth.revoked`` payload."""
    if payload.get("user_id") not in set(user_ids):
        return False
    target = payload.get("session")
    return target is None or (session_key is not None and target == session_fingerprint(session_key))
