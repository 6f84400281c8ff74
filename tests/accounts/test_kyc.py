import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts import services
from accounts.audit import AuditAction, AuditLog
from accounts.models import KycDocument, KycSubmission, User
from accounts.selectors import kyc_limits

from .conftest import jpeg_upload, pdf_upload, png_upload

pytestmark = pytest.mark.django_db

PERSONAL = {"full_name": "Alice Example", "date_of_birth": "1990-04-01", "country": "DE", "address": "1 Main St, Berlin", "id_number": "X1234567"}


def submit(client, **overrides):
    data = {**PERSONAL, "requested_tier": 2, "id_document": jpeg_upload(), "selfie": png_upload(), **overrides}
    data = {k: v for k, v in data.items() if v is not None}
    return client.post("/api/v1/kyc", data, format="multipart")


def submission_for(user, tier=2) -> KycSubmission:
    return services.kyc_submit(user=user, requested_tier=tier, documents={"id_document": jpeg_upload(), "selfie": png_upload(), "proof_of_address": pdf_upload()}, **{**PERSONAL, "date_of_birth": "1990-04-01"})


def test_submit_stores_documents_privately_and_audits(jwt_client, user):
    response = submit(jwt_client)
    assert response.status_code == 201, response.json()
    submission = KycSubmission.objects.get(user=user)
    assert submission.status == "pending"
    docs = {d.kind: d for d in submission.documents.all()}
    assert docs["id_document"].content_type == "image/jpeg" and docs["selfie"].content_type == "image/png"
    path = docs["id_document"].file.path
    assert path.startswith(str(django_settings.PRIVATE_MEDIA_ROOT)) and path.endswith(".jpg")
    with pytest.raises(NotImplementedError):
        _ = docs["id_document"].file.url
    assert "url" not in str(response.json()) and path not in str(response.json())
    assert AuditLog.objects.filter(action=AuditAction.KYC_SUBMITTED, target_user=user).exists()


def test_oversized_upload_is_413_and_nothing_is_stored(jwt_client, user, settings):
    settings.KK99 = {**settings.KK99, "KYC_UPLOAD_MAX_BYTES": 100}
    response = submit(jwt_client)
    assert response.status_code == 413 and response.json()["error"]["code"] == "kyc_document_too_large"
    assert not KycSubmission.objects.exists() and not KycDocument.objects.exists()


def test_wrong_type_is_415(jwt_client):
    gif = SimpleUploadedFile("a.gif", b"GIF89a" + b"\x00" * 50, content_type="image/gif")
    response = submit(jwt_client, selfie=gif)
    assert response.status_code == 415 and response.json()["error"]["code"] == "kyc_document_invalid_type"
    assert response.json()["error"]["details"]["field"] == "selfie"
    assert not KycSubmission.objects.exists()


def test_spoofed_extension_and_content_type_are_refused(jwt_client):
    html = SimpleUploadedFile("passport.jpg", b"<html><script>alert(1)</script></html>", content_type="image/jpeg")
    response = submit(jwt_client, id_document=html)
    assert response.status_code == 415
    assert not KycDocument.objects.exists()


def test_a_real_pdf_named_png_is_stored_as_pdf(jwt_client):
    response = submit(jwt_client, selfie=pdf_upload("selfie.png"))
    assert response.status_code == 201
    assert KycDocument.objects.get(kind="selfie").file.name.endswith(".pdf")


def test_tier_3_needs_proof_of_address(jwt_client):
    response = submit(jwt_client, requested_tier=3)
    assert response.status_code == 400 and response.json()["error"]["code"] == "kyc_document_missing"
    assert response.json()["error"]["details"]["missing"] == ["proof_of_address"]


def test_minors_and_bad_country_codes_are_invalid_input(jwt_client):
    response = submit(jwt_client, date_of_birth="2020-01-01", country="Germany")
    assert response.status_code == 400
    assert {"date_of_birth", "country"} <= set(response.json()["error"]["details"])


def test_unverified_email_cannot_submit(make_user, api_client):
    api_client.force_authenticate(make_user("new@example.com", verified=False))
    response = submit(api_client)
    assert response.status_code == 403 and response.json()["error"]["code"] == "kyc_email_not_verified"


def test_only_one_pending_submission(jwt_client):
    assert submit(jwt_client).status_code == 201
    second = submit(jwt_client)
    assert second.status_code == 409 and second.json()["error"]["code"] == "kyc_submission_pending"
    assert KycSubmission.objects.count() == 1


def test_status_shows_only_my_own_submission(jwt_client, other_user):
    submission_for(other_user)
    body = jwt_client.get("/api/v1/kyc").json()
    assert body["latest_submission"] is None and body["kyc_tier"] == 1 and body["limits"]["daily_withdrawal_usdt"] == "2000.00"


def test_approve_raises_tier_emails_and_audits(user, staff, django_capture_on_commit_callbacks):
    reviewer = staff("compliance")
    submission = submission_for(user, tier=3)
    with django_capture_on_commit_callbacks(execute=True):
        services.kyc_approve(submission_id=submission.pk, tier=3, reviewer=reviewer)
    user.refresh_from_db()
    assert user.kyc_tier == 3 and kyc_limits(user=user)["tier"] == 3
    assert "approved" in mail.outbox[-1].subject.lower() and mail.outbox[-1].to == [user.email]
    assert AuditLog.objects.filter(action=AuditAction.KYC_APPROVED, actor=reviewer, target_user=user).exists()
    with pytest.raises(services.AccountsError) as info:
        services.kyc_reject(submission_id=submission.pk, reason="late", reviewer=reviewer)
    assert info.value.code == "kyc_not_pending"


def test_reject_needs_a_reason_then_tells_the_user(user, staff, django_capture_on_commit_callbacks):
    reviewer = staff("compliance")
    submission = submission_for(user)
    with pytest.raises(services.AccountsError):
        services.kyc_reject(submission_id=submission.pk, reason="  ", reviewer=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        services.kyc_reject(submission_id=submission.pk, reason="Photo is blurry", reviewer=reviewer)
    submission.refresh_from_db()
    user.refresh_from_db()
    assert submission.status == "rejected" and user.kyc_tier == 1
    assert "Photo is blurry" in mail.outbox[-1].body
    assert AuditLog.objects.filter(action=AuditAction.KYC_REJECTED, target_user=user).exists()


def test_staff_cannot_review_their_own_submission(staff):
    reviewer = staff("compliance")
    User.objects.filter(pk=reviewer.pk).update(email_verified_at="2026-01-01T00:00:00Z", kyc_tier=1)
    reviewer.refresh_from_db()
    submission = submission_for(reviewer)
    with pytest.raises(services.PermissionDenied):
        services.kyc_approve(submission_id=submission.pk, tier=2, reviewer=reviewer)


def test_document_is_served_to_compliance_only_and_audited(client, user, staff):
    document = submission_for(user).documents.get(kind="id_document")
    url = f"/backoffice/kyc-documents/{document.pk}/"
    client.force_login(staff("support"))
    assert client.get(url).status_code == 404
    client.force_login(user)
    assert client.get(url).status_code == 404
    compliance = staff("compliance")
    client.force_login(compliance)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg" and "attachment" in response["Content-Disposition"]
    assert b"".join(response.streaming_content).startswith(b"\xff\xd8\xff")
    assert AuditLog.objects.filter(action=AuditAction.KYC_DOCUMENT_VIEWED, actor=compliance, target_user=user).exists()


@pytest.mark.real_staff_2fa
def test_documents_need_a_session_that_passed_2fa(client, user, staff, password, enable_totp):
    document = submission_for(user).documents.get(kind="id_document")
    compliance = staff("compliance")
    enable_totp(compliance)
    assert client.login(email=compliance.email, password=password)  # password only
    assert client.get(f"/backoffice/kyc-documents/{document.pk}/").status_code == 404


def test_browser_kyc_page_submits_and_shows_pending(client, user):
    client.force_login(user)
    response = client.post("/kyc/", {**PERSONAL, "requested_tier": 2, "id_document": jpeg_upload(), "selfie": png_upload()})
    assert response.status_code == 302
    page = client.get("/kyc/")
    assert b"waiting for review" in page.content


def test_browser_kyc_page_shows_upload_errors(client, user):
    client.force_login(user)
    bad = SimpleUploadedFile("x.jpg", b"MZ\x90\x00 not an image", content_type="image/jpeg")
    response = client.post("/kyc/", {**PERSONAL, "requested_tier": 2, "id_document": bad, "selfie": png_upload()})
    assert response.status_code == 400 and b"only JPEG, PNG or PDF" in response.content
    assert not KycSubmission.objects.exists()
