"""Market surveillance: detector thresholds (with history), account links, alerts and cases.

Detectors (surveillance.detectors) are pure functions over trades and orders; the runner
(surveillance.services.detectors_run) feeds them what is new since the per-market cursor and
records each finding as an :class:`Alert` keyed by a deterministic ``alert_key`` — re-running a
window never doubles an alert, and the same input always yields the same keys.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Detector(models.TextChoices):
    WASH = "wash", "Wash trading / self-dealing"
    SPOOFING = "spoofing", "Spoofing / layering"
    PUMP = "pump", "Pump-and-dump / momentum ignition"
    MARKING_CLOSE = "marking_close", "Marking the close"
    CANCEL_RATIO = "cancel_ratio", "Abnormal order-to-trade ratio"
    STP_MISUSE = "stp_misuse", "Self-trade prevention misuse"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class DetectorThreshold(models.Model):
    """Parameter overrides for one detector: market-wide (``market`` null) or for one market.
    Defaults live in surveillance.detectors.DEFAULTS; every change appends a
    :class:`DetectorThresholdChange`."""

    detector = models.CharField(max_length=16, choices=Detector.choices)
    market = models.ForeignKey("trading.Market", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    params = models.JSONField(default=dict, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["detector", "market"], name="surv_threshold_unique", nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"{self.detector} @ {self.market_id or 'all markets'}"


class DetectorThresholdChange(models.Model):
    threshold = models.ForeignKey(DetectorThreshold, on_delete=models.CASCADE, related_name="history")
    old_params = models.JSONField(default=dict)
    new_params = models.JSONField(default=dict)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]


class AccountLink(models.Model):
    """Two accounts believed to be under common control (user_a_id < user_b_id)."""

    class Source(models.TextChoices):
        TRADE_GROUP = "trade_group", "Same STP trade group"
        WITHDRAWAL_ADDRESS = "withdrawal_address", "Shared withdrawal address"
        LOGIN_IP = "login_ip", "Shared login IP"
        DEPOSIT_SOURCE = "deposit_source", "Deposits from the same sending address"
        DEPOSIT_TX = "deposit_tx", "Deposits in the same chain transaction"
        DEVICE = "device", "Same login device"
        ROUND_TRIP = "round_trip", "Repeated round trips"
        MANUAL = "manual", "Added by compliance"

    user_a = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_b = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=20, choices=Source.choices)
    evidence = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_a", "user_b", "source"], name="surv_link_unique"),
            models.CheckConstraint(condition=models.Q(user_a__lt=models.F("user_b")), name="surv_link_ordered"),
        ]


class DetectorCursor(models.Model):
    """How far the incremental runner has read, per market: the last trade and order ids seen."""

    market = models.OneToOneField("trading.Market", on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_trade_pk = models.BigIntegerField(default=0)
    last_order_pk = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)


class Case(models.Model):
    class State(models.TextChoices):
        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Assigned"
        ESCALATED = "escalated", "Escalated"
        DISMISSED = "dismissed", "Dismissed"
        CONFIRMED = "confirmed", "Confirmed"

    # state -> the states it may move to (surveillance.services.case_transition)
    TRANSITIONS = {
        State.OPEN: (State.ASSIGNED, State.DISMISSED),
        State.ASSIGNED: (State.ESCALATED, State.DISMISSED, State.CONFIRMED),
        State.ESCALATED: (State.DISMISSED, State.CONFIRMED),
        State.DISMISSED: (),
        State.CONFIRMED: (),
    }

    title = models.CharField(max_length=200)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN, db_index=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500, blank=True, help_text="Reason of the last state change.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        permissions = [("work_case", "Can work surveillance cases"), ("export_case", "Can export surveillance cases")]

    def __str__(self) -> str:
        return f"Case #{self.pk} {self.title} ({self.state})"


class CaseEvent(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    from_state = models.CharField(max_length=12, blank=True)
    to_state = models.CharField(max_length=12)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class Alert(models.Model):
    alert_key = models.CharField(max_length=64, unique=True, help_text="sha256 of detector, market, window and accounts.")
    detector = models.CharField(max_length=16, choices=Detector.choices, db_index=True)
    market = models.ForeignKey("trading.Market", on_delete=models.PROTECT, related_name="+")
    score = models.DecimalField(max_digits=12, decimal_places=4)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    accounts = models.JSONField(default=list, help_text="User ids involved, sorted.")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    evidence = models.JSONField(default=dict, help_text="order ids, trade ids, book-replay excerpt, figures")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-window_end", "-id"]
        indexes = [models.Index(fields=["market", "detector", "window_end"], name="surv_alert_market_det")]

    def __str__(self) -> str:
        return f"{self.get_detector_display()} {self.alert_key[:10]}"


class MarketMakerExemption(models.Model):
    """A reviewed market-maker registration: ``user`` quotes both sides under ``programme`` on
    ``markets`` (none = every market) between ``valid_from`` and ``valid_to`` (open-ended when
    null). Only an APPROVED row inside its validity exempts the account, and only from the
    detectors that penalise two-sided quoting by design (round trips, spoofing, order-to-trade
    ratio) — never from self trades, linked-account trades, pumps, closes or STP misuse.
    Requested by one person and approved by another (the check constraint holds the line even
    if a service is bypassed); every step writes an accounts audit row
    (``surveillance_mm_exemption``). Detectors read exemptions through one selector,
    :func:`surveillance.selectors.exempt_accounts`."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        REVOKED = "revoked", "Revoked"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    markets = models.ManyToManyField("trading.Market", blank=True, related_name="+", help_text="None selected = every market.")
    programme = models.CharField(max_length=100, help_text="The market-making agreement this registration belongs to.")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Empty = until revoked.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    reason = models.CharField(max_length=300, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    rejected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_marketmakerexemption", "Can approve or reject market-maker exemptions")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True) | ~models.Q(approved_by=models.F("requested_by")),
                name="surv_mm_two_people",
            ),
            models.CheckConstraint(
                condition=models.Q(rejected_by__isnull=True) | ~models.Q(rejected_by=models.F("requested_by")),
                name="surv_mm_two_people_reject",
            ),
            models.CheckConstraint(condition=~models.Q(requested_by=models.F("user")), name="surv_mm_not_own_account"),
            models.CheckConstraint(condition=models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=models.F("valid_from")), name="surv_mm_valid_range"),
            models.CheckConstraint(
                condition=~models.Q(status="approved") | models.Q(approved_by__isnull=False),
                name="surv_mm_approved_has_approver",
            ),
        ]

    def __str__(self) -> str:
        return f"MM {self.user_id} {self.programme} ({self.status})"
