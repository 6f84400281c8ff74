"""DRF permissions for what an API key (and its owner's account state) allows.

``ApiKeyPermission("trade")`` returns a permission *class* for ``permission_classes``:

* on a request authenticated by an API key (``request.auth`` is an :class:`ApiKey`) the key
  must carry the permission (else ``api_key_permission_denied``);
* for ``trade`` the owner must pass the one "may trade" rule,
  :func:`accounts.selectors.user_trading_refusal` (``account_frozen`` /
  ``trading_not_allowed``), and for ``withdraw`` a frozen account is ``account_frozen`` and
  :func:`accounts.selectors.user_can_withdraw` must hold — whatever the authentication.

Shortcuts: :data:`HasReadPermission`, :data:`HasTradePermission`, :data:`HasWithdrawPermission`.
"""
from __future__ import annotations

from functools import cache

from rest_framework.permissions import BasePermission

from accounts import selectors
from accounts.errors import AccountFrozen, ApiKeyPermissionDenied, WithdrawalNotAllowed
from accounts.models import ApiKey


@cache
def ApiKeyPermission(permission: str) -> type[BasePermission]:  # reads like a class
    if permission not in ApiKey.Permission.values:
        raise ValueError(f"Unknown API-key permission {permission!r}")

    class _ApiKeyPermission(BasePermission):
        def has_permission(self, request, view) -> bool:
            user = request.user
            if not (user and user.is_authenticated):
                return False
            if isinstance(request.auth, ApiKey) and not request.auth.has_permission(permission):
                raise ApiKeyPermissionDenied(f"This API key lacks the '{permission}' permission.", permission=permission)
            if permission == "trade":
                refusal = selectors.user_trading_refusal(user=user)
                if refusal is not None:
                    raise refusal
            if permission == "withdraw" and user.is_frozen:
                raise AccountFrozen()
            if permission == "withdraw" and not selectors.user_can_withdraw(user=user):
                raise WithdrawalNotAllowed()
            return True

    _ApiKeyPermission.__name__ = _ApiKeyPermission.__qualname__ = f"ApiKeyPermission_{permission}"
    return _ApiKeyPermission


HasReadPermission = ApiKeyPermission("read")
HasTradePermission = ApiKeyPermission("trade")
HasWithdrawPermission = ApiKeyPermission("withdraw")
