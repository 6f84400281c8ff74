"""One accessor for the exchange's tunables (``settings.KK99``)."""
from __future__ import annotations

from typing import Any

from django.conf import settings


def kk99_setting(name: str) -> Any:
    try:
        return settings.KK99[name]
    except KeyError as exc:
        raise KeyError(f"Unknown KK99 setting {name!r}; add it to settings.KK99 in kk99/settings/base.py") from exc
