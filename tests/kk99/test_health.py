import pytest

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok_without_touching_services(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_dependency_ok_when_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "channel_layer": "ok"}


def test_every_response_carries_a_request_id_and_echoes_a_sane_one(client):
    generated = client.get("/healthz")
    assert len(generated["X-Request-ID"]) == 32
    echoed = client.get("/healthz", HTTP_X_REQUEST_ID="abc12345-trace")
    assert echoed["X-Request-ID"] == "abc12345-trace"
    refused = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces <script>")
    assert refused["X-Request-ID"] != "bad id with spaces <script>"
