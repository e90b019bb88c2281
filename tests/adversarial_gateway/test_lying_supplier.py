"""A lying supplier in the session (DESIGN §3.3, §4): clients with retries off get every
answer from an honest supplier, the liar is counted in selection, the gateway's answer memory
stays within its budget, and one supplier cannot push a client's ``eth_blockNumber`` floor.

Real parts: two relayer subprocesses over anvil, the gateway as a subprocess; the liar is the
scripted :class:`~tests.adversarial_gateway.liar.LyingRelayer`, a staked supplier whose
receipts verify whenever it is honest.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.adversarial_gateway.conftest import BUDGET, CAP, LiarNet
from tests.adversarial_gateway.liar import HUGE_HEIGHT
from tests.support.gateway_net import post

pytestmark = pytest.mark.slow  # starts processes (anvil, relayers, a gateway)

ACCOUNT = "0x" + "11" * 20
MAX_CALLS = 3000  # per lie, bounded in count …
MAX_SECONDS = 120.0  # … and in time


def _metrics(net: LiarNet) -> str:
    with urllib.request.urlopen(net.gateway.metrics_url, timeout=10) as resp:  # noqa: S310
        return resp.read().decode()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _lies(net: LiarNet, supplier: str, kind: str | None = None) -> float:
    labels = {"supplier": supplier} if kind is None else {"supplier": supplier, "kind": kind}
    return _metric(_metrics(net), "relaynet_gateway_supplier_lies_total", **labels)


def _direct(net: LiarNet, method: str, params: list[Any], id_: str) -> Any:
    body = orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
    status, data, _ = post(net.backend.url, body)
    assert status == 200
    return orjson.loads(data)


def _vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        m = re.search(r"VmHWM:\s+(\d+) kB", fh.read())
    assert m is not None
    return int(m.group(1)) * 1024


def _until_lied(
    net: LiarNet, mode: str, method: str, params: list[Any], check: Callable[[Any], None]
) -> int:
    """Send single calls (no client retries) until the liar told ``mode`` lies; every answer
    must come from an honest supplier and pass ``check``. Returns the calls sent."""
    honest = {"0x" + s.key.address.hex() for s in net.network.suppliers[:2]}
    net.liar_in_session()
    net.liar.mode = mode
    before = net.liar.served[mode]
    sent = 0
    deadline = time.monotonic() + MAX_SECONDS

    def one(i: int) -> None:
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": f"t-{mode}-{i}", "method": method, "params": params}
        )
        status, data, headers = post(net.rpc_url, body)
        assert status == 200, (mode, status, data)
        answer = orjson.loads(data)
        assert answer["id"] == f"t-{mode}-{i}"
        assert "error" not in answer, (mode, answer)
        check(answer["result"])
        assert headers.get("Relay-Supplier") in honest, (mode, headers)
        assert re.fullmatch(r"[1-5][0-9]{2}", headers["Relay-Backend-Status"])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        while net.liar.served[mode] - before < 2:
            assert sent < MAX_CALLS and time.monotonic() < deadline, (
                f"the liar was not asked in mode {mode!r} ({sent} calls)"
            )
            for fut in [pool.submit(one, sent + k) for k in range(8)]:
                fut.result()
            sent += 8
            if sent % 400 == 0:
                net.liar_in_session()  # in case the chain moved on to a session without it
    net.liar.mode = "honest"
    return sent


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("status", "answer"),  # Relay-Backend-Status: 70000
        ("receipt", "answer"),  # response_hash ≠ sha256(status ‖ body)
        ("encoding", "answer"),  # Content-Encoding on a relayed answer
        ("fatal", "refusal"),  # an invented "fatal" code
        ("lie_code", "refusal"),  # BAD_SIGNATURE for a request the gateway signed
    ],
)
def test_lies_are_retried_elsewhere_and_penalised(liarnet: LiarNet, mode: str, kind: str) -> None:
    expected = _direct(liarnet, "eth_getBalance", [ACCOUNT, "latest"], "d")["result"]
    lies_before = _lies(liarnet, liarnet.liar_hex, kind)

    def same_balance(result: Any) -> None:
        assert result == expected

    _until_lied(liarnet, mode, "eth_getBalance", [ACCOUNT, "latest"], same_balance)
    assert _lies(liarnet, liarnet.liar_hex, kind) >= lies_before + 2
    # penalised in selection: its failure rate rose above the honest ones
    text = _metrics(liarnet)
    rate = "relaynet_gateway_supplier_error_rate"
    liar_rate = _metric(text, rate, supplier=liarnet.liar_hex)
    assert liar_rate > 0
    for honest in liarnet.network.suppliers[:2]:
        assert _lies(liarnet, "0x" + honest.key.address.hex()) == 0
        assert _metric(text, rate, supplier="0x" + honest.key.address.hex()) < liar_rate


def test_oversized_answers_never_buffered_past_the_cap(liarnet: LiarNet) -> None:
    pid = liarnet.gateway.pid
    assert pid is not None
    hwm_before = _vm_hwm(pid)
    streamed_before = liarnet.liar.streamed
    served_before = liarnet.liar.served["oversized"]
    expected = _direct(liarnet, "eth_getBalance", [ACCOUNT, "latest"], "d")["result"]

    def same_balance(result: Any) -> None:
        assert result == expected

    _until_lied(liarnet, "oversized", "eth_getBalance", [ACCOUNT, "latest"], same_balance)
    served = liarnet.liar.served["oversized"] - served_before
    # the gateway hung up after the cap: the liar could not push its 200 MiB answers
    per_answer = (liarnet.liar.streamed - streamed_before) / served
    assert per_answer < 32 * 1024 * 1024, per_answer
    # memory: answers held at once stayed within the budget, the process did not balloon
    text = _metrics(liarnet)
    assert 0 < _metric(text, "relaynet_gateway_answer_bytes_peak") <= BUDGET
    assert _metric(text, "relaynet_gateway_answer_bytes") <= BUDGET
    assert _vm_hwm(pid) - hwm_before < 64 * 1024 * 1024
    # counted against the liar, because the honest suppliers answered within the cap
    assert _lies(liarnet, liarnet.liar_hex, "oversized") >= served
    assert CAP < 200 * 1024 * 1024


def test_a_huge_height_never_reaches_a_client_or_its_floor(liarnet: LiarNet) -> None:
    real = int(_direct(liarnet, "eth_blockNumber", [], "d")["result"], 16)
    seen: list[int] = []

    def sane(result: Any) -> None:
        height = int(result, 16)
        assert height != HUGE_HEIGHT
        assert height <= real + 10
        seen.append(height)

    _until_lied(liarnet, "height", "eth_blockNumber", [], sane)
    assert _lies(liarnet, liarnet.liar_hex, "height") >= 1
    # the floor stayed sane: with the liar honest again, the client still gets the real head
    for i in range(20):
        status, data, _ = post(
            liarnet.rpc_url,
            orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []}),
        )
        assert status == 200
        assert int(orjson.loads(data)["result"], 16) <= real + 10
