"""Backtest runs of the Strategies page: what was asked, how far it got, what came out.

Results are statistics (floats in JSON); nothing here holds or moves money."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class BacktestRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        RUNNING = "RUNNING", "Running"
        DONE = "DONE", "Done"
        FAILED = "FAILED", "Failed"

    class Engine(models.TextChoices):
        VECTORISED = "vectorised", "Vectorised"
        REPLAY = "replay", "Exchange replay (C book)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtest_runs")
    strategy = models.CharField(max_length=40)
    params = models.JSONField(default=dict)
    engine = models.CharField(max_length=12, choices=Engine.choices, default=Engine.VECTORISED)
    symbol = models.CharField(max_length=32, blank=True, help_text="Exchange market; empty when csv_data is given.")
    interval = models.CharField(max_length=4, default="1h")
    bars = models.PositiveIntegerField(default=1000)
    fee = models.FloatField(default=0.001)
    stop_loss = models.FloatField(null=True, blank=True)
    csv_name = models.CharField(max_length=120, blank=True)
    csv_data = models.BinaryField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    equity = models.JSONField(default=list, blank=True, help_text="Equity curve, thinned to at most 2000 points.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed the run.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.strategy} {self.source}"

    @property
    def source(self) -> str:
        return self.csv_name or f"{self.symbol} {self.interval}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
