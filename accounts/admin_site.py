"""The back-office door: only allow-listed staff emails get in (``KK99_STAFF_EMAILS``).

:func:`install` (called from ``AccountsConfig.ready``) gives the default admin site a login
form that refuses — and audits — anyone else, and re-checks the allow-list on every admin
request, so removing an email from the list locks that account out at once. Staff with 2FA
are sent to the main login page (which asks for the code); the admin login has no 2FA step."""
from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from accounts.audit import AuditAction, audit_record
from accounts.staff import staff_email_allowed


class StaffAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user) -> None:
        if not (user.is_active and user.is_staff and staff_email_allowed(user.email)):
            audit_record(
                action=AuditAction.STAFF_ACCESS_DENIED, target_user=user, target=f"user:{user.pk}", request=self.request,
                details={"reason": "not on the staff allow-list" if user.is_staff else "not staff"},
            )
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login", params={"username": self.username_field.verbose_name})
        if user.totp_enabled:
            raise ValidationError(
                "This account uses two-factor authentication: sign in on the main login page first, then open the back office.",
                code="totp_required",
            )
        super().confirm_login_allowed(user)


def install(site) -> None:
    site.login_form = StaffAuthenticationForm
    site.site_header = "KK99 back office"
    site.site_title = "KK99 back office"
    site.index_title = "Back office"
    original = site.has_permission

    def has_permission(request) -> bool:
        user = request.user
        return bool(original(request) and staff_email_allowed(getattr(user, "email", "")))

    site.has_permission = has_permission
