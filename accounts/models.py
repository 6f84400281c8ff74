"""Accounts: the user (email login), KYC tier and freeze flag, and what hangs off a user —
two-factor devices and recovery codes, KYC submissions with their private documents, and API
keys. Secrets that must be read back (TOTP seeds, API-key secrets) are stored encrypted via
:mod:`accounts.crypto`; recovery codes are stored only as salted hashes."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.staff import staff_email_allowed
from accounts.storage import private_storage


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        email = self.normalize_email(email).lower()
        user = self.model(email=email, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    class KycTier(models.IntegerChoices):
        REGISTERED = 0, "Registered"
        EMAIL_VERIFIED = 1, "Email verified"
        IDENTITY_VERIFIED = 2, "Identity verified"
        ENHANCED = 3, "Enhanced"

    email = models.EmailField(unique=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    is_frozen = models.BooleanField(default=False, help_text="Frozen accounts can neither trade nor withdraw.")
    email_verified_at = models.DateTimeField(null=True, blank=True)
    kyc_tier = models.PositiveSmallIntegerField(choices=KycTier.choices, default=KycTier.REGISTERED)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]
        permissions = [
            ("freeze_user", "Can freeze and unfreeze accounts"),
            ("set_kyc_tier", "Can set a user's KYC tier"),
        ]

    def __str__(self) -> str:
        return self.email

    def _staff_violation(self) -> str | None:
        if (self.is_staff or self.is_superuser) and not staff_email_allowed(self.email):
            return f"{self.email} is not on the staff allow-list (KK99_STAFF_EMAILS); it cannot be staff or superuser."
        return None

    def clean(self) -> None:
        super().clean()
        self.email = (self.email or "").strip().lower()
        problem = self._staff_violation()
        if problem:
            raise ValidationError({"is_staff": problem})

    def save(self, *args, **kwargs) -> None:
        # The allow-list is enforced here, not only in forms: no code path (shell, admin,
        # createsuperuser, a data fix) can make a non-listed email a back-office account.
        # Saves that do not touch the staff flags (last_login, is_frozen …) stay possible for
        # an account whose email was later removed from the list.
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {"is_staff", "is_superuser", "email"} & set(update_fields):
            problem = self._staff_violation()
            if problem:
                raise ValidationError({"is_staff": problem})
        super().save(*args, **kwargs)

    def set_password(self, raw_password) -> None:
        # Noted for the post-save hook (accounts.apps): a changed password closes the user's
        # open WebSockets, whichever path changed it (service, admin, changepassword).
        super().set_password(raw_password)
        self._kk99_password_changed = True

    @property
    def totp_enabled(self) -> bool:
        try:
            return self.totp_device.confirmed_at is not None
        except ObjectDoesNotExist:
            return False


class TotpDevice(models.Model):
    """A user's TOTP seed. Exists unconfirmed between enrolment and the first valid code;
    ``last_used_step`` refuses a code (time step) that was already accepted once."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device")
    secret_encrypted = models.TextField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_used_step = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"TOTP for {self.user_id} ({'confirmed' if self.confirmed_at else 'pending'})"


class RecoveryCode(models.Model):
    """One single-use recovery code, stored as ``salt$sha256(salt + code)``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=128)
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class KycSubmission(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="kyc_submissions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    requested_tier = models.PositiveSmallIntegerField(choices=[(2, "Identity verified"), (3, "Enhanced")], default=2)
    full_name = models.CharField(max_length=200)
    date_of_birth = models.DateField()
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 country of residence.")
    address = models.TextField(max_length=500)
    id_number = models.CharField(max_length=64, help_text="Number of the identity document.")
    submitted_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="kyc_reviews")
    approved_tier = models.PositiveSmallIntegerField(null=True, blank=True)
    reject_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["submitted_at", "id"]
        permissions = [("review_kycsubmission", "Can approve or reject KYC submissions")]
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(status="pending"), name="kyc_one_pending_submission_per_user"),
            models.CheckConstraint(condition=Q(requested_tier__in=[2, 3]), name="kyc_requested_tier_2_or_3"),
        ]

    def __str__(self) -> str:
        return f"KYC #{self.pk} {self.user_id} {self.status}"


def kyc_upload_to(instance: KycDocument, filename: str) -> str:
    # The client's file name is never used: it could carry a path or a misleading extension.
    extension = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}.get(instance.content_type, "bin")
    return f"kyc/{instance.submission.user_id}/{uuid.uuid4().hex}.{extension}"


class KycDocument(models.Model):
    class Kind(models.TextChoices):
        ID_DOCUMENT = "id_document", "Identity document"
        SELFIE = "selfie", "Selfie holding the document"
        PROOF_OF_ADDRESS = "proof_of_address", "Proof of address"

    submission = models.ForeignKey(KycSubmission, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    file = models.FileField(storage=private_storage, upload_to=kyc_upload_to, max_length=200)
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["submission", "kind"], name="kyc_one_document_per_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of KYC #{self.submission_id}"


class ApiKey(models.Model):
    """A Binance-style API key. ``key`` is public (sent in X-MBX-APIKEY); the secret is
    stored encrypted and shown to the user exactly once, at creation."""

    class Permission(models.TextChoices):
        READ = "read", "Read"
        TRADE = "trade", "Trade"
        WITHDRAW = "withdraw", "Withdraw"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=64)
    key = models.CharField(max_length=64, unique=True)
    secret_encrypted = models.TextField()
    can_read = models.BooleanField(default=True)
    can_trade = models.BooleanField(default=False)
    can_withdraw = models.BooleanField(default=False)
    ip_allowlist = models.JSONField(default=list, blank=True, help_text="IP addresses or CIDR networks; empty = any.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.label} ({self.key[:8]}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def permissions(self) -> list[str]:
        return [name for name, flag in (("read", self.can_read), ("trade", self.can_trade), ("withdraw", self.can_withdraw)) if flag]

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions


from accounts.audit import AuditLog  # noqa: E402,F401  (model lives in audit.py, registered here)


class LoginDevice(models.Model):
    """Where an account signs in from, as a keyed hash only (accounts.devices): user agent,
    network (/24 or /48) and an optional app device id. One row per account and fingerprint."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="login_devices")
    fingerprint = models.CharField(max_length=64, db_index=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    logins = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "fingerprint"], name="login_device_unique")]

    def __str__(self) -> str:
        return f"device {self.fingerprint[:12]} of {self.user_id}"
