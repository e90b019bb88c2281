"""What an operator reads off a running relayer (a real subprocess on real anvils): the account
gauges (gas against a claim's cost, stake, locked, headroom, token balance) and the disk's,
request ids (the gateway's when sent) in the answers and in every log line of the relay, and a
SIGHUP that re-applies the log format and level and names what needs a restart."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Iterator

import aiohttp
import pytest

from ledger.client import LedgerClient
from tests.relayer.test_relayer_anvil import post, sign
from tests.support.relayer_net import BIG_APP_STAKE, SUPPLIER_STAKE, Net, relayer_network
from tests.support.relayer_proc import ServiceBackend

pytestmark = pytest.mark.slow  # starts processes (anvil, our relayer)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with relayer_network(
        tmp_path_factory.mktemp("relayer-ops"),
        services={"devnet": ServiceBackend("anvil")},
        staked_services=("devnet",),
        app_services={"main": ("devnet", BIG_APP_STAKE)},
    ) as n:
        yield n


async def _metrics(net: Net) -> dict[str, float]:
    url = f"http://127.0.0.1:{net.files.metrics_port}/metrics"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        text = await r.text()
    return {
        name: float(value)
        for name, value in re.findall(r"^(relaynet_relayer_[a-z_]+) (\S+)$", text, re.M)
    }


async def test_the_account_and_disk_gauges_say_how_long_the_relayer_can_claim(net: Net) -> None:
    for _ in range(100):  # read at start, then every metrics.account_interval
        m = await _metrics(net)
        if m["relaynet_relayer_account_refreshed_timestamp_seconds"] > 0:
            break
        await asyncio.sleep(0.1)
    assert m["relaynet_relayer_account_refreshed_timestamp_seconds"] > 0
    async with LedgerClient(net.chain.url, net.network.deployment) as client:
        gas = await client.eth_balance(net.supplier.address)
        tokens = await client.balance(net.supplier.address)
    # read before the checkpoints it has sent since: at least what it holds now, at most 1000 ETH
    assert float(gas) <= m["relaynet_relayer_gas_balance_wei"] <= 1e21 and gas > 0
    assert m["relaynet_relayer_token_balance"] == float(tokens)
    assert m["relaynet_relayer_stake"] == float(SUPPLIER_STAKE)
    assert m["relaynet_relayer_stake_locked"] == 0.0
    assert m["relaynet_relayer_stake_headroom"] == float(SUPPLIER_STAKE)
    assert m["relaynet_relayer_claim_gas_cost_wei"] > 0  # 800,000 gas at the chain's price
    assert m["relaynet_relayer_data_free_bytes"] > 0
    assert 0 < m["relaynet_relayer_data_free_ratio"] <= 1
    log = net.relayer.log_path.read_text()
    assert re.search(r"account: gas [\d.,]+ ETH .* stake [\d,]+ RLY, locked 0 RLY", log), log


def _lines_after(net: Net, offset: int) -> str:
    return net.relayer.log_path.read_text()[offset:]


async def _wait_for(net: Net, offset: int, needle: str) -> str:
    for _ in range(100):
        text = _lines_after(net, offset)
        if needle in text:
            return text
        await asyncio.sleep(0.1)
    return _lines_after(net, offset)


async def test_request_ids_and_a_sighup_that_switches_the_logs_to_json_at_debug(
    net: Net,
) -> None:
    status, _body, headers = await post(net, sign(net), **{"Relay-Request-Id": "gw-req-42"})
    assert status == 200 and headers["Relay-Request-Id"] == "gw-req-42"
    _s, _b, headers = await post(net, sign(net))
    assert re.fullmatch(r"[0-9a-f]{16}", headers["Relay-Request-Id"])  # made here
    _s, _b, headers = await post(net, sign(net), **{"Relay-Request-Id": "bad id {x}"})
    assert re.fullmatch(r"[0-9a-f]{16}", headers["Relay-Request-Id"])  # never logged as sent

    config = net.files.config
    before = config.read_text()
    changed = before.replace(
        "shutdown_grace = 1.0", 'shutdown_grace = 2.0\nlog_format = "json"\nlog_level = "debug"'
    ).replace("min_reward = 0", "min_reward = 5")
    assert changed != before
    config.write_text(changed)
    offset = len(net.relayer.log_path.read_text())
    pid = net.relayer.pid
    assert pid is not None
    try:
        os.kill(pid, signal.SIGHUP)
        text = await _wait_for(net, offset, "need a restart")
        assert "SIGHUP: config reloaded" in text, text
        assert "need a restart and were left as they were: server.shutdown_grace" in text, text

        offset = len(net.relayer.log_path.read_text())
        status, _body, _h = await post(net, sign(net), **{"Relay-Request-Id": "gw-req-43"})
        assert status == 200
        text = await _wait_for(net, offset, "gw-req-43")
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        answered = [d for d in lines if d.get("request_id") == "gw-req-43"]
        assert answered and answered[0]["msg"].startswith("answered devnet session "), text
        assert answered[0]["level"] == "debug"
    finally:
        config.write_text(before)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "level" not in _lines_after(net, offset) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
