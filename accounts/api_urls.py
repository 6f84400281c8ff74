"""REST API v1 routes of the accounts app (namespace ``accounts-api``, under /api/v1/)."""
from django.urls import path

from accounts import apis

app_name = "accounts-api"
urlpatterns = [
    path("auth/register", apis.RegisterApi.as_view(), name="register"),
    path("auth/verify-email", apis.VerifyEmailApi.as_view(), name="verify-email"),
    path("auth/verify-email/resend", apis.VerifyEmailResendApi.as_view(), name="verify-email-resend"),
    path("auth/login", apis.LoginApi.as_view(), name="login"),
    path("auth/refresh", apis.RefreshApi.as_view(), name="refresh"),
    path("auth/logout", apis.LogoutApi.as_view(), name="logout"),
    path("auth/password-reset", apis.PasswordResetApi.as_view(), name="password-reset"),
    path("auth/password-reset/confirm", apis.PasswordResetConfirmApi.as_view(), name="password-reset-confirm"),
    path("auth/password-change", apis.PasswordChangeApi.as_view(), name="password-change"),
    path("me", apis.MeApi.as_view(), name="me"),
    path("2fa", apis.TotpStatusApi.as_view(), name="2fa"),
    path("2fa/setup", apis.TotpSetupApi.as_view(), name="2fa-setup"),
    path("2fa/confirm", apis.TotpConfirmApi.as_view(), name="2fa-confirm"),
    path("2fa/disable", apis.TotpDisableApi.as_view(), name="2fa-disable"),
    path("2fa/recovery-codes", apis.RecoveryCodesApi.as_view(), name="2fa-recovery-codes"),
    path("kyc", apis.KycApi.as_view(), name="kyc"),
    path("api-keys", apis.ApiKeysApi.as_view(), name="api-keys"),
    path("api-keys/<int:api_key_id>", apis.ApiKeyDetailApi.as_view(), name="api-key"),
]
