"""Who may be back-office staff: only emails on ``KK99["STAFF_EMAILS"]`` (env
``KK99_STAFF_EMAILS``). Enforced in ``User.save``, at the admin login and on every admin
request (:mod:`accounts.admin_site`), and reported by a system check."""
from __future__ import annotations

from kk99.conf import kk99_setting


def staff_emails() -> set[str]:
    return {email.strip().lower() for email in kk99_setting("STAFF_EMAILS")}


def staff_email_allowed(email: str | None) -> bool:
    return bool(email) and email.strip().lower() in staff_emails()
