"""Accounts services: every state change of a user's security-relevant data.

Each business action is one transaction that changes state, writes its audit row and
schedules its email with ``transaction.on_commit``. Views and APIs validate input shape and
call these; the rules (who may do what, in which state) live here.

Used by other apps:

* :func:`totp_verify` — the withdrawal flow's second factor (accepts a recovery code too).
* :func:`user_freeze` / :func:`user_unfreeze` — back-office actions.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import string
import time
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.image.svg
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import update_last_login
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.views.decorators.debug import sensitive_variables
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import lockout, tokens
from accounts.audit import AuditAction, audit_record
from accounts.crypto import decrypt_text, encrypt_text
from accounts.emails import absolute_url, email_send
from accounts.errors import AccountsError, AccountsErrorCode
from accounts.devices import device_record
from accounts.models import ApiKey, KycDocument, KycSubmission, RecoveryCode, TotpDevice, User
from accounts.keycache import api_key_cache_invalidate
from accounts.sockets import user_sockets_close_on_commit
from accounts.uploads import upload_check
from accounts.validators import normalize_ip_allowlist
from kk99.errors import NotFound, PermissionDenied

logger = logging.getLogger(__name__)

TOTP_ISSUER = "KK99 Exchange"
TOTP_STEP_SECONDS = 30
TOTP_MAX_FAILURES = 5
TOTP_LOCK_SECONDS = 300
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
MAX_ACTIVE_API_KEYS = 30
_KEY_ALPHABET = string.ascii_letters + string.digits


def _weak_password(exc: ValidationError) -> AccountsError:
    return AccountsError(AccountsErrorCode.WEAK_PASSWORD, "The password is too weak.", problems=list(exc.messages))


def _refresh_tokens_revoke_all(*, user: User) -> None:
    """Blacklist every outstanding refresh token of ``user`` (after a password change)."""
    for outstanding in OutstandingToken.objects.filter(user=user):
        BlacklistedToken.objects.get_or_create(token=outstanding)


# --- Registration and email verification ----------------------------------------------------


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def user_register(*, email: str, password: str, request: HttpRequest | None = None) -> User | None:
    """Register ``email``; answer the same whether or not it already has an account.

    A new address gets an account (tier 0) and a verification link; an address that already
    has an account gets an email saying so (with sign-in and reset links) and nothing else
    changes. The caller shows one answer for both ("check your email"), so registration does
    not reveal which emails have accounts; the password is validated and hashed in both cases
    so the answers also take about as long. Returns the new user, or None."""
    email = (email or "").strip().lower()
    try:
        password_validation.validate_password(password, user=User(email=email))
    except ValidationError as exc:
        raise _weak_password(exc) from exc
    existing = User.objects.filter(email__iexact=email).first()
    if existing is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, password=password)
                audit_record(action=AuditAction.REGISTER, actor=user, target_user=user, target=f"user:{user.pk}", request=request)
                _schedule_verification_email(user=user, request=request)
            return user
        except IntegrityError:  # a concurrent registration of the same email won
            existing = User.objects.filter(email__iexact=email).first()
    make_password(password)  # the work a new account costs, so timing tells nothing either
    if existing is not None:
        with transaction.atomic():
            audit_record(action=AuditAction.REGISTER, target_user=existing, target=f"user:{existing.pk}", request=request, details={"outcome": "already_registered"})
            to = existing.email
            context = {"login_link": absolute_url(request, reverse("accounts:login")), "reset_link": absolute_url(request, reverse("accounts:password_reset"))}
            transaction.on_commit(lambda: email_send(to=to, subject="You already have an account", template="account_exists", context=context))
    return None


def _schedule_verification_email(*, user: User, request: HttpRequest | None) -> None:
    link = absolute_url(request, reverse("accounts:verify_email", args=[tokens.email_verification_token_make(user=user)]))
    to = user.email
    transaction.on_commit(lambda: email_send(to=to, subject="Verify your email", template="verify_email", context={"link": link}))


def email_verification_send(*, user: User, request: HttpRequest | None = None) -> None:
    if user.email_verified_at is not None:
        raise AccountsError(AccountsErrorCode.EMAIL_ALREADY_VERIFIED, "Your email address is already verified.", status=409)
    with transaction.atomic():
        _schedule_verification_email(user=user, request=request)


def email_verify(*, token: str, request: HttpRequest | None = None) -> User:
    """Mark the email verified and raise tier 0 to 1. Idempotent for an already verified user."""
    try:
        user_id, email = tokens.email_verification_token_read(token)
    except tokens.TokenExpired as exc:
        raise AccountsError(AccountsErrorCode.VERIFICATION_TOKEN_EXPIRED, "This verification link has expired; ask for a new one.") from exc
    except tokens.TokenInvalid as exc:
        raise AccountsError(AccountsErrorCode.INVALID_VERIFICATION_TOKEN, "This verification link is not valid.") from exc
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first()
        if user is None or user.email != email:
            raise AccountsError(AccountsErrorCode.INVALID_VERIFICATION_TOKEN, "This verification link is not valid.")
        if user.email_verified_at is not None:
            return user
        user.email_verified_at = timezone.now()
        fields = ["email_verified_at"]
        if user.kyc_tier < User.KycTier.EMAIL_VERIFIED:
            user.kyc_tier = User.KycTier.EMAIL_VERIFIED
            fields.append("kyc_tier")
        user.save(update_fields=fields)
        audit_record(action=AuditAction.EMAIL_VERIFIED, actor=user, target_user=user, target=f"user:{user.pk}", request=request, details={"kyc_tier": user.kyc_tier})
    return user


# --- Passwords ------------------------------------------------------------------------------


def password_reset_request(*, email: str, request: HttpRequest | None = None) -> None:
    """Email a reset link if an active account exists. Says nothing either way (no account
    enumeration); the caller answers the same in both cases."""
    user = User.objects.filter(email__iexact=(email or "").strip(), is_active=True).first()
    if user is None:
        return
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = absolute_url(request, reverse("accounts:password_reset_confirm", kwargs={"uidb64": uidb64, "token": token}))
    with transaction.atomic():
        audit_record(action=AuditAction.PASSWORD_RESET_REQUESTED, target_user=user, target=f"user:{user.pk}", request=request)
        to = user.email
        transaction.on_commit(lambda: email_send(to=to, subject="Reset your password", template="password_reset", context={"link": link, "uidb64": uidb64, "token": token}))


def password_reset_user(*, uidb64: str, token: str) -> User:
    """The user a reset link belongs to, if the link is still valid."""
    try:
        user = User.objects.get(pk=int(force_str(urlsafe_base64_decode(uidb64))), is_active=True)
    except (TypeError, ValueError, OverflowError, User.DoesNotExist) as exc:
        raise AccountsError(AccountsErrorCode.INVALID_RESET_LINK, "This password reset link is invalid or has expired.") from exc
    if not default_token_generator.check_token(user, token):
        raise AccountsError(AccountsErrorCode.INVALID_RESET_LINK, "This password reset link is invalid or has expired.")
    return user


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def password_reset_confirm(*, uidb64: str, token: str, new_password: str, request: HttpRequest | None = None) -> User:
    user = password_reset_user(uidb64=uidb64, token=token)
    try:
        password_validation.validate_password(new_password, user=user)
    except ValidationError as exc:
        raise _weak_password(exc) from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        _refresh_tokens_revoke_all(user=user)
        revoked = _api_keys_revoke_all(user=user, actor=user, request=request)
        audit_record(action=AuditAction.PASSWORD_RESET, actor=user, target_user=user, target=f"user:{user.pk}", request=request, details={"api_keys_revoked": revoked})
        to = user.email
        transaction.on_commit(lambda: email_send(to=to, subject="Your password was reset", template="password_reset_done", context={"api_keys_revoked": revoked}))
    return user


def _api_keys_revoke_all(*, user: User, actor: User, request: HttpRequest | None) -> int:
    """Revoke every active API key of ``user`` (a password reset: whoever had the account may
    have made keys). Returns how many; each is audited; key caches drop them after commit."""
    keys = list(ApiKey.objects.select_for_update().filter(user=user, revoked_at__isnull=True).order_by("pk"))
    now = timezone.now()
    for key in keys:
        key.revoked_at = now
        key.save(update_fields=["revoked_at"])
        audit_record(
            action=AuditAction.API_KEY_REVOKED, actor=actor, target_user=user, target=f"api_key:{key.pk}", request=request,
            details={"key_prefix": key.key[:8], "reason": "password_reset"},
        )
    if keys:
        transaction.on_commit(api_key_cache_invalidate)
        api_key_cache_invalidate()
    return len(keys)


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def password_change(*, user: User, old_password: str, new_password: str, request: HttpRequest | None = None) -> User:
    if not user.check_password(old_password):
        raise AccountsError(AccountsErrorCode.WRONG_PASSWORD, "The current password is not correct.")
    try:
        password_validation.validate_password(new_password, user=user)
    except ValidationError as exc:
        raise _weak_password(exc) from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        _refresh_tokens_revoke_all(user=user)
        audit_record(action=AuditAction.PASSWORD_CHANGED, actor=user, target_user=user, target=f"user:{user.pk}", request=request)
    return user


# --- Login and logout -----------------------------------------------------------------------


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def credentials_check(*, email: str, password: str, request: HttpRequest | None = None) -> User:
    """The first factor, for every password entry point (REST, HTML, admin). Audits a
    failure; raises ``invalid_credentials`` (401) for a wrong email, a wrong password or an
    inactive account alike, and ``login_locked`` (429, ``retry_after_seconds``) while the
    account is locked after repeated failures (:mod:`accounts.lockout`)."""
    email = (email or "").strip().lower()
    locked_for = lockout.login_lock_remaining(email=email)
    if locked_for:
        _login_failed_audit(email=email, reason="locked", request=request)
        raise _login_locked(locked_for)
    user = authenticate(request, email=email, password=password)
    if user is None:
        _login_failed_audit(email=email, reason="credentials", request=request)
        locked_for = lockout.login_failure_record(email=email)
        if locked_for:
            raise _login_locked(locked_for)
        raise AccountsError(AccountsErrorCode.INVALID_CREDENTIALS, "Email or password is not correct.", status=401)
    lockout.login_failures_clear(email=email)
    return user


def _login_failed_audit(*, email: str, reason: str, request: HttpRequest | None) -> None:
    known = User.objects.filter(email__iexact=email).first()
    audit_record(
        action=AuditAction.LOGIN_FAILED, target_user=known, target=f"user:{known.pk}" if known else "",
        request=request, details={"email": email[:254], "reason": reason},
    )


def _login_locked(seconds: int) -> AccountsError:
    return AccountsError(
        AccountsErrorCode.LOGIN_LOCKED, f"Too many failed sign-ins for this account; try again in {seconds} seconds.",
        status=429, retry_after_seconds=seconds,
    )


def second_factor_check(*, user: User, code: str | None, request: HttpRequest | None = None) -> None:
    """Require a valid TOTP (or recovery) code from a user with 2FA enabled; no-op otherwise."""
    if not user.totp_enabled:
        return
    if not code:
        raise AccountsError(AccountsErrorCode.TOTP_REQUIRED, "Two-factor authentication is enabled: send the 6-digit code.", status=403)
    if totp_locked(user=user):
        raise AccountsError(AccountsErrorCode.TOTP_LOCKED, "Too many wrong codes; try again in a few minutes.", status=429)
    if not totp_verify(user=user, code=code, request=request):
        raise AccountsError(AccountsErrorCode.INVALID_TOTP_CODE, "The two-factor code is not correct.", status=403)


def login_record(*, user: User, method: str, request: HttpRequest | None = None) -> None:
    device_record(user=user, request=request)
    audit_record(action=AuditAction.LOGIN, actor=user, target_user=user, target=f"user:{user.pk}", request=request, details={"method": method})


def login_failed_second_factor(*, user: User, request: HttpRequest | None = None) -> None:
    audit_record(action=AuditAction.LOGIN_FAILED, target_user=user, target=f"user:{user.pk}", request=request, details={"reason": "totp"})


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def jwt_login(*, email: str, password: str, otp: str | None, request: HttpRequest | None = None) -> dict[str, str]:
    """API login: both factors, then an access + refresh pair."""
    user = credentials_check(email=email, password=password, request=request)
    try:
        second_factor_check(user=user, code=otp, request=request)
    except AccountsError as exc:
        if exc.code != AccountsErrorCode.TOTP_REQUIRED:
            login_failed_second_factor(user=user, request=request)
        raise
    refresh = RefreshToken.for_user(user)
    update_last_login(None, user)
    login_record(user=user, method="jwt", request=request)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _invalid_refresh() -> AccountsError:
    return AccountsError(AccountsErrorCode.INVALID_REFRESH_TOKEN, "The refresh token is invalid, expired or already revoked.", status=401)


def jwt_refresh(*, refresh: str, request: HttpRequest | None = None) -> dict[str, str]:
    """Rotate a refresh token: a new access + refresh pair, the old refresh token blacklisted.

    Exactly one caller wins per refresh token. The token's outstanding row is locked
    (``SELECT … FOR UPDATE``) before the blacklist is written, so a concurrent refresh of the
    same token waits, then finds it blacklisted and is refused (simplejwt's own view checked
    the blacklist and wrote it in separate steps: two concurrent refreshes both got a pair)."""
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise _invalid_refresh() from exc
    jti, user_id = token.payload.get("jti"), token.payload.get("user_id")
    with transaction.atomic():
        # order_by(): the model orders by its nullable user, an outer join FOR UPDATE refuses.
        outstanding = OutstandingToken.objects.select_for_update().filter(jti=jti).order_by().first()
        if outstanding is None or str(outstanding.user_id) != str(user_id):
            raise _invalid_refresh()
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
        if not created:
            raise _invalid_refresh()
        user = User.objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            raise _invalid_refresh()
        rotated = RefreshToken.for_user(user)
    return {"access": str(rotated.access_token), "refresh": str(rotated)}


def jwt_logout(*, user: User, refresh: str, request: HttpRequest | None = None) -> None:
    """Blacklist the refresh token (it must be the caller's own)."""
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise AccountsError(AccountsErrorCode.INVALID_REFRESH_TOKEN, "The refresh token is invalid, expired or already revoked.", status=401) from exc
    if str(token.payload.get("user_id")) != str(user.pk):
        raise AccountsError(AccountsErrorCode.INVALID_REFRESH_TOKEN, "The refresh token is invalid, expired or already revoked.", status=401)
    with transaction.atomic():
        token.blacklist()
        audit_record(action=AuditAction.LOGOUT, actor=user, target_user=user, target=f"user:{user.pk}", request=request, details={"method": "jwt"})


def session_logout_record(*, user: User, request: HttpRequest | None = None) -> None:
    """Audit a browser logout and close the WebSockets opened in that session."""
    audit_record(action=AuditAction.LOGOUT, actor=user, target_user=user, target=f"user:{user.pk}", request=request, details={"method": "session"})
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        user_sockets_close_on_commit(user_id=user.pk, reason="logout", session_key=session_key)


# --- Two-factor authentication (TOTP) -------------------------------------------------------


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    provisioning_uri: str
    qr_data_uri: str  # an SVG QR code as a data: URI (CSP allows img data:)


def _qr_data_uri(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


def totp_setup_begin(*, user: User, regenerate: bool = False) -> TotpSetup:
    """Create (or reuse) the unconfirmed TOTP seed and return what the user scans."""
    if user.totp_enabled:
        raise AccountsError(AccountsErrorCode.TOTP_ALREADY_ENABLED, "Two-factor authentication is already enabled.", status=409)
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user).first()
        if device is None or regenerate:
            secret = pyotp.random_base32()
            device, _ = TotpDevice.objects.update_or_create(
                user=user, defaults={"secret_encrypted": encrypt_text(secret), "confirmed_at": None, "last_used_step": 0}
            )
        else:
            secret = decrypt_text(device.secret_encrypted)
    _forget_totp_cache(user)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return TotpSetup(secret=secret, provisioning_uri=uri, qr_data_uri=_qr_data_uri(uri))


def _clock() -> float:
    """Seconds since the epoch (tests pin it)."""
    return time.time()


def _forget_totp_cache(user: User) -> None:
    """Drop the cached reverse one-to-one so ``user.totp_enabled`` re-reads the device."""
    user._state.fields_cache.pop("totp_device", None)


def _match_totp(*, device: TotpDevice, code: str) -> int | None:
    """The time step ``code`` is valid for (±1 step of clock drift), if not used before."""
    # ASCII digits only: str.isdigit() also accepts other scripts' digits ("١٢٣٤٥٦"), which
    # made compare_digest raise TypeError (a 500 at login / 2FA / withdrawal).
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(decrypt_text(device.secret_encrypted))
    current = int(_clock() // TOTP_STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if step > device.last_used_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normalize_code(code: str | None) -> str:
    return "".join((code or "").split()).replace("-", "").lower()


def _recovery_hash(code: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + code).encode()).hexdigest()}"


def _recovery_matches(stored: str, code: str) -> bool:
    salt, _, _digest = stored.partition("$")
    return hmac.compare_digest(_recovery_hash(code, salt), stored)


def _recovery_codes_generate(*, user: User) -> list[str]:
    RecoveryCode.objects.filter(user=user).delete()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = get_random_string(12, _RECOVERY_ALPHABET)
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
        RecoveryCode.objects.create(user=user, code_hash=_recovery_hash(raw))
    return codes


def _failures_key(user: User) -> str:
    return f"accounts:totp-failures:{user.pk}"


def totp_locked(*, user: User) -> bool:
    return (cache.get(_failures_key(user)) or 0) >= TOTP_MAX_FAILURES


def _failure_count(user: User) -> None:
    key = _failures_key(user)
    if not cache.add(key, 1, TOTP_LOCK_SECONDS):
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, TOTP_LOCK_SECONDS)


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def totp_verify(*, user: User, code: str | None, request: HttpRequest | None = None) -> bool:
    """True if ``code`` is a current TOTP code (not replayed) or an unused recovery code of
    ``user``, whose 2FA must be enabled. A recovery code is consumed. After
    ``TOTP_MAX_FAILURES`` wrong codes in ``TOTP_LOCK_SECONDS`` every code is refused."""
    if totp_locked(user=user):
        return False
    normalized = _normalize_code(code)
    if not normalized:
        return False
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user, confirmed_at__isnull=False).first()
        if device is None:
            return False
        step = _match_totp(device=device, code=normalized)
        if step is not None:
            device.last_used_step = step
            device.save(update_fields=["last_used_step"])
            cache.delete(_failures_key(user))
            return True
        for recovery in RecoveryCode.objects.select_for_update().filter(user=user, used_at__isnull=True):
            if _recovery_matches(recovery.code_hash, normalized):
                recovery.used_at = timezone.now()
                recovery.save(update_fields=["used_at"])
                remaining = RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
                audit_record(action=AuditAction.RECOVERY_CODE_USED, actor=user, target_user=user, target=f"user:{user.pk}", request=request, details={"remaining": remaining})
                cache.delete(_failures_key(user))
                return True
    _failure_count(user)
    audit_record(action=AuditAction.TOTP_FAILED, target_user=user, target=f"user:{user.pk}", request=request)
    return False


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def totp_setup_confirm(*, user: User, code: str, request: HttpRequest | None = None) -> list[str]:
    """Enable 2FA with the first valid code; return the recovery codes (shown once)."""
    if user.totp_enabled:
        raise AccountsError(AccountsErrorCode.TOTP_ALREADY_ENABLED, "Two-factor authentication is already enabled.", status=409)
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user, confirmed_at__isnull=True).first()
        if device is None:
            raise AccountsError(AccountsErrorCode.TOTP_SETUP_NOT_STARTED, "Start the two-factor setup first.", status=409)
        step = _match_totp(device=device, code=_normalize_code(code))
        if step is None:
            raise AccountsError(AccountsErrorCode.INVALID_TOTP_CODE, "The two-factor code is not correct.", status=403)
        device.confirmed_at = timezone.now()
        device.last_used_step = step
        device.save(update_fields=["confirmed_at", "last_used_step"])
        codes = _recovery_codes_generate(user=user)
        audit_record(action=AuditAction.TOTP_ENABLED, actor=user, target_user=user, target=f"user:{user.pk}", request=request)
    _forget_totp_cache(user)
    return codes


def _require_code(*, user: User, code: str | None, request: HttpRequest | None) -> None:
    if not code:
        raise AccountsError(AccountsErrorCode.TOTP_REQUIRED, "Send your current two-factor code.", status=403)
    if totp_locked(user=user):
        raise AccountsError(AccountsErrorCode.TOTP_LOCKED, "Too many wrong codes; try again in a few minutes.", status=429)
    if not totp_verify(user=user, code=code, request=request):
        raise AccountsError(AccountsErrorCode.INVALID_TOTP_CODE, "The two-factor code is not correct.", status=403)


@sensitive_variables("password", "new_password", "old_password", "otp", "code")
def totp_disable(*, user: User, code: str, request: HttpRequest | None = None) -> None:
    if not user.totp_enabled:
        raise AccountsError(AccountsErrorCode.TOTP_NOT_ENABLED, "Two-factor authentication is not enabled.", status=409)
    _require_code(user=user, code=code, request=request)
    with transaction.atomic():
        TotpDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        audit_record(action=AuditAction.TOTP_DISABLED, actor=user, target_user=user, target=f"user:{user.pk}", request=request)
    _forget_totp_cache(user)


def recovery_codes_regenerate(*, user: User, code: str, request: HttpRequest | None = None) -> list[str]:
    if not user.totp_enabled:
        raise AccountsError(AccountsErrorCode.TOTP_NOT_ENABLED, "Two-factor authentication is not enabled.", status=409)
    _require_code(user=user, code=code, request=request)
    with transaction.atomic():
        codes = _recovery_codes_generate(user=user)
        audit_record(action=AuditAction.TOTP_ENABLED, actor=user, target_user=user, target=f"user:{user.pk}", request=request, details={"recovery_codes": "regenerated"})
    return codes


# --- KYC --------------------------------------------------------------------------------------

KYC_REQUIRED_DOCUMENTS = {
    2: (KycDocument.Kind.ID_DOCUMENT, KycDocument.Kind.SELFIE),
    3: (KycDocument.Kind.ID_DOCUMENT, KycDocument.Kind.SELFIE, KycDocument.Kind.PROOF_OF_ADDRESS),
}


def kyc_submit(
    *,
    user: User,
    full_name: str,
    date_of_birth,
    country: str,
    address: str,
    id_number: str,
    requested_tier: int,
    documents: dict,
    request: HttpRequest | None = None,
) -> KycSubmission:
    """File a KYC submission with its documents for staff review."""
    if user.email_verified_at is None:
        raise AccountsError(AccountsErrorCode.KYC_EMAIL_NOT_VERIFIED, "Verify your email address before identity verification.", status=403)
    if requested_tier not in KYC_REQUIRED_DOCUMENTS:
        raise AccountsError(AccountsErrorCode.KYC_INVALID_TIER, "You can apply for tier 2 or 3.")
    if user.kyc_tier >= requested_tier:
        raise AccountsError(AccountsErrorCode.KYC_ALREADY_AT_TIER, f"Your account is already at tier {user.kyc_tier}.", status=409)
    if KycSubmission.objects.filter(user=user, status=KycSubmission.Status.PENDING).exists():
        raise AccountsError(AccountsErrorCode.KYC_SUBMISSION_PENDING, "A submission is already waiting for review.", status=409)
    required = KYC_REQUIRED_DOCUMENTS[requested_tier]
    missing = [str(kind) for kind in required if not documents.get(str(kind))]
    if missing:
        raise AccountsError(AccountsErrorCode.KYC_DOCUMENT_MISSING, "Required documents are missing.", missing=missing)
    checked = {str(kind): upload_check(file=documents[str(kind)], field=str(kind)) for kind in required}
    saved: list[KycDocument] = []
    try:
        with transaction.atomic():
            submission = KycSubmission.objects.create(
                user=user, requested_tier=requested_tier, full_name=full_name.strip(), date_of_birth=date_of_birth,
                country=country.upper(), address=address.strip(), id_number=id_number.strip(),
            )
            for kind, upload in checked.items():
                document = KycDocument(submission=submission, kind=kind, content_type=upload.content_type, size=upload.size, sha256=upload.sha256)
                document.file.save("upload", upload.file, save=False)
                saved.append(document)
                document.save()
            audit_record(
                action=AuditAction.KYC_SUBMITTED, actor=user, target_user=user, target=f"kyc:{submission.pk}", request=request,
                details={"requested_tier": requested_tier, "documents": sorted(checked)},
            )
    except IntegrityError as exc:
        _delete_files(saved)
        raise AccountsError(AccountsErrorCode.KYC_SUBMISSION_PENDING, "A submission is already waiting for review.", status=409) from exc
    except BaseException:
        _delete_files(saved)
        raise
    return submission


def _delete_files(documents: list[KycDocument]) -> None:
    for document in documents:
        if document.file.name:
            document.file.storage.delete(document.file.name)


def _kyc_pending_locked(submission_id: int) -> KycSubmission:
    submission = KycSubmission.objects.select_for_update().filter(pk=submission_id).first()
    if submission is None:
        raise NotFound("No such KYC submission.")
    if submission.status != KycSubmission.Status.PENDING:
        raise AccountsError(AccountsErrorCode.KYC_NOT_PENDING, "This submission has already been decided.", status=409)
    return submission


def _refuse_self_review(submission: KycSubmission, reviewer: User) -> None:
    if submission.user_id == reviewer.pk:
        raise PermissionDenied("Staff may not review their own KYC submission.")


def kyc_approve(*, submission_id: int, tier: int, reviewer: User, request: HttpRequest | None = None) -> KycSubmission:
    """Approve a pending submission at ``tier`` (2 or 3); the user's tier never goes down."""
    if tier not in (2, 3):
        raise AccountsError(AccountsErrorCode.KYC_INVALID_TIER, "Approve at tier 2 or 3.")
    with transaction.atomic():
        submission = _kyc_pending_locked(submission_id)
        _refuse_self_review(submission, reviewer)
        user = User.objects.select_for_update().get(pk=submission.user_id)
        submission.status = KycSubmission.Status.APPROVED
        submission.approved_tier = tier
        submission.reviewed_by = reviewer
        submission.reviewed_at = timezone.now()
        submission.save(update_fields=["status", "approved_tier", "reviewed_by", "reviewed_at"])
        previous = user.kyc_tier
        user.kyc_tier = max(user.kyc_tier, tier)
        user.save(update_fields=["kyc_tier"])
        audit_record(
            action=AuditAction.KYC_APPROVED, actor=reviewer, target_user=user, target=f"kyc:{submission.pk}", request=request,
            details={"tier": tier, "previous_tier": previous},
        )
        to, label = user.email, user.get_kyc_tier_display()
        transaction.on_commit(lambda: email_send(to=to, subject="Identity verification approved", template="kyc_approved", context={"tier": tier, "label": label}))
    return submission


def kyc_reject(*, submission_id: int, reason: str, reviewer: User, request: HttpRequest | None = None) -> KycSubmission:
    reason = (reason or "").strip()
    if not reason:
        raise AccountsError(AccountsErrorCode.KYC_REJECT_REASON_REQUIRED, "Give the user a reason for the rejection.")
    with transaction.atomic():
        submission = _kyc_pending_locked(submission_id)
        _refuse_self_review(submission, reviewer)
        submission.status = KycSubmission.Status.REJECTED
        submission.reject_reason = reason[:2000]
        submission.reviewed_by = reviewer
        submission.reviewed_at = timezone.now()
        submission.save(update_fields=["status", "reject_reason", "reviewed_by", "reviewed_at"])
        audit_record(
            action=AuditAction.KYC_REJECTED, actor=reviewer, target_user=submission.user, target=f"kyc:{submission.pk}", request=request,
            details={"reason": submission.reject_reason},
        )
        to, text = submission.user.email, submission.reject_reason
        transaction.on_commit(lambda: email_send(to=to, subject="Identity verification rejected", template="kyc_rejected", context={"reason": text}))
    return submission


def kyc_document_open(*, document_id: int, staff: User, request: HttpRequest | None = None):
    """Open a KYC document for a staff member (the permission is the view's check); audited."""
    document = KycDocument.objects.select_related("submission__user").filter(pk=document_id).first()
    if document is None:
        raise NotFound("No such document.")
    handle = document.file.storage.open(document.file.name, "rb")
    audit_record(
        action=AuditAction.KYC_DOCUMENT_VIEWED, actor=staff, target_user=document.submission.user,
        target=f"kyc_document:{document.pk}", request=request, details={"kind": document.kind, "submission": document.submission_id},
    )
    return document, handle


# --- Staff actions on users -----------------------------------------------------------------


def _refuse_self_action(*, user: User, actor: User | None, what: str) -> None:
    """A staff member never changes their own tier, frozen state or roles (a compliance
    officer must not raise their own limits or unfreeze themselves)."""
    if actor is not None and getattr(actor, "pk", None) == user.pk:
        raise AccountsError(AccountsErrorCode.STAFF_SELF_ACTION, f"Staff may not change their own {what}.", status=403)


def user_freeze(*, user: User, actor: User | None, reason: str = "", request: HttpRequest | None = None) -> bool:
    """Freeze ``user`` (no trading, no withdrawals). Returns False if already frozen."""
    _refuse_self_action(user=user, actor=actor, what="frozen state")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_frozen:
            return False
        locked.is_frozen = True
        locked.save(update_fields=["is_frozen"])
        audit_record(action=AuditAction.ACCOUNT_FROZEN, actor=actor, target_user=locked, target=f"user:{locked.pk}", request=request, details={"reason": reason})
    user.is_frozen = True
    return True


def user_unfreeze(*, user: User, actor: User | None, reason: str = "", request: HttpRequest | None = None) -> bool:
    _refuse_self_action(user=user, actor=actor, what="frozen state")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if not locked.is_frozen:
            return False
        locked.is_frozen = False
        locked.save(update_fields=["is_frozen"])
        audit_record(action=AuditAction.ACCOUNT_UNFROZEN, actor=actor, target_user=locked, target=f"user:{locked.pk}", request=request, details={"reason": reason})
    user.is_frozen = False
    return True


def user_set_kyc_tier(*, user: User, tier: int, actor: User, request: HttpRequest | None = None) -> bool:
    if tier not in User.KycTier.values:
        raise AccountsError(AccountsErrorCode.KYC_INVALID_TIER, "The tier must be 0, 1, 2 or 3.")
    _refuse_self_action(user=user, actor=actor, what="KYC tier")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.kyc_tier == tier:
            return False
        previous = locked.kyc_tier
        locked.kyc_tier = tier
        locked.save(update_fields=["kyc_tier"])
        audit_record(action=AuditAction.KYC_TIER_CHANGED, actor=actor, target_user=locked, target=f"user:{locked.pk}", request=request, details={"tier": tier, "previous_tier": previous})
    user.kyc_tier = tier
    return True


# --- API keys -----------------------------------------------------------------------------


@sensitive_variables("secret", "otp")
def api_key_create(
    *,
    user: User,
    label: str,
    permissions: list[str],
    ip_allowlist: list[str] | None = None,
    otp: str | None = None,
    request: HttpRequest | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return it with its secret, which is never retrievable again.
    Users with 2FA must send a current code. ``read`` is always granted."""
    valid = {choice.value for choice in ApiKey.Permission}
    unknown = sorted(set(permissions) - valid)
    if unknown:
        raise AccountsError(AccountsErrorCode.INVALID_API_KEY_PERMISSION, "Unknown permission.", unknown=unknown, allowed=sorted(valid))
    try:
        networks = normalize_ip_allowlist(list(ip_allowlist or []))
    except ValueError as exc:
        raise AccountsError(AccountsErrorCode.INVALID_IP_ALLOWLIST, str(exc)) from exc
    label = (label or "").strip()[:64] or "API key"
    if user.totp_enabled:
        _require_code(user=user, code=otp, request=request)
    secret = get_random_string(64, _KEY_ALPHABET)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # serialise the count check per user
        if ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_API_KEYS:
            raise AccountsError(AccountsErrorCode.API_KEY_LIMIT_REACHED, f"At most {MAX_ACTIVE_API_KEYS} active API keys.", status=409)
        api_key = ApiKey.objects.create(
            user=user, label=label, key=get_random_string(64, _KEY_ALPHABET), secret_encrypted=encrypt_text(secret),
            can_read=True, can_trade="trade" in permissions, can_withdraw="withdraw" in permissions, ip_allowlist=networks,
        )
        audit_record(
            action=AuditAction.API_KEY_CREATED, actor=user, target_user=user, target=f"api_key:{api_key.pk}", request=request,
            details={"label": label, "permissions": api_key.permissions, "ip_allowlist": networks, "key_prefix": api_key.key[:8]},
        )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey, actor: User, request: HttpRequest | None = None) -> ApiKey:
    """Revoke ``api_key`` (the caller checked it is the actor's own, or the actor is staff).
    Idempotent: revoking a revoked key changes nothing and writes no audit row."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update(of=("self",)).select_related("user").get(pk=api_key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            audit_record(
                action=AuditAction.API_KEY_REVOKED, actor=actor, target_user=locked.user, target=f"api_key:{locked.pk}",
                request=request, details={"key_prefix": locked.key[:8]},
            )
            # Signed-request key cache (accounts.signing): this process at once, the others via
            # the shared cache version — after commit, and once more now for this process.
            transaction.on_commit(api_key_cache_invalidate)
            api_key_cache_invalidate()
            user_sockets_close_on_commit(user_id=locked.user_id, reason="api_key_revoked")
    return locked


def api_key_secret(*, api_key: ApiKey) -> str:
    """The clear secret, for HMAC verification only (never for display)."""
    return decrypt_text(api_key.secret_encrypted)


API_KEY_TOUCH_SECONDS = 60


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most one write per key per minute."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() >= API_KEY_TOUCH_SECONDS:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
