import pytest

from accounts import services
from accounts.audit import AuditAction, AuditLog
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def create(client, **data):
    return client.post("/api/v1/api-keys", {"label": "bot", "permissions": ["trade"], **data}, format="json")


def test_create_returns_the_secret_once_and_stores_it_encrypted(jwt_client, user):
    response = create(jwt_client, ip_allowlist=["10.0.0.1", "192.168.1.0/24"])
    body = response.json()
    assert response.status_code == 201
    assert len(body["secret"]) == 64 and len(body["key"]) == 64
    assert body["permissions"] == ["read", "trade"] and body["ip_allowlist"] == ["10.0.0.1/32", "192.168.1.0/24"]
    stored = ApiKey.objects.get(pk=body["id"])
    assert body["secret"] not in stored.secret_encrypted
    assert services.api_key_secret(api_key=stored) == body["secret"]
    listing = jwt_client.get("/api/v1/api-keys").json()["results"]
    detail = jwt_client.get(f"/api/v1/api-keys/{body['id']}").json()
    assert "secret" not in listing[0] and "secret" not in detail and body["secret"] not in str(listing)
    log = AuditLog.objects.get(action=AuditAction.API_KEY_CREATED, target_user=user)
    assert body["secret"] not in str(log.details)


def test_create_requires_the_2fa_code_when_enabled(jwt_client, user, enable_totp, clock):
    secret, _ = enable_totp(user)
    missing = create(jwt_client)
    wrong = create(jwt_client, otp="111111")
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "totp_required"
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_totp_code"
    assert not ApiKey.objects.exists()
    assert create(jwt_client, otp=clock.code(secret)).status_code == 201


@pytest.mark.parametrize(
    ("data", "code"),
    [({"ip_allowlist": ["not-an-ip"]}, "invalid_input"), ({"permissions": ["admin"]}, "invalid_input"), ({"label": ""}, "invalid_input")],
)
def test_bad_input_is_a_clear_400_and_creates_nothing(jwt_client, data, code):
    response = create(jwt_client, **data)
    assert response.status_code == 400 and response.json()["error"]["code"] in (code, "invalid_ip_allowlist")
    assert not ApiKey.objects.exists()


def test_invalid_ip_allowlist_has_its_own_code(user):
    with pytest.raises(services.AccountsError) as info:
        services.api_key_create(user=user, label="x", permissions=[], ip_allowlist=["300.1.1.1"])
    assert info.value.code == "invalid_ip_allowlist"


def test_revoke_makes_the_key_inactive_and_is_audited(jwt_client, user):
    key_id = create(jwt_client).json()["id"]
    response = jwt_client.delete(f"/api/v1/api-keys/{key_id}")
    assert response.status_code == 204
    assert ApiKey.objects.get(pk=key_id).revoked_at is not None
    assert AuditLog.objects.filter(action=AuditAction.API_KEY_REVOKED, target=f"api_key:{key_id}").count() == 1
    jwt_client.delete(f"/api/v1/api-keys/{key_id}")
    assert AuditLog.objects.filter(action=AuditAction.API_KEY_REVOKED).count() == 1


def test_a_user_can_neither_see_nor_revoke_anothers_key(jwt_client, other_user):
    theirs, _ = services.api_key_create(user=other_user, label="theirs", permissions=["trade"])
    assert jwt_client.get(f"/api/v1/api-keys/{theirs.pk}").status_code == 404
    assert jwt_client.delete(f"/api/v1/api-keys/{theirs.pk}").status_code == 404
    assert jwt_client.get("/api/v1/api-keys").json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_active_key_limit(user, monkeypatch):
    monkeypatch.setattr(services, "MAX_ACTIVE_API_KEYS", 2)
    services.api_key_create(user=user, label="a", permissions=[])
    services.api_key_create(user=user, label="b", permissions=[])
    with pytest.raises(services.AccountsError) as info:
        services.api_key_create(user=user, label="c", permissions=[])
    assert info.value.code == "api_key_limit_reached" and ApiKey.objects.count() == 2
