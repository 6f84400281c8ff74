"""Browser pages of the accounts app (templates in ``templates/accounts/``).

Views validate forms and call services; business refusals (:class:`AccountsError`) become
form errors. POSTs that guess secrets (login, 2FA, registration, password reset) are rate
limited per IP with the same rates as the API throttles. No HTML is built in Python."""
from __future__ import annotations

import time

from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.admin_site import second_factor_passed, session_passed_second_factor
from accounts.errors import AccountsError, AccountsErrorCode
from accounts.forms import ApiKeyForm, CodeForm, EmailForm, KycForm, LoginForm, PasswordChangeForm, RegisterForm, SetPasswordForm
from accounts.models import RecoveryCode, User
from accounts.ratelimits import form_ratelimit
from accounts.redirects import safe_next_url
from accounts.staff import staff_email_allowed
from kk99.devmail import mailbox_enabled
from kk99.errors import KK99Error
from trading.streams.fragments import market_rows

PENDING_2FA_SESSION_KEY = "accounts:pending_2fa"
PENDING_2FA_MAX_AGE_SECONDS = 300


def _form_error(form, exc: KK99Error, field: str | None = None) -> None:
    problems = exc.details.get("problems") if isinstance(exc.details, dict) else None
    if problems:
        for problem in problems:
            form.add_error(field, problem)
    else:
        form.add_error(field, exc.message)


def _session_login(request: HttpRequest, user: User) -> None:
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    services.login_record(user=user, method="session", request=request)


# --- public pages ---------------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/home.html", {"rows": market_rows()})


@sensitive_post_parameters()
@never_cache
@require_http_methods(["GET", "POST"])
@form_ratelimit("register")
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:dashboard")
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_register(email=form.cleaned_data["email"], password=form.cleaned_data["password1"], request=request)
        except AccountsError as exc:
            _form_error(form, exc, "password1" if exc.code == "weak_password" else "email")
        else:
            # The same page for a new and an existing email (no account enumeration); the
            # email tells the owner which it was. A new account signs in after this.
            return render(request, "accounts/register_sent.html", {"email": form.cleaned_data["email"]})
    return render(request, "accounts/register.html", {"form": form})


@sensitive_post_parameters()
@never_cache
@require_http_methods(["GET", "POST"])
@form_ratelimit("login")
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    next_url = safe_next_url(request, reverse("accounts:dashboard"))
    if request.method == "POST" and form.is_valid():
        try:
            user = services.credentials_check(email=form.cleaned_data["email"], password=form.cleaned_data["password"], request=request)
        except AccountsError as exc:
            _form_error(form, exc)
            if exc.code == AccountsErrorCode.LOGIN_LOCKED:
                response = render(request, "accounts/login.html", {"form": form, "next": next_url}, status=429)
                response["Retry-After"] = str(exc.details["retry_after_seconds"])
                return response
        else:
            if user.totp_enabled:
                request.session.cycle_key()
                request.session[PENDING_2FA_SESSION_KEY] = {"user_id": user.pk, "at": int(time.time()), "next": next_url}
                return redirect("accounts:login_2fa")
            _session_login(request, user)
            return redirect(next_url)
    return render(request, "accounts/login.html", {"form": form, "next": next_url})


@sensitive_post_parameters()
@never_cache
@require_http_methods(["GET", "POST"])
@form_ratelimit("login")
def login_2fa(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(PENDING_2FA_SESSION_KEY)
    if not pending or time.time() - pending.get("at", 0) > PENDING_2FA_MAX_AGE_SECONDS:
        request.session.pop(PENDING_2FA_SESSION_KEY, None)
        messages.error(request, "Your sign-in timed out; enter your password again.")
        return redirect("accounts:login")
    user = User.objects.filter(pk=pending["user_id"], is_active=True).first()
    if user is None:
        request.session.pop(PENDING_2FA_SESSION_KEY, None)
        return redirect("accounts:login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.second_factor_check(user=user, code=form.cleaned_data["code"], request=request)
        except AccountsError as exc:
            services.login_failed_second_factor(user=user, request=request)
            _form_error(form, exc, "code")
        else:
            request.session.pop(PENDING_2FA_SESSION_KEY, None)
            second_factor_passed(user)
            _session_login(request, user)
            return redirect(pending.get("next") or "accounts:dashboard")
    return render(request, "accounts/login_2fa.html", {"form": form})


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        services.session_logout_record(user=request.user, request=request)
    logout(request)
    return redirect("accounts:home")


@never_cache
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    try:
        user = services.email_verify(token=token, request=request)
    except AccountsError as exc:
        return render(request, "accounts/verify_email.html", {"ok": False, "error": exc}, status=400)
    return render(request, "accounts/verify_email.html", {"ok": True, "verified_user": user})


@login_required
@require_POST
@form_ratelimit("register")
def verify_email_resend(request: HttpRequest) -> HttpResponse:
    try:
        services.email_verification_send(user=request.user, request=request)
        messages.success(request, "A new verification link is on its way.")
    except AccountsError as exc:
        messages.info(request, exc.message)
    return redirect("accounts:dashboard")


@never_cache
@require_http_methods(["GET", "POST"])
@form_ratelimit("password_reset")
def password_reset(request: HttpRequest) -> HttpResponse:
    form = EmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.password_reset_request(email=form.cleaned_data["email"], request=request)
        return render(request, "accounts/password_reset_sent.html")
    return render(request, "accounts/password_reset.html", {"form": form})


@sensitive_post_parameters()
@never_cache
@require_http_methods(["GET", "POST"])
@form_ratelimit("password_reset")
def password_reset_confirm(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    try:
        services.password_reset_user(uidb64=uidb64, token=token)
    except AccountsError:
        return render(request, "accounts/password_reset_confirm.html", {"invalid": True}, status=400)
    form = SetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.password_reset_confirm(uidb64=uidb64, token=token, new_password=form.cleaned_data["new_password1"], request=request)
        except AccountsError as exc:
            _form_error(form, exc, "new_password1")
        else:
            messages.success(request, "Your password was changed. Sign in with the new one.")
            return redirect("accounts:login")
    return render(request, "accounts/password_reset_confirm.html", {"form": form})


# --- signed-in pages ------------------------------------------------------------------------


def _balances_url() -> str | None:
    try:
        return reverse("wallets:balances")
    except NoReverseMatch:  # the wallets app has not mounted its fragment yet
        return None


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(request, "accounts/dashboard.html", {
        "limits": selectors.kyc_limits(user=user),
        "can_trade": selectors.user_can_trade(user=user),
        "can_withdraw": selectors.user_can_withdraw(user=user),
        "balances_url": _balances_url(),
        "latest_kyc": selectors.kyc_submission_latest(user=user),
        "demo_mailbox": mailbox_enabled(),
    })


def _security_context(request: HttpRequest, **extra) -> dict:
    user = request.user
    context = {
        "totp_enabled": user.totp_enabled,
        "recovery_remaining": RecoveryCode.objects.filter(user=user, used_at__isnull=True).count(),
        "events": selectors.audit_events_for_user(user=user, limit=20),
        "code_form": CodeForm(),
        "password_form": PasswordChangeForm(),
    }
    if not user.totp_enabled:
        context["setup"] = services.totp_setup_begin(user=user)
    context.update(extra)
    return context


@login_required
@never_cache
def security(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/security.html", _security_context(request))


def _security_code_action(request: HttpRequest, action, on_success) -> HttpResponse:
    """The security page's code-confirmed actions: validate the 2FA code form, run the
    service, answer ``on_success(result)``; a refusal re-renders the page with the error."""
    form = CodeForm(request.POST)
    if form.is_valid():
        try:
            result = action(user=request.user, code=form.cleaned_data["code"], request=request)
        except AccountsError as exc:
            _form_error(form, exc, "code")
        else:
            return on_success(result)
    return render(request, "accounts/security.html", _security_context(request, code_form=form), status=400)


@sensitive_post_parameters()
@login_required
@never_cache
@require_POST
@form_ratelimit("login")
def security_2fa_confirm(request: HttpRequest) -> HttpResponse:
    return _security_code_action(
        request,
        services.totp_setup_confirm,
        lambda codes: render(request, "accounts/recovery_codes.html", {"codes": codes, "enabled_now": True}),
    )


def _totp_disabled(request: HttpRequest) -> HttpResponse:
    messages.success(request, "Two-factor authentication is off. We recommend turning it back on.")
    return redirect("accounts:security")


@sensitive_post_parameters()
@login_required
@never_cache
@require_POST
@form_ratelimit("login")
def security_2fa_disable(request: HttpRequest) -> HttpResponse:
    return _security_code_action(request, services.totp_disable, lambda _: _totp_disabled(request))


@sensitive_post_parameters()
@login_required
@never_cache
@require_POST
@form_ratelimit("login")
def security_recovery_codes(request: HttpRequest) -> HttpResponse:
    return _security_code_action(
        request,
        services.recovery_codes_regenerate,
        lambda codes: render(request, "accounts/recovery_codes.html", {"codes": codes}),
    )


@sensitive_post_parameters()
@login_required
@never_cache
@require_POST
@form_ratelimit("login")
def security_password(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.POST)
    if form.is_valid():
        try:
            services.password_change(user=request.user, old_password=form.cleaned_data["old_password"], new_password=form.cleaned_data["new_password1"], request=request)
        except AccountsError as exc:
            _form_error(form, exc, "old_password" if exc.code == "wrong_password" else "new_password1")
        else:
            update_session_auth_hash(request, request.user)
            messages.success(request, "Password changed.")
            return redirect("accounts:security")
    return render(request, "accounts/security.html", _security_context(request, password_form=form), status=400)


def _api_keys_render(request: HttpRequest, form: ApiKeyForm, *, created=None, secret=None, status: int = 200) -> HttpResponse:
    context = {"form": form, "keys": selectors.api_key_list(user=request.user), "created": created, "secret": secret, "totp_enabled": request.user.totp_enabled}
    return render(request, "accounts/api_keys.html", context, status=status)


@sensitive_post_parameters()
@sensitive_variables("secret")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
@form_ratelimit("login")
def api_keys(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                api_key, secret = services.api_key_create(
                    user=request.user, label=form.cleaned_data["label"], permissions=form.permissions(),
                    ip_allowlist=form.ip_entries(), otp=form.cleaned_data.get("otp") or None, request=request,
                )
            except AccountsError as exc:
                _form_error(form, exc, "otp" if "totp" in exc.code else ("ip_allowlist" if exc.code == "invalid_ip_allowlist" else None))
            else:
                # The secret is rendered in this response only; it is never stored in clear.
                return _api_keys_render(request, ApiKeyForm(), created=api_key, secret=secret)
        return _api_keys_render(request, form, status=400)
    return _api_keys_render(request, form)


@login_required
@require_POST
def api_key_revoke(request: HttpRequest, api_key_id: int) -> HttpResponse:
    try:
        api_key = selectors.api_key_get(user=request.user, api_key_id=api_key_id)
    except KK99Error as exc:
        raise Http404 from exc
    services.api_key_revoke(api_key=api_key, actor=request.user, request=request)
    if request.htmx:
        return render(request, "accounts/_api_key_list.html", {"keys": selectors.api_key_list(user=request.user)})
    messages.success(request, "API key revoked.")
    return redirect("accounts:api_keys")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def kyc(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = KycForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = dict(form.cleaned_data)
            documents = {kind: data.pop(kind, None) for kind in ("id_document", "selfie", "proof_of_address")}
            try:
                services.kyc_submit(user=user, documents=documents, request=request, **data)
            except AccountsError as exc:
                field = exc.details.get("field") if exc.details.get("field") in form.fields else None
                _form_error(form, exc, field)
            else:
                messages.success(request, "Thank you. Your documents are waiting for review.")
                return redirect("accounts:kyc")
        status = 400
    return render(request, "accounts/kyc.html", {
        "form": form,
        "limits": selectors.kyc_limits(user=user),
        "latest": selectors.kyc_submission_latest(user=user),
        "pending": selectors.kyc_submission_pending_exists(user=user),
    }, status=status)


# --- back office ----------------------------------------------------------------------------


@login_required
@never_cache
def kyc_document(request: HttpRequest, document_id: int) -> HttpResponse:
    """Serve one KYC document to staff holding ``accounts.view_kycdocument``. Everyone else
    gets 404 (not 403: no oracle for which document ids exist)."""
    user = request.user
    if not (user.is_active and user.is_staff and staff_email_allowed(user.email) and session_passed_second_factor(request) and user.has_perm("accounts.view_kycdocument")):
        raise Http404
    try:
        document, handle = services.kyc_document_open(document_id=document_id, staff=user, request=request)
    except KK99Error as exc:
        raise Http404 from exc
    response = FileResponse(handle, content_type=document.content_type, as_attachment=True, filename=f"kyc-{document.submission_id}-{document.kind}.{document.file.name.rsplit('.', 1)[-1]}")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
