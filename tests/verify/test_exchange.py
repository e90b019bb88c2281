"""Splitting an exchange into verifiable answers (DESIGN §4 headers), without a chain."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from protocol.relay import response_hash
from verify import Exchange, ExchangeError, answer_objects, array_segments
from verify.verifier import Report, _answer

REQ = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
REQ2 = b'{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}'
ANS = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}\n'
ANS2 = b'{"jsonrpc":"2.0","id":2,"result":"0x2"}'


def relay_headers(n: int, **extra: str) -> dict[str, str]:
    return {
        "Relay-Request": ",".join(f"req{i}" for i in range(n)),
        "Relay-Receipt": ",".join(f"rec{i}" for i in range(n)),
        "Relay-Supplier": ",".join(f"0x{i:040x}" for i in range(n)),
        **extra,
    }


def test_array_segments_keep_the_bytes_between_delimiters() -> None:
    assert array_segments(b'[{"a":"x,]"} , [1,[2]],\n"s" ]') == [
        b'{"a":"x,]"} ',
        b" [1,[2]]",
        b'\n"s" ',
    ]
    assert array_segments(b" [ ] ") == []
    for bad in (b"{}", b"[1 2]", b"[1,", b'["x]'):
        with pytest.raises(ExchangeError):
            array_segments(bad)


def test_a_single_answer_is_one_leg_over_the_whole_bodies() -> None:
    [obj] = answer_objects(Exchange(REQ, ANS, relay_headers(1, **{"Relay-Backend-Status": "200"})))
    [leg] = obj.legs
    assert (leg.requests, leg.response, leg.backend_status) == ((REQ,), (ANS,), 200)
    assert (leg.relay_request, leg.relay_receipt, obj.source) == ("req0", "rec0", "relay")


def test_a_batch_pairs_entries_with_elements_and_skips_dashes() -> None:
    request = b"[" + REQ + b" , " + REQ2 + b"]"
    response = b"[" + ANS + b"," + ANS2 + b"]"
    headers = {
        "relay-request": "-,req1",  # header names are case-blind
        "Relay-Receipt": "-,rec1",
        "Relay-Supplier": "-,0xab",
        "Relay-Backend-Status": "-,200",
        "Relay-Cache": "hit,-",
    }
    first, second = answer_objects(Exchange(request, response, headers))
    assert (first.legs, first.source) == ((), "cache")
    [leg] = second.legs
    assert leg.position == 1 and leg.requests == (REQ, REQ2)
    assert leg.response == (ANS2,)
    # without Relay-Cache a dash is the gateway's own answer
    [obj] = answer_objects(Exchange(request, response, {**headers, "Relay-Cache": "-,-"}))[:1]
    assert obj.source == "gateway"
    # an element with the backend's trailing newline: exact bytes first, trimmed second
    swapped = {k: ",".join(reversed(v.split(","))) for k, v in headers.items()}
    leg = answer_objects(Exchange(request, response, swapped))[0].legs[0]
    assert leg.response == (ANS, ANS.rstrip())


def test_quorum_groups_list_one_leg_per_supplier() -> None:
    headers = {
        "Relay-Request": "a b",
        "Relay-Receipt": "ra rb",
        "Relay-Supplier": "0x01 0x02",
        "Relay-Backend-Status": "200 200",
    }
    [obj] = answer_objects(Exchange(REQ, ANS, headers))
    assert [leg.relay_request for leg in obj.legs] == ["a", "b"]
    assert [leg.supplier for leg in obj.legs] == ["0x01", "0x02"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "no Relay-Request"),
        (relay_headers(2), "headers list 2"),
        ({**relay_headers(1), "Relay-Receipt": "a,b"}, "Relay-Receipt lists 2"),
        ({**relay_headers(1), "Relay-Backend-Status": "2000"}, "not a status"),
        ({**relay_headers(1), "Relay-Backend-Status": "abc"}, "not a status"),
        ({**relay_headers(1), "Relay-Backend-Status": "\uff12\uff10\uff10"}, "not a status"),
        ({**relay_headers(1), "Relay-Receipt": "a b"}, "one receipt per leg"),
        ({**relay_headers(1), "Relay-Request": ","}, "an empty entry"),
    ],
)
def test_headers_that_do_not_fit_the_body_are_refused(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(ExchangeError, match=message):
        answer_objects(Exchange(REQ, ANS, headers))


def test_a_lone_cache_hit_has_nothing_to_verify_and_does_not_pass() -> None:
    objects = answer_objects(Exchange(REQ, ANS, {"Relay-Cache": "hit"}))
    assert [(o.legs, o.source) for o in objects] == [((), "cache")]
    report = Report(tuple(objects), ())
    assert not report.ok
    assert "answered by the cache" in report.lines()[0]


def test_the_status_is_the_header_or_the_one_the_receipt_covers() -> None:
    [obj] = answer_objects(Exchange(REQ, ANS, relay_headers(1)))
    leg = obj.legs[0]
    assert leg.backend_status is None
    assert _answer(leg, response_hash(503, ANS)) == 503  # recovered from the signed hash
    [obj] = answer_objects(Exchange(REQ, ANS, relay_headers(1, **{"Relay-Backend-Status": "200"})))
    with pytest.raises(Exception, match="response_hash"):
        _answer(obj.legs[0], response_hash(503, ANS))
    with pytest.raises(Exception, match="response_hash"):
        _answer(obj.legs[0], hashlib.sha256(b"\x00\xc8" + ANS[:-1]).digest())


def test_a_saved_exchange_is_read_strictly() -> None:
    ok = {"request": "{}", "response": "{}", "headers": {"Relay-Request": "x"}}
    assert Exchange.from_json(ok).request == b"{}"
    for doc, message in [
        ([], "JSON object"),
        ({**ok, "respones": "{}"}, "unknown field 'respones'"),
        ({**ok, "request": 1}, '"request" must be'),
        ({**ok, "headers": {"a": 1}}, '"headers" must map'),
        ({**ok, "response": "\ud800"}, "lone surrogate"),
    ]:
        with pytest.raises(ExchangeError, match=message):
            Exchange.from_json(doc)


def test_a_disagreement_lists_every_signed_answer_as_a_leg() -> None:
    answers = [
        {
            "supplier": f"0x0{k}",
            "relay_request": f"req{k}",
            "relay_receipt": f"rec{k}",
            "backend_status": 200,
            "body_base64": base64.b64encode(body).decode(),
        }
        for k, body in enumerate((ANS, ANS2))
    ]
    error = {"code": -32098, "message": "suppliers disagree", "data": {"answers": answers}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": error}).encode()
    [obj] = answer_objects(Exchange(REQ, body, {}))
    assert obj.source == "disagreement"
    assert [(leg.supplier, leg.response, leg.backend_status) for leg in obj.legs] == [
        ("0x00", (ANS,), 200),
        ("0x01", (ANS2,), 200),
    ]
    # inside a batch, next to a relayed element
    batch = Exchange(
        b"[" + REQ + b"," + REQ2 + b"]",
        b"[" + body + b"," + ANS2 + b"]",
        {"Relay-Request": "-,r", "Relay-Receipt": "-,s", "Relay-Supplier": "-,0x02"},
    )
    first, second = answer_objects(batch)
    assert (first.source, len(first.legs), second.source) == ("disagreement", 2, "relay")
    answers[1]["backend_status"] = 99
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": error}).encode()
    with pytest.raises(ExchangeError, match="bad backend_status"):
        answer_objects(Exchange(REQ, body, {}))
    error["data"] = {}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": error}).encode()
    with pytest.raises(ExchangeError, match=r"without data\.answers"):
        answer_objects(Exchange(REQ, body, {}))


def _frame(index: int, body: bytes) -> str:
    from protocol.relay import WS_STATUS, encode_ws_frame

    frame = encode_ws_frame(index, response_hash(WS_STATUS, body), b"\x01" * 64, body)
    return base64.b64encode(frame).decode()


def test_a_websocket_stream_is_one_leg_per_frame_at_its_index() -> None:
    doc = {
        "request": REQ.decode(),
        "headers": {"Relay-Request": "req0", "Relay-Supplier": "0x" + "ab" * 20},
        "frames": [_frame(0, ANS), _frame(1, ANS2)],
    }
    exchange = Exchange.from_json(doc)
    objects = answer_objects(exchange)
    assert [(o.position, o.source) for o in objects] == [(0, "frame"), (1, "frame")]
    legs = [o.legs[0] for o in objects]
    assert [(leg.index, leg.stream, leg.backend_status) for leg in legs] == [
        (0, True, 101),
        (1, True, 101),
    ]
    assert legs[1].response == (ANS2,) and legs[1].requests == (REQ,)
    assert Exchange.from_json(exchange.to_json()) == exchange  # saved and read back
    bad = [
        {**doc, "frames": [_frame(0, ANS), _frame(0, ANS2)]},  # an index repeated
        {**doc, "frames": ["AAAA"]},  # shorter than the receipt prefix
        {**doc, "frames": []},
        {**doc, "frames": ["not base64!"]},
        {**doc, "response": ANS.decode()},  # an HTTP answer and a stream at once
        {**doc, "headers": {"Relay-Request": "a,b"}},  # one upgrade, one Relay-Request
    ]
    for d in bad:
        with pytest.raises(ExchangeError):
            answer_objects(Exchange.from_json(d))
