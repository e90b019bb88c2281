"""The devnet's process supervisor and state file, without a network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from relaynet.devnet.down import stop_devnet
from relaynet.devnet.state import DevnetError, DevnetState, Layout
from relaynet.devnet.supervisor import (
    SUPERVISOR_NAME,
    PidRecord,
    Supervisor,
    process_start_time,
    read_pid_records,
    stop_records,
)
from relaynet.devnet.up import prepare

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# a child that ignores SIGTERM: only SIGKILL stops it
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('x', flush=True);"
    " time.sleep(60)",
]

STATE = {
    "settlement": {
        "rpc_url": "http://127.0.0.1:1",
        "chain_id": 31337,
        "contracts": {"Token": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
        "token": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    },
    "gateway": {"url": "http://127.0.0.1:2", "metrics_url": "http://127.0.0.1:3/metrics"},
    "services": {
        "eth": {
            "gateway_url": "http://127.0.0.1:2/v1/eth/rn_x",
            "ws_url": "ws://127.0.0.1:2/v1/eth/rn_x",
            "backend_url": "http://127.0.0.1:4",
            "rpc_type": "evm",
        }
    },
    "relayers": [
        {
            "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "url": "http://127.0.0.1:5",
            "metrics_url": "http://127.0.0.1:6/metrics",
            "pid": 123,
        }
    ],
    "apps": [
        {
            "address": "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
            "api_key": "rn_x",
            "service": "eth",
        }
    ],
}


def test_state_round_trip_is_the_documented_shape(tmp_path: Path) -> None:
    state = DevnetState.from_dict(STATE)
    path = tmp_path / "dn" / "state.json"
    state.write(path)
    assert json.loads(path.read_text()) == STATE
    assert path.stat().st_mode & 0o777 == 0o600
    assert DevnetState.read(path) == state


def test_state_checksums_addresses_and_refuses_garbage(tmp_path: Path) -> None:
    data = json.loads(json.dumps(STATE))
    data["relayers"][0]["address"] = data["relayers"][0]["address"].lower()
    data["settlement"]["token"] = data["settlement"]["token"].lower()
    assert (
        DevnetState.from_dict(data).to_dict()["relayers"][0]["address"]
        == (
            STATE["relayers"][0]["address"]  # type: ignore[index]
        )
    )
    assert (
        DevnetState.from_dict(data).to_dict()["settlement"]["token"] == STATE["settlement"]["token"]
    )  # type: ignore[index]
    with pytest.raises(DevnetError):
        DevnetState.from_dict({"settlement": {}})
    with pytest.raises(DevnetError, match="devnet up"):
        DevnetState.read(tmp_path / "missing.json")


def test_children_get_pid_files_and_stop_in_tiers(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    a = sup.spawn("low", SLEEPER, tier=0)
    b = sup.spawn("high", STUBBORN, tier=1)
    records = {r.name: r for r in read_pid_records(tmp_path / "pids")}
    assert set(records) == {"low", "high"}
    assert records["low"].pid == a.pid and records["low"].alive()
    assert records["high"].start_time == process_start_time(b.pid)
    sup.stop_all(timeout=0.5)  # the stubborn one needs SIGKILL
    assert not records["low"].alive() and not records["high"].alive()
    assert a.proc.returncode is not None and b.proc.returncode is not None
    assert list((tmp_path / "pids").glob("*.pid")) == []


def test_a_reused_pid_is_never_signalled() -> None:
    proc = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        start = process_start_time(proc.pid)
        assert start is not None
        impostor = PidRecord("old", proc.pid, start - 1)  # same pid, another process
        assert not impostor.alive()
        assert stop_records([impostor], timeout=0.1) == []
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_down_stops_a_detached_devnet_and_prepare_refuses_while_it_runs(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "dn" / "state.json")
    layout.make()
    sup = Supervisor(layout.root)
    child = sup.spawn("relayer1", SLEEPER, tier=1)
    with pytest.raises(DevnetError, match="still running"):
        prepare(layout)
    stopped = stop_devnet(layout.state_file, timeout=2)
    assert [r.name for r in stopped] == ["relayer1"]
    child.proc.wait(timeout=5)
    assert not (layout.pids / "relayer1.pid").exists()
    prepare(layout)  # nothing alive any more: a fresh start is allowed
    assert layout.pids.is_dir() and not layout.state_file.exists()


def test_down_asks_the_supervisor_first(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "state.json")
    layout.make()
    # a stand-in supervisor: a process recorded under the supervisor's name
    sup = Supervisor(layout.root)
    fake = sup.spawn(SUPERVISOR_NAME, SLEEPER, tier=0)
    stopped = stop_devnet(layout.state_file, timeout=5)
    assert [r.name for r in stopped] == [SUPERVISOR_NAME]
    assert fake.proc.wait(timeout=5) != 0


def test_a_plan_never_hands_out_a_port_twice() -> None:
    from relaynet.devnet.plan import make_plan

    for _ in range(20):
        plan = make_plan()
        ports = [
            plan.settlement_port,
            plan.gateway_port,
            plan.gateway_metrics_port,
            *(b.port for b in plan.backends.values()),
            *(p for r in plan.relayers for p in (r.port, r.metrics_port)),
        ]
        assert len(set(ports)) == len(ports)
