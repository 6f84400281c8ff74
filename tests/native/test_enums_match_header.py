"""The C book's enumerations are declared once, in orderbook.h: the cffi definitions take each
value from the compiler, and the Python IntEnums of trading/native/types.py must equal them —
every header constant has its Python member and every member its header constant."""
from __future__ import annotations

import pathlib
import re

import pytest

from trading.native import types as T
from trading.native._orderbook import lib

HEADER = pathlib.Path(T.__file__).with_name("orderbook.h").read_text()
# Constants of the anonymous enums (OB_BUY = 0, …); ob_result's OB_OK/OB_ERR_* are checked in
# test_binding.py.
HEADER_CONSTANTS = {m.group(1): int(m.group(2)) for m in re.finditer(r"\b(OB_(?!OK\b|MORE\b|ERR_)[A-Z_]+)\s*=\s*(\d+)", HEADER)}

PREFIXES = {T.Side: "OB_", T.TimeInForce: "OB_", T.StpMode: "OB_STP_", T.CommandType: "OB_CMD_", T.EventKind: "OB_EV_", T.BandMode: "OB_BAND_"}


def _python_constants() -> dict[str, int]:
    out = {f"{prefix}{member.name}": int(member) for enum, prefix in PREFIXES.items() for member in enum}
    out |= {f"OB_REASON_{r.name}": int(r) for r in T.Reason if r < T.REJECT_BASE}
    out["OB_REASON_REJECT_BASE"] = T.REJECT_BASE
    return out


def test_the_header_declares_the_enumerations():
    assert {"OB_BUY", "OB_GTC", "OB_STP_DECREMENT", "OB_CMD_REPLACE", "OB_EV_REDUCED", "OB_REASON_REJECT_BASE"} <= set(HEADER_CONSTANTS)


@pytest.mark.parametrize("name", sorted(HEADER_CONSTANTS))
def test_the_compiled_constant_equals_the_header(name):
    assert getattr(lib, name) == HEADER_CONSTANTS[name]


def test_every_python_enum_member_is_a_header_constant_and_back():
    python = _python_constants()
    assert python == HEADER_CONSTANTS


def test_book_enums_compare_as_enums_not_strings():
    assert T.Side.BUY == lib.OB_BUY and T.EventKind.TRADE == lib.OB_EV_TRADE
    assert T.Side.BUY != "BUY"
