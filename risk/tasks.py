"""Risk's Celery tasks (thin: they call a service)."""
from __future__ import annotations

import datetime as dt

from celery import shared_task

from risk.figures import risk_figures_store


@shared_task(name="risk.figures_nightly")
def risk_figures_nightly(as_of: str | None = None) -> int:
    """Store last night's VaR/ES figures (idempotent: a re-run replaces the night)."""
    return risk_figures_store(as_of=dt.date.fromisoformat(as_of) if as_of else None)
