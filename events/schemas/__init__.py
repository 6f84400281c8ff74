"""Avro schemas of every event type, versioned in the repository: ``<type>.v<N>.avsc``.

Rules (checked by tests/events/test_schemas.py): a new version of a type must read every older
version's data (fields are only added with a default, or removed); the newest version is what
producers write. Decimals travel as strings (exact), times as Unix milliseconds."""
from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import fastavro

DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^(?P<type>[a-z_]+\.[a-z_]+)\.v(?P<version>\d+)\.avsc$")


@cache
def registry() -> dict[tuple[str, int], dict]:
    """(event type, version) → parsed schema."""
    out = {}
    for path in sorted(DIR.glob("*.avsc")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"schema file name must be <type>.v<N>.avsc: {path.name}")
        out[(m["type"], int(m["version"]))] = fastavro.parse_schema(json.loads(path.read_text()))
    return out


def event_types() -> list[str]:
    return sorted({t for t, _ in registry()})


def versions(event_type: str) -> list[int]:
    return sorted(v for t, v in registry() if t == event_type)


def current_version(event_type: str) -> int:
    found = versions(event_type)
    if not found:
        raise KeyError(f"no Avro schema for event type {event_type!r} in events/schemas/")
    return found[-1]


def schema(event_type: str, version: int) -> dict:
    return registry()[(event_type, version)]


def raw(event_type: str, version: int) -> dict:
    return json.loads((DIR / f"{event_type}.v{version}.avsc").read_text())
