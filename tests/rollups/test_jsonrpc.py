"""JSON-RPC parsing, refusals with the codes a backend would give, answer helpers."""

from __future__ import annotations

import orjson
import pytest

from rollups import (
    BatchNotRelayableError,
    Call,
    InvalidCall,
    InvalidRequestError,
    ParseError,
    catalogue,
    error_response,
    handler_for,
    is_cacheable_answer,
    jsonrpc_error,
)
from rollups.jsonrpc import cache_key, canonical_params, parse_payload

EVM = handler_for("evm")


def test_single_request_keeps_its_bytes() -> None:
    payload = b'  {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId", "params": []}\n'
    call = EVM.parse_relay(payload)
    assert call == Call("eth_chainId", [], "a", payload, False)
    parsed = parse_payload(payload)
    assert not parsed.batch and parsed.calls == (call,)


def test_notification_and_named_params() -> None:
    call = EVM.parse_relay(b'{"jsonrpc":"2.0","method":"eth_x","params":{"a":1}}')
    assert call.notification and call.id is None
    assert call.params == {"a": 1} and call.param_list == []


def test_relay_refuses_batches() -> None:
    with pytest.raises(BatchNotRelayableError) as exc:
        EVM.parse_relay(b' [{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}]')
    assert exc.value.code.value == "BATCH_NOT_RELAYABLE"
    assert exc.value.jsonrpc_code == -32600


@pytest.mark.parametrize(
    ("payload", "error", "code"),
    [
        (b"{not json", ParseError, -32700),
        (b"", ParseError, -32700),
        (b"42", InvalidRequestError, -32600),
        (b'{"id":1,"method":"eth_chainId"}', InvalidRequestError, -32600),
        (b'{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}', InvalidRequestError, -32600),
        (b'{"jsonrpc":"2.0","id":1}', InvalidRequestError, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', InvalidRequestError, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}', InvalidRequestError, -32600),
        (b'{"jsonrpc":"2.0","id":[1],"method":"m"}', InvalidRequestError, -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"m"}', InvalidRequestError, -32600),
        (b"[]", InvalidRequestError, -32600),
    ],
)
def test_refusals_carry_backend_codes(payload: bytes, error: type[Exception], code: int) -> None:
    with pytest.raises(error) as exc:
        parse_payload(payload)
    refusal = exc.value
    assert getattr(refusal, "jsonrpc_code") == code  # noqa: B009
    body = orjson.loads(error_response(None, refusal))  # type: ignore[arg-type]
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == code and body["error"]["message"]


def test_batch_keeps_order_and_marks_invalid_elements() -> None:
    parsed = parse_payload(
        b'[{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"},'
        b" 7,"
        b' {"jsonrpc":"2.0","id":"x"},'
        b' {"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}]'
    )
    assert parsed.batch and len(parsed.calls) == 4
    first, second, third, fourth = parsed.calls
    assert isinstance(first, Call) and first.id == 2
    assert first.raw == b'{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}'
    assert EVM.parse_relay(first.raw) == first  # each element is relayable on its own
    assert isinstance(second, InvalidCall) and second.id is None
    assert isinstance(third, InvalidCall) and third.id == "x"
    assert third.error.jsonrpc_code == -32600
    assert isinstance(fourth, Call) and fourth.method == "eth_chainId"


def test_batch_size_limit() -> None:
    element = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
    with pytest.raises(InvalidRequestError, match="exceeds the limit of 2"):
        parse_payload(b"[" + b",".join([element] * 3) + b"]", max_batch=2)


def test_error_builder() -> None:
    assert orjson.loads(jsonrpc_error("q", -32602, "bad", data={"at": 0})) == {
        "jsonrpc": "2.0",
        "id": "q",
        "error": {"code": -32602, "message": "bad", "data": {"at": 0}},
    }


def test_is_cacheable_answer() -> None:
    assert is_cacheable_answer(b'{"jsonrpc":"2.0","id":1,"result":"0x1"}')
    assert is_cacheable_answer(b'{"jsonrpc":"2.0","id":1,"result":false}')
    assert not is_cacheable_answer(b'{"jsonrpc":"2.0","id":1,"result":null}')
    assert not is_cacheable_answer(b'{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}')
    assert not is_cacheable_answer(b'{"jsonrpc":"2.0","id":1,"result":1,"error":{}}')
    assert not is_cacheable_answer(b"not json")
    assert not is_cacheable_answer(b'[{"jsonrpc":"2.0","id":1,"result":"0x1"}]')


def test_canonical_params_and_keys() -> None:
    assert canonical_params(["0xAbC", {"b": 1, "a": "Latest"}]) == b'["0xabc",{"a":"Latest","b":1}]'
    assert cache_key("eth", "eth_call", [{"to": "0xAA"}]) == cache_key(
        "eth", "eth_call", [{"to": "0xaa"}]
    )
    assert cache_key("eth", "eth_call", []) != cache_key("base", "eth_call", [])
    assert cache_key("eth", "eth_call", None).startswith("eth:eth_call:")


def call(method: str, id_: int = 1) -> Call:
    return EVM.parse_relay(orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method}))


def test_check_answer() -> None:
    spec = catalogue()["eth"]
    c = call("eth_getBalance")
    good = EVM.check_answer(spec, c, 200, b'{"jsonrpc":"2.0","id":1,"result":"0x0"}')
    assert good.valid and not good.error and not good.retry_elsewhere
    wrong_id = EVM.check_answer(spec, c, 200, b'{"jsonrpc":"2.0","id":2,"result":"0x0"}')
    assert not wrong_id.valid and wrong_id.retry_elsewhere
    html = EVM.check_answer(spec, c, 502, b"<html>bad gateway</html>")
    assert not html.valid and html.retry_elsewhere

    def err(code: int, message: str, status: int = 200) -> tuple[bool, bool]:
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}
        )
        check = EVM.check_answer(spec, c, status, body)
        assert check.valid and check.error
        return check.retry_elsewhere, check.reason.startswith(f"error {code}")

    assert err(-32000, "header not found") == (True, True)
    assert err(-32000, "missing trie node abc (path )") == (True, True)
    assert err(-32005, "limit exceeded") == (True, True)
    assert err(-32000, "execution reverted") == (False, True)
    assert err(3, "execution reverted: nope") == (False, True)
    assert err(-32602, "invalid argument 0") == (False, True)
