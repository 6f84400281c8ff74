"""Field validators shared by the browser forms and the API serializers."""
from __future__ import annotations

import datetime
import ipaddress
import re

from django.core.exceptions import ValidationError
from django.utils import timezone

MIN_KYC_AGE_YEARS = 18
MAX_IP_ALLOWLIST_ENTRIES = 30


def validate_country_code(value: str) -> None:
    if not re.fullmatch(r"[A-Z]{2}", value or ""):
        raise ValidationError("Use the two-letter ISO country code, e.g. DE or SG.")


def validate_adult_date_of_birth(value: datetime.date) -> None:
    today = timezone.now().date()
    if value > today:
        raise ValidationError("The date of birth is in the future.")
    age = today.year - value.year - ((today.month, today.day) < (value.month, value.day))
    if age < MIN_KYC_AGE_YEARS:
        raise ValidationError(f"You must be at least {MIN_KYC_AGE_YEARS} years old.")
    if age > 130:
        raise ValidationError("The date of birth is not plausible.")


def normalize_ip_allowlist(entries: list[str]) -> list[str]:
    """Parse IP addresses / CIDR networks; return their canonical text. Raises ValueError."""
    cleaned = [str(entry).strip() for entry in entries if str(entry).strip()]
    if len(cleaned) > MAX_IP_ALLOWLIST_ENTRIES:
        raise ValueError(f"At most {MAX_IP_ALLOWLIST_ENTRIES} entries.")
    networks = []
    for entry in cleaned:
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or network.") from exc
    return sorted(set(networks))


def ip_allowed(ip: str | None, allowlist: list[str]) -> bool:
    if not allowlist:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowlist)
