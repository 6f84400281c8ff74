import pytest

from accounts import services
from accounts.audit import AuditAction, AuditLog
from accounts.models import RecoveryCode, TotpDevice

pytestmark = pytest.mark.django_db


def test_setup_returns_secret_uri_and_inline_qr_image(jwt_client):
    response = jwt_client.post("/api/v1/2fa/setup", {}, format="json")
    body = response.json()
    assert response.status_code == 200
    assert body["qr_data_uri"].startswith("data:image/svg+xml;base64,")
    assert body["provisioning_uri"].startswith("otpauth://totp/") and body["secret"] in body["provisioning_uri"]


def test_secret_is_encrypted_at_rest(user):
    setup = services.totp_setup_begin(user=user)
    stored = TotpDevice.objects.get(user=user).secret_encrypted
    assert setup.secret not in stored
    assert services.decrypt_text(stored) == setup.secret


def test_setup_reuses_the_pending_secret_until_regenerated(user):
    first = services.totp_setup_begin(user=user)
    assert services.totp_setup_begin(user=user).secret == first.secret
    assert services.totp_setup_begin(user=user, regenerate=True).secret != first.secret


def test_confirm_with_wrong_code_does_not_enable(jwt_client, user):
    jwt_client.post("/api/v1/2fa/setup", {}, format="json")
    response = jwt_client.post("/api/v1/2fa/confirm", {"code": "123456"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "invalid_totp_code"
    user.refresh_from_db()
    assert not user.totp_enabled and not RecoveryCode.objects.filter(user=user).exists()


def test_confirm_before_setup_is_a_clear_409(jwt_client):
    response = jwt_client.post("/api/v1/2fa/confirm", {"code": "123456"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "totp_setup_not_started"


def test_confirm_enables_and_returns_ten_hashed_recovery_codes(jwt_client, user, clock):
    secret = jwt_client.post("/api/v1/2fa/setup", {}, format="json").json()["secret"]
    response = jwt_client.post("/api/v1/2fa/confirm", {"code": clock.code(secret)}, format="json")
    codes = response.json()["recovery_codes"]
    assert response.status_code == 200 and len(codes) == 10 and len(set(codes)) == 10
    stored = list(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert len(stored) == 10 and not any(code.replace("-", "") in h or code in h for code in codes for h in stored)
    assert jwt_client.get("/api/v1/2fa").json() == {"enabled": True, "recovery_codes_remaining": 10}
    assert AuditLog.objects.filter(action=AuditAction.TOTP_ENABLED, target_user=user).exists()


def test_totp_verify_accepts_a_code_once_refusing_replay(user, enable_totp, clock):
    secret, _ = enable_totp(user)
    code = clock.code(secret)
    assert services.totp_verify(user=user, code=code) is True
    assert services.totp_verify(user=user, code=code) is False
    clock.step()
    assert services.totp_verify(user=user, code=clock.code(secret)) is True


def test_totp_verify_refuses_codes_outside_the_drift_window(user, enable_totp, clock):
    secret, _ = enable_totp(user)
    assert services.totp_verify(user=user, code=clock.code(secret, 3)) is False


def test_recovery_code_works_exactly_once_and_is_audited(user, enable_totp):
    _, codes = enable_totp(user)
    assert services.totp_verify(user=user, code=codes[0].upper()) is True
    assert services.totp_verify(user=user, code=codes[0]) is False
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=True).count() == 9
    assert AuditLog.objects.filter(action=AuditAction.RECOVERY_CODE_USED, target_user=user).count() == 1


def test_totp_verify_is_false_without_2fa(user):
    assert services.totp_verify(user=user, code="123456") is False


def test_five_wrong_codes_lock_out_even_the_right_one(user, enable_totp, clock):
    secret, _ = enable_totp(user)
    for _ in range(services.TOTP_MAX_FAILURES):
        assert services.totp_verify(user=user, code="000000") is False
    assert services.totp_verify(user=user, code=clock.code(secret)) is False
    assert AuditLog.objects.filter(action=AuditAction.TOTP_FAILED, target_user=user).count() == services.TOTP_MAX_FAILURES


def test_disable_requires_a_valid_code(jwt_client, user, enable_totp, clock):
    secret, _ = enable_totp(user)
    refused = jwt_client.post("/api/v1/2fa/disable", {"code": "000000"}, format="json")
    assert refused.status_code == 403
    assert TotpDevice.objects.filter(user=user).exists()
    ok = jwt_client.post("/api/v1/2fa/disable", {"code": clock.code(secret)}, format="json")
    assert ok.status_code == 204
    assert not TotpDevice.objects.filter(user=user).exists() and not RecoveryCode.objects.filter(user=user).exists()
    assert AuditLog.objects.filter(action=AuditAction.TOTP_DISABLED, target_user=user).exists()


def test_disable_with_a_recovery_code(jwt_client, user, enable_totp):
    _, codes = enable_totp(user)
    assert jwt_client.post("/api/v1/2fa/disable", {"code": codes[3]}, format="json").status_code == 204


def test_setup_when_already_enabled_is_409(jwt_client, user, enable_totp):
    enable_totp(user)
    response = jwt_client.post("/api/v1/2fa/setup", {}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "totp_already_enabled"


def test_regenerating_recovery_codes_invalidates_the_old_ones(jwt_client, user, enable_totp, clock):
    secret, old = enable_totp(user)
    response = jwt_client.post("/api/v1/2fa/recovery-codes", {"code": clock.code(secret)}, format="json")
    assert response.status_code == 200
    assert services.totp_verify(user=user, code=old[0]) is False
    assert services.totp_verify(user=user, code=response.json()["recovery_codes"][0]) is True
