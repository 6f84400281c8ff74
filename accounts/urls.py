"""Browser routes of the accounts app (namespace ``accounts``), mounted at the site root."""
from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.home, name="home"),
    path("register/", views.register, name="register"),
    path("login/", views.login_view, name="login"),
    path("login/2fa/", views.login_2fa, name="login_2fa"),
    path("logout/", views.logout_view, name="logout"),
    path("verify-email/resend/", views.verify_email_resend, name="verify_email_resend"),
    path("verify-email/<str:token>/", views.verify_email, name="verify_email"),
    path("password-reset/", views.password_reset, name="password_reset"),
    path("password-reset/<str:uidb64>/<str:token>/", views.password_reset_confirm, name="password_reset_confirm"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("security/", views.security, name="security"),
    path("security/2fa/confirm/", views.security_2fa_confirm, name="2fa_confirm"),
    path("security/2fa/disable/", views.security_2fa_disable, name="2fa_disable"),
    path("security/2fa/recovery-codes/", views.security_recovery_codes, name="2fa_recovery_codes"),
    path("security/password/", views.security_password, name="password_change"),
    path("api-keys/", views.api_keys, name="api_keys"),
    path("api-keys/<int:api_key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("kyc/", views.kyc, name="kyc"),
    path("backoffice/kyc-documents/<int:document_id>/", views.kyc_document, name="kyc_document"),
]
