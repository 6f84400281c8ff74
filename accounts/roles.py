"""Back-office roles as Django groups with least-privilege permissions.

The table below is the single truth: :func:`roles_sync` makes each group hold exactly these
permissions. Entries are ``app_label.codename`` and may use ``*`` wildcards so that the
permissions of apps built later (the wallets ledger) are granted as soon as they exist — the
sync runs in data migration 0004 and again after every ``migrate`` (``post_migrate``).

* support — read users, KYC submissions (not the documents) and API keys; no money, no changes.
* compliance — KYC review and documents, users (freeze, set tier), API keys (revoke), audit log,
  market surveillance (alerts, cases, thresholds).
* finance — users and audit log read-only; the wallets ledger: view everything, ``adjust_*``
  (request and approve balance adjustments — two different people each time); chains: view,
  request/approve KK99 supply changes (two people). Not withdrawals: see treasury.
* treasury — approves withdrawals; users and chains read-only. Kept apart from finance so that
  the person who can adjust a balance cannot also let the money out.
* admin — every permission.
"""
from __future__ import annotations

import fnmatch
import logging

logger = logging.getLogger(__name__)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "support": (
        "accounts.view_user",
        "accounts.view_kycsubmission",
        "accounts.view_apikey",
    ),
    "compliance": (
        "accounts.view_user",
        "accounts.freeze_user",
        "accounts.set_kyc_tier",
        "accounts.view_kycsubmission",
        "accounts.review_kycsubmission",
        "accounts.view_kycdocument",
        "accounts.view_apikey",
        "accounts.change_apikey",
        "accounts.view_auditlog",
        "chains.view_deposit",
        "chains.view_withdrawal",
        # Market surveillance (issue 13): alerts, cases, thresholds, account links.
        "surveillance.*",
    ),
    "finance": (
        "accounts.view_user",
        "accounts.view_auditlog",
        "wallets.view_*",
        "wallets.adjust_*",
        "chains.view_*",
        "chains.approve_token_supply",
    ),
    "treasury": (
        "accounts.view_user",
        "accounts.view_auditlog",
        "wallets.view_*",
        "chains.view_*",
        "chains.approve_withdrawal",
    ),
    "admin": ("*",),
}


def roles_sync(*, group_model=None, permission_model=None) -> dict[str, list[str]]:
    """Create the role groups and set their permissions to exactly the table's (the models
    may be historical ones, from a migration). Returns role → granted permission names."""
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = Group, Permission
    available = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.values_list("pk", "content_type__app_label", "codename")
    }
    granted: dict[str, list[str]] = {}
    for role, patterns in ROLE_PERMISSIONS.items():
        names = sorted({name for pattern in patterns for name in available if fnmatch.fnmatchcase(name, pattern)})
        for pattern in patterns:
            if "*" not in pattern and pattern not in available:
                logger.debug("Role %s: permission %s does not exist yet", role, pattern)
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set([available[name] for name in names])
        granted[role] = names
    return granted
