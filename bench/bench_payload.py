"""The payload rule's cost (DESIGN §3.3: "the duplicate scan reads the top level once, in
linear time"): ``protocol.payload.check_jsonrpc_payload`` against the former per-value scanner
(``value_end`` of the old gateway/jsonrpc.py, kept here as the reference) and orjson alone, on a
120 KB raw transaction and on hostile bodies of the same size.

    python -m bench payload
"""

from __future__ import annotations

import os
import re
import timeit

import orjson

from protocol.payload import PayloadError, check_jsonrpc_payload

__all__ = ["main"]

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _old_value_end(data: bytes, pos: int) -> int:
    """The scanner the gateway used before the payload rule (one regex step per character)."""
    first = data[pos]
    if first == 0x22:
        m = _STRING.match(data, pos)
        assert m is not None
        return m.end()
    depth, n = 0, len(data)
    while pos < n:
        ch = data[pos]
        if ch == 0x22:
            m = _STRING.match(data, pos)
            assert m is not None
            pos = m.end()
            continue
        if ch in (0x5B, 0x7B):
            depth += 1
        elif ch in (0x5D, 0x7D):
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise ValueError("unterminated")


def _ms(fn: object, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e3  # type: ignore[arg-type]


def _rule(payload: bytes) -> None:
    try:
        check_jsonrpc_payload(payload)
    except PayloadError:
        pass


def main(argv: list[str]) -> int:
    del argv
    tx = (
        b'{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x'
        + os.urandom(60_000).hex().encode()
        + b'"]}'
    )
    empties = b'{"jsonrpc":"2.0","id":1,"method":"m","params":[' + b",".join([b"[]"] * 40_000)
    strings = b'{"jsonrpc":"2.0","id":1,"method":"m","params":[' + b",".join([b'""'] * 40_000)
    rows = [
        ("raw transaction", tx),
        ("40k empty arrays", empties + b"]}"),
        ("40k empty strings", strings + b"]}"),
        ("repeated key", tx[:-1] + b',"method":"eth_chainId"}'),
    ]
    print(f"{'body':<20}{'bytes':>9}{'rule ms':>10}{'orjson ms':>11}{'old scan ms':>13}")
    for name, body in rows:
        start = body.index(b"[")
        print(
            f"{name:<20}{len(body):>9}{_ms(lambda b=body: _rule(b), 50):>10.3f}"
            f"{_ms(lambda b=body: orjson.loads(b), 50):>11.3f}"
            f"{_ms(lambda b=body, s=start: _old_value_end(b, s), 10):>13.3f}"
        )
    return 0
