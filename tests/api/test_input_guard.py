"""kk99.inputguard: hostile bytes are a 4xx with a clear message at every entry point —
REST v1, /api/v3, HTML forms and WebSocket messages — and change nothing."""
from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from hypothesis import given, settings as hsettings, strategies as st

from kk99 import inputguard as guard
from kk99.errors import CommonErrorCode
from tests.streams.helpers import as_json, connect
from trading.models import Order

pytestmark = pytest.mark.django_db


# --- the checks themselves --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"base=%00", CommonErrorCode.ILLEGAL_CHARACTERS),
        (b"base=BT%00C", CommonErrorCode.ILLEGAL_CHARACTERS),
        (b"base=%01", CommonErrorCode.ILLEGAL_CHARACTERS),
        (b"base=%7F", CommonErrorCode.ILLEGAL_CHARACTERS),
        (b"base=%C2%85", CommonErrorCode.ILLEGAL_CHARACTERS),  # U+0085, a C1 control
        (b"base=a%0Ab", CommonErrorCode.ILLEGAL_CHARACTERS),  # no newline in a query string
        (b"base=%FF%FE", CommonErrorCode.INVALID_ENCODING),
        (b"base=%ED%A0%80", CommonErrorCode.INVALID_ENCODING),  # an encoded lone surrogate
        (b"%00=1", CommonErrorCode.ILLEGAL_CHARACTERS),
        (b"base=" + b"A" * 10_240, CommonErrorCode.VALUE_TOO_LONG),
        (b"quantity=NaN", CommonErrorCode.NUMBER_OUT_OF_RANGE),
        (b"quantity=-Infinity", CommonErrorCode.NUMBER_OUT_OF_RANGE),
        (b"quantity=1e400", CommonErrorCode.NUMBER_OUT_OF_RANGE),
        (b"quantity=-0", CommonErrorCode.NUMBER_OUT_OF_RANGE),
        (b"quantity=-0.000", CommonErrorCode.NUMBER_OUT_OF_RANGE),
        (b"quantity=100000000000000000000", CommonErrorCode.NUMBER_OUT_OF_RANGE),  # 10^20: 21 digits
        (b"quantity=0.0000000000000000001", CommonErrorCode.NUMBER_OUT_OF_RANGE),  # 19 decimals
    ],
)
def test_hostile_query_values_are_refused_with_their_code(raw, code):
    with pytest.raises(guard.InputRefused) as refused:
        guard.check_urlencoded(raw)
    assert refused.value.code == code
    assert refused.value.message  # a sentence, not an empty 400


@pytest.mark.parametrize(
    "raw",
    [
        b"symbol=BTCUSDT&quantity=0.0001&price=99999999999999999999.999999999999999999",  # NUMERIC(38,18) edges
        b"quantity=1.000000000000000000000000",  # trailing zeros are not precision
        b"note=caf%C3%A9+%E2%82%AC",  # UTF-8 text
        b"password=1e400&note=x",  # a password is free text, not a number
        b"timestamp=1700000000000&recvWindow=5000&orderId=9223372036854775807",
        b"q=&flag",
    ],
)
def test_ordinary_values_pass(raw):
    guard.check_urlencoded(raw)


def test_a_textarea_may_send_newlines_and_tabs_in_a_body_but_not_nul():
    guard.check_urlencoded(b"reason=line+one%0D%0Aline%09two", body=True)
    with pytest.raises(guard.InputRefused):
        guard.check_urlencoded(b"reason=line%00", body=True)


@pytest.mark.parametrize(
    "doc, code",
    [
        ('{"quantity": NaN}', CommonErrorCode.NUMBER_OUT_OF_RANGE),
        ('{"quantity": Infinity}', CommonErrorCode.NUMBER_OUT_OF_RANGE),
        ('{"quantity": 1e400}', CommonErrorCode.NUMBER_OUT_OF_RANGE),
        ('{"quantity": -0}', CommonErrorCode.NUMBER_OUT_OF_RANGE),
        ('{"quantity": -0.0}', CommonErrorCode.NUMBER_OUT_OF_RANGE),
        ('{"quantity": 123456789012345678901234567890}', CommonErrorCode.NUMBER_OUT_OF_RANGE),
        ('{"quantity": "1e400"}', CommonErrorCode.NUMBER_OUT_OF_RANGE),
        ('{"label": "a\\u0000b"}', CommonErrorCode.ILLEGAL_CHARACTERS),
        ('{"label": "\\ud800"}', CommonErrorCode.ILLEGAL_CHARACTERS),
        ('{"a\\u0000": 1}', CommonErrorCode.ILLEGAL_CHARACTERS),
        ('{"items": [{"label": "ok"}, {"label": "\\u0007"}]}', CommonErrorCode.ILLEGAL_CHARACTERS),
        ("[" * 40 + "]" * 40, CommonErrorCode.INVALID_INPUT),
    ],
)
def test_hostile_json_is_refused(doc, code):
    with pytest.raises(guard.InputRefused) as refused:
        guard.load_json(doc)
    assert refused.value.code == code


def test_a_subscription_to_the_stream_limit_fits_in_one_message():
    streams = [f"sym{i:04d}usdt@aggTrade" for i in range(1024)]
    message = '{"method": "SUBSCRIBE", "params": [' + ", ".join(f'"{s}"' for s in streams) + '], "id": 1}'
    assert guard.check_ws_message(message, None)["params"] == streams


def test_json_numbers_come_back_exact():
    assert guard.load_json('{"price": 0.1, "qty": 3, "ok": true}') == {"price": Decimal("0.1"), "qty": 3, "ok": True}


def test_json_that_is_not_json_is_left_to_the_parser_behind():
    guard.check_json_bytes(b"{not json")  # no InputRefused: DRF answers its own parse error
    with pytest.raises(ValueError):
        guard.load_json(b"{not json")


def test_invalid_utf8_in_a_json_body_is_refused():
    with pytest.raises(guard.InputRefused) as refused:
        guard.check_json_bytes(b'{"label": "\xff"}')
    assert refused.value.code == CommonErrorCode.INVALID_ENCODING


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=50))
def test_any_text_either_passes_or_is_refused_never_crashes(text):
    try:
        guard.check_pairs([("field", text)])
    except guard.InputRefused as exc:
        assert exc.status == 400 and exc.message


@hsettings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=Decimal("-1e19"), max_value=Decimal("1e19")))
def test_every_amount_the_ledger_can_hold_passes(amount):
    if amount.is_zero():
        amount = abs(amount)
    guard.check_pairs([("amount", str(amount))])


# --- every entry point -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/markets/?base=BTC%00", "/api/v1/orders/?symbol=BTC%00USDT"])
def test_nul_in_a_rest_query_is_400_in_the_rest_format(client, alice, path):
    """The two 500s schemathesis found (PostgreSQL refuses NUL in a string)."""
    client.force_login(alice[0])
    r = client.get(path)
    assert r.status_code == 400
    assert r.json() == {"error": {"code": "illegal_characters", "message": r.json()["error"]["message"], "details": r.json()["error"]["details"]}}
    assert "NUL" in r.json()["error"]["message"]


def test_nan_in_a_rest_json_body_is_400_and_places_no_order(client, alice):
    client.force_login(alice[0])
    body = '{"symbol": "BTCUSDT", "side": "buy", "type": "limit", "price": NaN, "quantity": 1}'
    r = client.post("/api/v1/orders/", body, content_type="application/json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "number_out_of_range"
    assert not Order.objects.exists()


def test_binance_api_answers_1100_for_nul(client, alice):
    r = client.get("/api/v3/depth?symbol=BTC%00USDT")
    assert r.status_code == 400
    assert r.json()["code"] == -1100
    assert r.json()["msg"].startswith("Illegal characters found in parameter 'symbol'")


def test_binance_api_answers_1100_for_a_hostile_quantity_in_a_signed_order(alice_api):
    r = alice_api.post("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1e400", "price": "100"})
    assert r.status_code == 400
    assert r.json()["code"] == -1100
    assert "quantity" in r.json()["msg"]
    assert not Order.objects.exists()


def test_binance_api_answers_1101_for_too_many_parameters(client):
    query = "&".join(f"p{i}=1" for i in range(guard.MAX_PARAMETERS + 1))
    r = client.get(f"/api/v3/ping?{query}")
    assert r.status_code == 400 and r.json()["code"] == -1101


def test_html_form_with_a_nul_byte_is_a_400_page(client):
    r = client.post("/login/", {"email": "a\x00@example.com", "password": "x"})
    assert r.status_code == 400
    assert r["Content-Type"].startswith("text/html")
    assert b"NUL byte" in r.content


def test_html_form_with_invalid_utf8_is_a_400_page(client):
    r = client.post("/login/", b"email=%FF%FE&password=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and b"not valid UTF-8" in r.content


def test_multipart_fields_are_checked_too(client, alice):
    client.force_login(alice[0])
    r = client.post("/api/v1/orders/", {"symbol": "BTC\x00USDT", "side": "buy"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "illegal_characters"


def test_a_broken_multipart_body_is_a_400_not_a_500(client, alice):
    client.force_login(alice[0])
    body = b"--b\r\nContent-Disposition: form-data; name=\"symbol\"\r\n\r\nBTCUSDT\r\n--b--\r\n"
    r = client.post("/api/v1/orders/", body, content_type="multipart/form-data")  # no boundary
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "invalid_input", "message": "The multipart body could not be parsed."}


# --- WebSocket messages ------------------------------------------------------------------------


def _ws_reply(path: str, message: str | bytes) -> dict:
    async def scenario():
        comm = await connect(path)
        if isinstance(message, bytes):
            await comm.send_to(bytes_data=message)
        else:
            await comm.send_to(text_data=message)
        reply = as_json(await comm.receive_from(timeout=5))
        await comm.disconnect()
        return reply

    return async_to_sync(scenario)()


def test_market_stream_refuses_a_nul_in_a_subscription(market):
    reply = _ws_reply("/ws", '{"method": "SUBSCRIBE", "params": ["btcusdt@trade\\u0000"], "id": 1}')
    assert reply["code"] == 2 and "NUL" in reply["msg"]


def test_ws_api_refuses_nan_with_1100(market):
    reply = _ws_reply("/ws-api/v3", '{"id": 1, "method": "time", "params": {"recvWindow": NaN}}')
    assert reply["status"] == 400 and reply["error"]["code"] == -1100


def test_ws_api_refuses_invalid_utf8_in_a_binary_frame(market):
    reply = _ws_reply("/ws-api/v3", b'{"id": 1, "method": "time", "params": {"x": "\xff"}}')
    assert reply["status"] == 400 and reply["error"]["code"] == -1100


@pytest.mark.parametrize("name", ["password", "new_password2", "csrfmiddlewaretoken", "destinationTag", "address"])
def test_free_text_fields_are_not_read_as_numbers(name):
    guard.check_pairs([(name, "1e400"), (name, "-0"), (name, "9" * 40)])


@pytest.mark.parametrize("name", ["percentage", "stage", "quantity", "refresh"])
def test_other_fields_are_number_checked_even_if_their_name_contains_a_free_text_word(name):
    with pytest.raises(guard.InputRefused):
        guard.check_pairs([(name, "1e400")])
