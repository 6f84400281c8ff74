"""API input and output shapes. Input serializers validate shape only; services decide."""
from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiKey, KycDocument, KycSubmission
from accounts.validators import validate_adult_date_of_birth, validate_country_code


def _django_validator(func):
    def run(value):
        from django.core.exceptions import ValidationError as DjangoValidationError

        try:
            func(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    return run


# --- auth ---


class RegisterInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class VerifyEmailInput(serializers.Serializer):
    token = serializers.CharField(max_length=500)


class LoginInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    otp = serializers.CharField(max_length=32, required=False, allow_blank=True, help_text="TOTP or recovery code; required when 2FA is enabled.")


class TokenPairOutput(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LogoutInput(serializers.Serializer):
    refresh = serializers.CharField(max_length=2000)


class RefreshInput(serializers.Serializer):
    refresh = serializers.CharField(max_length=2000)


class PasswordResetInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmInput(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class PasswordChangeInput(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class DetailOutput(serializers.Serializer):
    detail = serializers.CharField()


# --- profile ---


class LimitsOutput(serializers.Serializer):
    tier = serializers.IntegerField()
    label = serializers.CharField()
    daily_withdrawal_usdt = serializers.DecimalField(max_digits=30, decimal_places=2, coerce_to_string=True)
    max_order_notional_usdt = serializers.DecimalField(max_digits=30, decimal_places=2, coerce_to_string=True)
    can_trade = serializers.BooleanField()


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    email_verified = serializers.BooleanField()
    kyc_tier = serializers.IntegerField()
    is_frozen = serializers.BooleanField()
    totp_enabled = serializers.BooleanField()
    can_trade = serializers.BooleanField()
    can_withdraw = serializers.BooleanField()
    limits = LimitsOutput()
    date_joined = serializers.DateTimeField()


# --- 2FA ---


class TotpSetupInput(serializers.Serializer):
    regenerate = serializers.BooleanField(required=False, default=False, help_text="Discard the pending secret and make a new one.")


class TotpSetupOutput(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32 secret, for manual entry.")
    provisioning_uri = serializers.CharField(help_text="otpauth:// URI.")
    qr_data_uri = serializers.CharField(help_text="SVG QR code as a data: URI.")


class TotpCodeInput(serializers.Serializer):
    code = serializers.CharField(max_length=32)


class RecoveryCodesOutput(serializers.Serializer):
    recovery_codes = serializers.ListField(child=serializers.CharField(), help_text="Shown once; each works once.")


class TotpStatusOutput(serializers.Serializer):
    enabled = serializers.BooleanField()
    recovery_codes_remaining = serializers.IntegerField()


# --- KYC ---


class KycDocumentOutput(serializers.ModelSerializer):
    class Meta:
        model = KycDocument
        fields = ["id", "kind", "content_type", "size", "uploaded_at"]


class KycSubmissionOutput(serializers.ModelSerializer):
    documents = KycDocumentOutput(many=True, read_only=True)

    class Meta:
        model = KycSubmission
        fields = ["id", "status", "requested_tier", "approved_tier", "reject_reason", "full_name", "country", "submitted_at", "reviewed_at", "documents"]


class KycStatusOutput(serializers.Serializer):
    kyc_tier = serializers.IntegerField()
    limits = LimitsOutput()
    latest_submission = KycSubmissionOutput(allow_null=True)


# Blank (or whitespace-only, trimmed to blank) text is refused; the schema says so as a pattern.
_NOT_BLANK = RegexValidator(r"\S", "This field may not be blank.")


@extend_schema_field({"type": "string", "format": "binary"})
class UploadField(serializers.FileField):
    """A document upload: a file part of the multipart body (the schema says ``binary``)."""


@extend_schema_field({"type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2, e.g. DE."})
class CountryCodeField(serializers.CharField):
    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=2, min_length=2, validators=[_django_validator(validate_country_code)], **kwargs)


class KycSubmitInput(serializers.Serializer):
    requested_tier = serializers.ChoiceField(choices=[2, 3], default=2)
    full_name = serializers.CharField(min_length=1, max_length=200, validators=[_NOT_BLANK])
    date_of_birth = serializers.DateField(
        validators=[_django_validator(validate_adult_date_of_birth)], help_text="At least 18 years and at most 130 years ago."
    )
    country = CountryCodeField()
    address = serializers.CharField(min_length=1, max_length=500, validators=[_NOT_BLANK])
    id_number = serializers.CharField(min_length=1, max_length=64, validators=[_NOT_BLANK])
    id_document = UploadField(help_text="JPEG, PNG or PDF (checked by content), at most the upload limit.")
    selfie = UploadField(help_text="JPEG, PNG or PDF (checked by content), at most the upload limit.")
    proof_of_address = UploadField(required=False, help_text="JPEG, PNG or PDF; required for tier 3.")


# --- API keys ---


class ApiKeyOutput(serializers.ModelSerializer):
    permissions = serializers.ListField(child=serializers.CharField(), read_only=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "label", "key", "permissions", "ip_allowlist", "created_at", "last_used_at", "revoked_at", "is_active"]


class ApiKeyCreatedOutput(ApiKeyOutput):
    secret = serializers.CharField(help_text="Shown once, never again.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "secret"]


class ApiKeyCreateInput(serializers.Serializer):
    label = serializers.CharField(max_length=64)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.Permission.choices), default=list, max_length=3,
        help_text="read is always granted; add trade and/or withdraw.",
    )
    ip_allowlist = serializers.ListField(child=serializers.CharField(max_length=64), default=list, max_length=30)
    otp = serializers.CharField(max_length=32, required=False, allow_blank=True, help_text="Required when 2FA is enabled.")

