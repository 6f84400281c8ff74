"""Avro schemas: every produced type has one, newer versions read older data, and the wire
format is Avro single-object encoding with the spec's CRC-64-AVRO fingerprint."""
from __future__ import annotations

import io
import json

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint, to_parsing_canonical_form

from events import codec, schemas

PRODUCED = ["trade.executed", "order.updated", "balance.changed", "deposit.credited", "withdrawal.updated", "user.updated"]


def _sample(schema: dict) -> dict:
    """A record with a non-default value in every field."""
    out = {}
    for f in schema["fields"]:
        t = f["type"]
        if isinstance(t, list):
            t = [x for x in t if x != "null"][0]
        if isinstance(t, dict) and t.get("type") == "map":
            out[f["name"]] = {"k": "v"}
        else:
            out[f["name"]] = {"long": 7, "string": "1.5", "boolean": True}[t]
    return out


def test_every_produced_event_type_has_a_schema():
    assert set(PRODUCED) <= set(schemas.event_types())


@pytest.mark.parametrize("event_type", schemas.event_types())
def test_each_newer_version_reads_every_older_versions_data(event_type):
    versions = schemas.versions(event_type)
    for i, old in enumerate(versions):
        old_raw = schemas.raw(event_type, old)
        data = io.BytesIO()
        fastavro.schemaless_writer(data, schemas.schema(event_type, old), _sample(old_raw))
        for new in versions[i + 1:]:
            data.seek(0)
            rec = fastavro.schemaless_reader(data, schemas.schema(event_type, old), schemas.schema(event_type, new))
            for f in old_raw["fields"]:
                names = {g["name"] for g in schemas.raw(event_type, new)["fields"]}
                if f["name"] in names:
                    assert rec[f["name"]] == _sample(old_raw)[f["name"]]


def test_trade_v2_reads_v1_data_with_fee_assets_null():
    v1 = _sample(schemas.raw("trade.executed", 1))
    msg = codec.encode("trade.executed", 1, v1)
    event_type, version, rec = codec.decode(msg)
    assert (event_type, version) == ("trade.executed", 1)
    assert rec["maker_fee_asset_id"] is None and rec["trade_id"] == 7


def test_a_schema_change_that_drops_a_default_is_caught():
    """The compatibility check can fail: a v2 field without a default cannot read v1 data."""
    raw = schemas.raw("balance.changed", 1)
    broken = json.loads(json.dumps(raw))
    broken["fields"].append({"name": "reason", "type": "string"})
    data = io.BytesIO()
    fastavro.schemaless_writer(data, schemas.schema("balance.changed", 1), _sample(raw))
    data.seek(0)
    with pytest.raises(Exception):  # noqa: B017 — fastavro refuses with several exception types; any refusal is the point
        fastavro.schemaless_reader(data, schemas.schema("balance.changed", 1), fastavro.parse_schema(broken))


@pytest.mark.parametrize("key", sorted(schemas.registry()))
def test_single_object_header_is_magic_plus_the_crc64_fingerprint_fastavro_computes(key):
    msg = codec.encode(*key, _sample(schemas.raw(*key)))
    assert msg[:2] == b"\xc3\x01"
    canonical = to_parsing_canonical_form(schemas.schema(*key))
    assert msg[2:10] == bytes.fromhex(fastavro_fingerprint(canonical, "CRC-64-AVRO"))  # little-endian, as the spec says
    assert codec.decode(msg, upgrade=False) == (key[0], key[1], _sample(schemas.raw(*key)))


def test_decoding_garbage_names_the_problem():
    with pytest.raises(codec.UnknownSchema):
        codec.decode(b"{\"json\": 1}")
    with pytest.raises(codec.UnknownSchema, match="fingerprint"):
        codec.decode(b"\xc3\x01" + b"\0" * 8 + b"x")
