"""``relaynet devnet up`` end to end, as a user runs it: a subprocess, its state file, its URLs.

One devnet for the module (starting one costs ~15 s): reads through the gateway for each EVM
service; one relayer killed under read load costs no failed read (the client never retries);
claims settle and relayer balances grow; ``devnet down`` leaves no child alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protocol.encoding import address_to_checksum
from relaynet.devnet.supervisor import PidRecord, read_pid_records

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


REPO = Path(__file__).resolve().parents[2]
UP_TIMEOUT = 90.0


@dataclass
class RunningDevnet:
    proc: subprocess.Popen[bytes]
    state_file: Path
    state: dict[str, Any]
    output: Path


def _cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaynet", "devnet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def rpc(url: str, method: str, params: list[Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One JSON-RPC call, no retries: (HTTP status, decoded body)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []})
    req = urllib.request.Request(  # noqa: S310 - loopback devnet
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevnet]:
    root = tmp_path_factory.mktemp("devnet")
    state_file = root / "dn" / "state.json"
    output = root / "up.log"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "relaynet", "devnet", "up", "--state-file", str(state_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + UP_TIMEOUT
        while not state_file.exists():
            assert proc.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "devnet not up:\n" + output.read_text()
            time.sleep(0.2)
        yield RunningDevnet(proc, state_file, json.loads(state_file.read_text()), output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        _cli("down", "--state-file", str(state_file))


def test_state_file_has_the_documented_shape(devnet: RunningDevnet) -> None:
    state = devnet.state
    assert set(state) == {"settlement", "gateway", "services", "relayers", "apps", "deployment"}
    assert state["deployment"]["contracts"] == state["settlement"]["contracts"]
    assert state["settlement"]["chain_id"] == 31337
    assert set(state["settlement"]) == {"rpc_url", "chain_id", "contracts", "token"}
    assert state["settlement"]["token"] == state["settlement"]["contracts"]["Token"]
    assert set(state["services"]) == {"eth", "rollchain-evm", "rollchain-rpc", "celestia"}
    for svc in state["services"].values():
        assert set(svc) == {"gateway_url", "ws_url", "backend_url", "rpc_type"}
        assert svc["gateway_url"].startswith(state["gateway"]["url"] + "/v1/")
        assert svc["ws_url"] == svc["gateway_url"].replace("http://", "ws://")
    assert len(state["relayers"]) == 3
    assert len({r["pid"] for r in state["relayers"]}) == 3
    assert sorted(a["service"] for a in state["apps"]) == sorted(state["services"])
    addresses = [
        *state["settlement"]["contracts"].values(),
        *(r["address"] for r in state["relayers"]),
        *(a["address"] for a in state["apps"]),
    ]
    # EIP-55, so web3.py takes the token address as written
    assert all(a == address_to_checksum(bytes.fromhex(a[2:])) for a in addresses)
    banner = devnet.output.read_text()
    for svc in state["services"].values():
        assert "curl -s -H 'Content-Type: application/json' --data" in banner
        assert svc["gateway_url"] in banner


def test_every_service_answers_through_the_gateway(devnet: RunningDevnet) -> None:
    for sid, svc in devnet.state["services"].items():
        if svc["rpc_type"] == "evm":
            status, direct = rpc(svc["backend_url"], "eth_chainId")
            assert status == 200
            status, body = rpc(svc["gateway_url"], "eth_chainId")
            assert (status, body.get("result")) == (200, direct["result"]), sid
            status, body = rpc(
                svc["gateway_url"],
                "eth_getBalance",
                ["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "latest"],
            )
            assert status == 200 and int(body["result"], 16) > 0, (sid, body)
        elif svc["rpc_type"] == "cometbft":
            status, body = rpc(svc["gateway_url"], "status")
            assert status == 200 and "node_info" in body["result"], body
        else:
            status, body = rpc(svc["gateway_url"], "header.NetworkHead")
            assert status == 200 and body["result"]["header"]["chain_id"] == "mocha-4", body


def test_killing_a_relayer_fails_no_read(devnet: RunningDevnet) -> None:
    urls = [s["gateway_url"] for s in devnet.state["services"].values() if s["rpc_type"] == "evm"]
    failures: list[str] = []
    done = 0
    stop = threading.Event()

    def reader(url: str) -> None:
        nonlocal done
        while not stop.is_set():
            status, body = rpc(url, "eth_blockNumber")
            if status != 200 or "result" not in body:
                failures.append(f"{url}: {status} {body}")
            else:
                done += 1

    threads = [threading.Thread(target=reader, args=(u,)) for u in urls for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        victim = devnet.state["relayers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        time.sleep(8)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert not failures, failures[:5]
    assert done > 50


def test_fund_creates_and_funds_an_account(devnet: RunningDevnet, tmp_path: Path) -> None:
    passphrase = tmp_path / "pass"
    passphrase.write_text("journey\n")
    keystore = tmp_path / "team.json"
    result = _cli(
        "fund",
        "--keystore",
        str(keystore),
        "--passphrase-file",
        str(passphrase),
        "--tokens",
        "12rly",
        "--gas",
        "3eth",
        "--state-file",
        str(devnet.state_file),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert keystore.exists() and keystore.stat().st_mode & 0o777 == 0o600
    assert "12 RLY" in result.stdout and "gas 3 ETH" in result.stdout
    status, body = rpc(
        devnet.state["settlement"]["rpc_url"],
        "eth_getBalance",
        [result.stdout.split()[2], "latest"],  # "new account 0x… in …"
    )
    assert status == 200 and int(body["result"], 16) == 3 * 10**18


def test_claims_settle_and_balances_grow_then_down_stops_everything(
    devnet: RunningDevnet,
) -> None:
    result = _cli(
        "status",
        "--wait",
        "--timeout",
        "120",
        "--json",
        "--state-file",
        str(devnet.state_file),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["settled_claims"] >= 1
    assert report["relayers_with_grown_balance"] >= 1
    grown = [r for r in report["relayers"] if r.get("earned", 0) > 0]
    assert all(r["balance"] > 0 and r["rewards"] > 0 for r in grown)

    records: list[PidRecord] = read_pid_records(devnet.state_file.parent / "pids")
    assert {r.name for r in records} >= {"gateway", "relayer2", "relayer3", "settlement-anvil"}
    down = _cli("down", "--state-file", str(devnet.state_file))
    assert down.returncode == 0, down.stderr
    assert devnet.proc.wait(timeout=30) == 0
    assert [r for r in records if r.alive()] == []
    assert list((devnet.state_file.parent / "pids").glob("*.pid")) == []
    assert "every devnet process is stopped" in devnet.output.read_text()
