"""schemathesis against our own OpenAPI document (/api/schema/): every operation, generated
from the schema, sent authenticated (a JWT of a funded, KYC-verified user) through the WSGI
application with the whole middleware chain: no answer is a server error, and — because the
schema states the constraints the API enforces — the API accepts what the schema says is
valid (:func:`schema_valid_input_passes_validation`) and refuses what it says is not
(``negative_data_rejection``) on the six operations whose documented schema used to be looser
than their validation.

Bounded: a few examples per operation (``max_examples``), so the whole run stays well under a
minute on a quiet machine."""
from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings as hsettings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

from kk99.wsgi import application
from tests.api.factories import fund

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

# The operations whose schema was looser than their validation (issue 9): for them the schema
# and the validation must agree both ways.
STRICT_OPERATIONS = {"market_depth", "market_trades", "market_averages", "kyc_create", "orders_place", "orders_cancel_all"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Called as a WSGI app, Django closes the database connection when a request ends (the
    test client switches that off): keep the test's transaction open across the calls."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(alice) -> str:
    user = alice[0]
    for symbol in ("BTC", "USDT"):
        fund(user, symbol, "1000")
    return str(RefreshToken.for_user(user).access_token)


# Rules a JSON schema cannot state, refused with their own sentence (documented in the
# field descriptions): an applicant's age and a document's content.
NOT_EXPRESSIBLE = {"kyc_create": {"date_of_birth", "id_document", "selfie", "proof_of_address"}}


def schema_valid_input_passes_validation(ctx, response, case):
    """Our ``positive_data_acceptance``: a schema-valid request may be refused for a business
    reason (unknown market, filters, balance, KYC tier — a 4xx with its own code), but never
    by input validation (``invalid_input`` / 422), except for the rules in NOT_EXPRESSIBLE."""
    if case.meta is None or case.meta.generation.mode.is_negative or response.status_code not in (400, 422):
        return None
    body = response.json()
    error = body.get("error", {}) if isinstance(body, dict) else {}
    if error.get("code") != "invalid_input":
        return None
    fields = set(error.get("details") or {})
    allowed = NOT_EXPRESSIBLE.get(case.operation.definition.raw.get("operationId"), set())
    assert fields and fields <= allowed, f"schema-valid input refused by validation: {error}"
    return True


@schema.parametrize()
@hsettings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_never_answers_5xx_and_keeps_its_schema(case, token, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}
    checks = [not_a_server_error]
    if case.operation.definition.raw.get("operationId") in STRICT_OPERATIONS:
        checks += [schema_valid_input_passes_validation, negative_data_rejection]
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)
