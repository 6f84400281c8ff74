"""Accounts: the user (email login), KYC tier and freeze flag."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


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

    def __str__(self) -> str:
        return self.email


from accounts.audit import AuditLog  # noqa: E402,F401  (model lives in audit.py, registered here)
