"""The back-office door: only allow-listed staff emails (``KK99_STAFF_EMAILS``) with two-factor
authentication, who passed it in this session, get in.

:func:`install` (called from ``AccountsConfig.ready``) gives the default admin site:

* a login form that takes email, password *and* the 2FA code; the password goes through
  :func:`accounts.services.credentials_check` (audited, per-account lockout with backoff —
  the same as the REST and HTML logins); staff without 2FA are refused (turn it on first);
* a permission check on every admin request: allow-listed email, and this session passed the
  second factor for this user (:data:`SECOND_FACTOR_SESSION_KEY`, set on ``user_logged_in``
  by any login that verified a code — this form or the main login's 2FA step), and 2FA is
  still enabled. Removing an email from the list, or switching 2FA off, locks the account
  out of the admin at once.
"""
from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ValidationError

from accounts import services
from accounts.audit import AuditAction, audit_record
from accounts.errors import AccountsError, AccountsErrorCode
from accounts.staff import staff_email_allowed

SECOND_FACTOR_SESSION_KEY = "accounts:second_factor_user"


def second_factor_passed(user) -> None:
    """Mark ``user`` (about to be logged in) as having passed 2FA: the ``user_logged_in``
    receiver records it in the new session."""
    user._kk99_second_factor_passed = True


def _mark_session(sender, request, user, **kwargs) -> None:
    if getattr(user, "_kk99_second_factor_passed", False) and hasattr(request, "session"):
        request.session[SECOND_FACTOR_SESSION_KEY] = user.pk


def session_passed_second_factor(request) -> bool:
    session = getattr(request, "session", None)
    user = getattr(request, "user", None)
    return bool(session is not None and user is not None and user.is_authenticated and session.get(SECOND_FACTOR_SESSION_KEY) == user.pk and user.totp_enabled)


class StaffAuthenticationForm(AdminAuthenticationForm):
    otp = forms.CharField(label="Two-factor code", max_length=32, required=False, widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "totp_setup_required": "Back-office accounts need two-factor authentication: sign in on the main site and turn it on under Security first.",
    }

    def clean(self):
        email = (self.cleaned_data.get("username") or "").strip().lower()
        password = self.cleaned_data.get("password")
        if email and password:
            try:
                self.user_cache = services.credentials_check(email=email, password=password, request=self.request)
            except AccountsError as exc:
                if exc.code == AccountsErrorCode.LOGIN_LOCKED:
                    raise ValidationError(exc.message, code=exc.code) from exc
                raise self.get_invalid_login_error() from exc
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data

    def confirm_login_allowed(self, user) -> None:
        if not (user.is_active and user.is_staff and staff_email_allowed(user.email)):
            audit_record(
                action=AuditAction.STAFF_ACCESS_DENIED, target_user=user, target=f"user:{user.pk}", request=self.request,
                details={"reason": "not on the staff allow-list" if user.is_staff else "not staff"},
            )
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login", params={"username": self.username_field.verbose_name})
        if not user.totp_enabled:
            audit_record(action=AuditAction.STAFF_ACCESS_DENIED, target_user=user, target=f"user:{user.pk}", request=self.request, details={"reason": "no 2FA"})
            raise ValidationError(self.error_messages["totp_setup_required"], code="totp_setup_required")
        try:
            services.second_factor_check(user=user, code=self.cleaned_data.get("otp"), request=self.request)
        except AccountsError as exc:
            if exc.code != AccountsErrorCode.TOTP_REQUIRED:
                services.login_failed_second_factor(user=user, request=self.request)
            raise ValidationError(exc.message, code=exc.code) from exc
        super().confirm_login_allowed(user)
        second_factor_passed(user)


def install(site) -> None:
    site.login_form = StaffAuthenticationForm
    site.login_template = "accounts/admin_login.html"
    site.site_header = "KK99 back office"
    site.site_title = "KK99 back office"
    site.index_title = "Back office"
    original = site.has_permission

    def has_permission(request) -> bool:
        user = request.user
        return bool(original(request) and staff_email_allowed(getattr(user, "email", "")) and session_passed_second_factor(request))

    site.has_permission = has_permission
    user_logged_in.connect(_mark_session, dispatch_uid="accounts.second_factor_session")
