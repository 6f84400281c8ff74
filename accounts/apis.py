"""REST API v1 of the accounts app (mounted at /api/v1/, namespace ``accounts-api``).

Views validate the input's shape with a serializer and call one service; every refusal is a
:class:`kk99.errors.KK99Error` rendered by the project's exception handler. Account-management
endpoints (2FA, API keys, KYC, password, logout) refuse API-key authentication: a leaked
trading key must not be able to mint more keys or switch 2FA off."""
from __future__ import annotations

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts import serializers as s
from accounts.models import ApiKey, RecoveryCode
from accounts.permissions import HasReadPermission
from accounts.throttling import ScopedRateThrottle
from kk99.errors import PermissionDenied

ErrorOutput = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorBody",
            fields={"code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.JSONField(required=False)},
        )
    },
)


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorOutput, description="Error; see `error.code`.") for code in statuses}


class NotApiKey(BasePermission):
    """Account management needs a session or JWT, never an API key."""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            raise PermissionDenied("API keys cannot manage the account; sign in instead.")
        return bool(request.user and request.user.is_authenticated)


ACCOUNT = [IsAuthenticated, NotApiKey]


def me_payload(user) -> dict:
    limits = selectors.kyc_limits(user=user)
    return {
        "id": user.pk,
        "email": user.email,
        "email_verified": user.email_verified_at is not None,
        "kyc_tier": user.kyc_tier,
        "is_frozen": user.is_frozen,
        "totp_enabled": user.totp_enabled,
        "can_trade": selectors.user_can_trade(user=user),
        "can_withdraw": selectors.user_can_withdraw(user=user),
        "limits": limits,
        "date_joined": user.date_joined,
    }


REGISTER_ANSWER = "Check your email: we sent you a message to finish signing up."


class _Scoped(APIView):
    throttle_classes = [ScopedRateThrottle]


# --- auth -------------------------------------------------------------------------------


@method_decorator(sensitive_post_parameters(), name="dispatch")
class RegisterApi(_Scoped):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "register"

    @extend_schema(tags=["auth"], request=s.RegisterInput, responses={202: s.DetailOutput, **errors(400, 429)},
                   summary="Register; the answer is the same for new and existing emails (the email says which)")
    def post(self, request):
        data = s.RegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_register(request=request, **data.validated_data)
        return Response({"detail": REGISTER_ANSWER}, status=status.HTTP_202_ACCEPTED)


class VerifyEmailApi(_Scoped):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "register"

    @extend_schema(tags=["auth"], request=s.VerifyEmailInput, responses={200: s.MeOutput, **errors(400, 429)},
                   summary="Verify the email address with the token from the link (tier 0 → 1)")
    def post(self, request):
        data = s.VerifyEmailInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.email_verify(token=data.validated_data["token"], request=request)
        return Response(s.MeOutput(me_payload(user)).data)


class VerifyEmailResendApi(_Scoped):
    permission_classes = ACCOUNT
    throttle_scope = "register"

    @extend_schema(tags=["auth"], request=None, responses={202: s.DetailOutput, **errors(401, 409, 429)}, summary="Email a new verification link")
    def post(self, request):
        services.email_verification_send(user=request.user, request=request)
        return Response({"detail": "A verification link is on its way."}, status=status.HTTP_202_ACCEPTED)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class LoginApi(_Scoped):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "login"

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        retry = getattr(exc, "details", {}).get("retry_after_seconds") if isinstance(getattr(exc, "details", None), dict) else None
        if retry:
            response["Retry-After"] = str(retry)
        return response

    @extend_schema(
        tags=["auth"], request=s.LoginInput, responses={200: s.TokenPairOutput, **errors(400, 401, 403, 429)},
        summary="Log in: JWT access + refresh",
        description=(
            "With 2FA enabled, send `otp` too; without it the answer is 403 `totp_required`. After repeated failures "
            "the account's password sign-in is locked for a growing time: 429 `login_locked` with `Retry-After`."
        ),
    )
    def post(self, request):
        data = s.LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = services.jwt_login(request=request, email=data.validated_data["email"], password=data.validated_data["password"], otp=data.validated_data.get("otp"))
        return Response(tokens)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class RefreshApi(_Scoped):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "login"

    @extend_schema(tags=["auth"], request=s.RefreshInput, summary="Rotate the refresh token (the old one is blacklisted; one winner under concurrency)",
                   responses={200: s.TokenPairOutput, **errors(400, 401, 429)})
    def post(self, request):
        data = s.RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(services.jwt_refresh(refresh=data.validated_data["refresh"], request=request))


class LogoutApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["auth"], request=s.LogoutInput, responses={204: None, **errors(400, 401)}, summary="Log out: blacklist the refresh token")
    def post(self, request):
        data = s.LogoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.jwt_logout(user=request.user, refresh=data.validated_data["refresh"], request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetApi(_Scoped):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "password_reset"

    @extend_schema(tags=["auth"], request=s.PasswordResetInput, responses={202: s.DetailOutput, **errors(400, 429)},
                   summary="Email a password reset link (same answer whether or not the account exists)")
    def post(self, request):
        data = s.PasswordResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request(email=data.validated_data["email"], request=request)
        return Response({"detail": "If an account exists for this email, a reset link is on its way."}, status=status.HTTP_202_ACCEPTED)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class PasswordResetConfirmApi(_Scoped):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "password_reset"

    @extend_schema(tags=["auth"], request=s.PasswordResetConfirmInput, responses={200: s.DetailOutput, **errors(400, 429)},
                   summary="Set a new password with the uid and token from the reset link")
    def post(self, request):
        data = s.PasswordResetConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(uidb64=data.validated_data["uid"], token=data.validated_data["token"], new_password=data.validated_data["new_password"], request=request)
        return Response({"detail": "Password changed. Sign in with the new password."})


@method_decorator(sensitive_post_parameters(), name="dispatch")
class PasswordChangeApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["auth"], request=s.PasswordChangeInput, responses={200: s.DetailOutput, **errors(400, 401)},
                   summary="Change the password (every refresh token is revoked)")
    def post(self, request):
        data = s.PasswordChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_change(user=request.user, request=request, **data.validated_data)
        return Response({"detail": "Password changed."})


# --- profile ----------------------------------------------------------------------------


class MeApi(APIView):
    permission_classes = [IsAuthenticated, HasReadPermission]

    @extend_schema(tags=["profile"], responses={200: s.MeOutput, **errors(401, 403)}, summary="The signed-in user, tier and limits")
    def get(self, request):
        return Response(s.MeOutput(me_payload(request.user)).data)


# --- 2FA --------------------------------------------------------------------------------


class TotpStatusApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["2fa"], responses={200: s.TotpStatusOutput, **errors(401, 403)}, summary="Two-factor status")
    def get(self, request):
        remaining = RecoveryCode.objects.filter(user=request.user, used_at__isnull=True).count()
        return Response({"enabled": request.user.totp_enabled, "recovery_codes_remaining": remaining})


class TotpSetupApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["2fa"], request=s.TotpSetupInput, responses={200: s.TotpSetupOutput, **errors(401, 403, 409)},
                   summary="Start enrolment: secret, otpauth URI and QR code")
    def post(self, request):
        data = s.TotpSetupInput(data=request.data)
        data.is_valid(raise_exception=True)
        setup = services.totp_setup_begin(user=request.user, regenerate=data.validated_data["regenerate"])
        return Response({"secret": setup.secret, "provisioning_uri": setup.provisioning_uri, "qr_data_uri": setup.qr_data_uri})


@method_decorator(sensitive_post_parameters(), name="dispatch")
class TotpConfirmApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["2fa"], request=s.TotpCodeInput, responses={200: s.RecoveryCodesOutput, **errors(400, 401, 403, 409)},
                   summary="Confirm enrolment with a code; returns 10 recovery codes (once)")
    def post(self, request):
        data = s.TotpCodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        codes = services.totp_setup_confirm(user=request.user, code=data.validated_data["code"], request=request)
        return Response({"recovery_codes": codes})


@method_decorator(sensitive_post_parameters(), name="dispatch")
class TotpDisableApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["2fa"], request=s.TotpCodeInput, responses={204: None, **errors(400, 401, 403, 409, 429)},
                   summary="Disable 2FA with a current code or a recovery code")
    def post(self, request):
        data = s.TotpCodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.totp_disable(user=request.user, code=data.validated_data["code"], request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class RecoveryCodesApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["2fa"], request=s.TotpCodeInput, responses={200: s.RecoveryCodesOutput, **errors(400, 401, 403, 409, 429)},
                   summary="Replace the recovery codes (needs a current code)")
    def post(self, request):
        data = s.TotpCodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        codes = services.recovery_codes_regenerate(user=request.user, code=data.validated_data["code"], request=request)
        return Response({"recovery_codes": codes})


# --- KYC --------------------------------------------------------------------------------


class KycApi(APIView):
    permission_classes = ACCOUNT
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(tags=["kyc"], responses={200: s.KycStatusOutput, **errors(401, 403)}, summary="KYC tier, limits and latest submission")
    def get(self, request):
        latest = selectors.kyc_submission_latest(user=request.user)
        return Response({
            "kyc_tier": request.user.kyc_tier,
            "limits": s.LimitsOutput(selectors.kyc_limits(user=request.user)).data,
            "latest_submission": s.KycSubmissionOutput(latest).data if latest else None,
        })

    @extend_schema(tags=["kyc"], request={"multipart/form-data": s.KycSubmitInput},
                   responses={201: s.KycSubmissionOutput, **errors(400, 401, 403, 409, 413, 415)},
                   summary="Submit personal data and documents (JPEG/PNG/PDF) for review")
    def post(self, request):
        data = s.KycSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        documents = {kind: values.pop(kind, None) for kind in ("id_document", "selfie", "proof_of_address")}
        submission = services.kyc_submit(user=request.user, documents=documents, request=request, **values)
        return Response(s.KycSubmissionOutput(submission).data, status=status.HTTP_201_CREATED)


# --- API keys ---------------------------------------------------------------------------


class ApiKeyPagination(CursorPagination):
    ordering = "-id"


ApiKeyPage = inline_serializer(
    name="ApiKeyPage",
    fields={
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": s.ApiKeyOutput(many=True),
    },
)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class ApiKeysApi(APIView):
    permission_classes = ACCOUNT
    parser_classes = [JSONParser, FormParser]

    @extend_schema(tags=["api-keys"], operation_id="api_keys_list", responses={200: ApiKeyPage, **errors(401, 403)}, summary="The user's API keys (never secrets)")
    def get(self, request):
        paginator = ApiKeyPagination()
        page = paginator.paginate_queryset(selectors.api_key_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(s.ApiKeyOutput(page, many=True).data)

    @extend_schema(tags=["api-keys"], request=s.ApiKeyCreateInput, responses={201: s.ApiKeyCreatedOutput, **errors(400, 401, 403, 409, 429)},
                   summary="Create an API key; the secret is in this answer only")
    def post(self, request):
        data = s.ApiKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(user=request.user, request=request, **data.validated_data)
        body = s.ApiKeyOutput(api_key).data
        body["secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    permission_classes = ACCOUNT

    @extend_schema(tags=["api-keys"], responses={200: s.ApiKeyOutput, **errors(401, 403, 404)}, summary="One of the user's API keys")
    def get(self, request, api_key_id: int):
        return Response(s.ApiKeyOutput(selectors.api_key_get(user=request.user, api_key_id=api_key_id)).data)

    @extend_schema(tags=["api-keys"], responses={204: None, **errors(401, 403, 404)}, summary="Revoke the key (immediately unusable)")
    def delete(self, request, api_key_id: int):
        api_key = selectors.api_key_get(user=request.user, api_key_id=api_key_id)
        services.api_key_revoke(api_key=api_key, actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
