"""Avro single-object encoding of events (the wire format of every relayed message).

A message is ``C3 01`` + the writer schema's 8-byte CRC-64-AVRO fingerprint (little-endian, of
the schema's Parsing Canonical Form) + the Avro binary body. A reader finds the writer schema
by fingerprint and may resolve it to a newer version of the same type (schema evolution)."""
from __future__ import annotations

import io
import struct
from functools import lru_cache, cache

import fastavro
from fastavro.schema import to_parsing_canonical_form

from events import schemas

MAGIC = b"\xc3\x01"
_EMPTY = 0xC15D213AA4D7A795  # the Avro spec's CRC-64-AVRO seed


@lru_cache(maxsize=1)
def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


def crc64_avro(data: bytes) -> int:
    table = _table()
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@cache
def fingerprint(event_type: str, version: int) -> bytes:
    canonical = to_parsing_canonical_form(schemas.schema(event_type, version))
    return struct.pack("<Q", crc64_avro(canonical.encode()))


@lru_cache(maxsize=1)
def _by_fingerprint() -> dict[bytes, tuple[str, int]]:
    return {fingerprint(t, v): (t, v) for t, v in schemas.registry()}


def record(row) -> dict:
    """The Avro record of an outbox row: envelope + payload."""
    return {
        "event_id": row.id, "stream": row.stream, "seq": row.seq,
        "occurred_at_ms": int(row.created_at.timestamp() * 1000), **row.payload,
    }


def encode(event_type: str, version: int, rec: dict) -> bytes:
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(fingerprint(event_type, version))
    fastavro.schemaless_writer(buf, schemas.schema(event_type, version), rec, strict=True)
    return buf.getvalue()


class UnknownSchema(ValueError):
    """The message is not single-object encoded, or its fingerprint names no known schema."""


def decode(data: bytes, *, upgrade: bool = True) -> tuple[str, int, dict]:
    """→ (event type, writer version, record). With ``upgrade`` the record is resolved to the
    newest version of its type (what a consumer built against the newest schema sees)."""
    if data[:2] != MAGIC or len(data) < 10:
        raise UnknownSchema("not an Avro single-object message")
    try:
        event_type, version = _by_fingerprint()[data[2:10]]
    except KeyError:
        raise UnknownSchema(f"unknown schema fingerprint {data[2:10].hex()}") from None
    writer = schemas.schema(event_type, version)
    reader = schemas.schema(event_type, schemas.current_version(event_type)) if upgrade else None
    rec = fastavro.schemaless_reader(io.BytesIO(data[10:]), writer, reader)
    return event_type, version, rec
