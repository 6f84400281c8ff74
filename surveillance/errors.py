"""Surveillance error codes (one catalog; rendered by the project's one DRF handler)."""
from __future__ import annotations

from django.db import models

from kk99.errors import KK99Error


class SurveillanceErrorCode(models.TextChoices):
    BAD_TRANSITION = "surveillance_bad_transition", "This case cannot move to that state."
    REASON_REQUIRED = "surveillance_reason_required", "A reason is required."
    NOT_CONFIRMED = "surveillance_case_not_confirmed", "Only a confirmed case can freeze accounts."
    UNKNOWN_PARAMETER = "surveillance_unknown_parameter", "Unknown detector parameter."
    BAD_PARAMETER = "surveillance_bad_parameter", "Detector parameters must be positive numbers."
    SAME_PERSON = "surveillance_same_person", "A second person must approve."
    OWN_ACCOUNT = "surveillance_own_account", "Staff cannot register their own account."
    BAD_VALIDITY = "surveillance_bad_validity", "valid_to must be after valid_from."
    NOT_PENDING = "surveillance_not_pending", "Only a requested exemption can be decided."
    NOT_APPROVED = "surveillance_not_approved", "Only an approved exemption can be revoked."


class SurveillanceError(KK99Error):
    status = 400
