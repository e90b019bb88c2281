"""What the devnet prints: the status table and the banner (no network)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from relaynet.devnet.banner import example_call, render_banner
from relaynet.devnet.state import DevnetState
from relaynet.devnet.status import DevnetStatus, render

ROW = {
    "name": "relayer1",
    "address": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    "pid": 1,
    "running": False,
    "sessions": 4,
    "relays": 120,
    "claims_by_state": {"settled": 2, "claimed": 1},
    "proofs": 2,
    "rewards": 31_500_000_000_000,
    "balance": 10**21,
    "earned": 31_500_000_000_000,
}


def test_status_counts_settled_claims_and_grown_balances() -> None:
    idle = dict(ROW, claims_by_state={"claimed": 1}, earned=0, rewards=0)
    status = DevnetStatus(head=120, session=11, relayers=[ROW, idle])
    assert (status.settled, status.grown, status.relays) == (2, 1, 240)
    text = render(status)
    assert "settlement head 120, session 11" in text
    assert "name" in text and "balance +RLY" in text  # a header
    assert "2/3" in text and "claimed 1, settled 2" in text
    assert "0.000032" in text  # rewards in RLY, 6 decimals
    assert "total: 240 relays, 2 claims settled, 1 relayer balance(s) grew" in text
    assert json.loads(json.dumps(status.to_json()))["settled_claims"] == 2


def test_unreachable_chain_is_said_not_hidden() -> None:
    row = {k: v for k, v in ROW.items() if k not in ("balance", "earned")}
    text = render(DevnetStatus(None, None, [row], error="settlement chain unreachable: boom"))
    assert text.startswith("settlement chain unreachable: boom")
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("relayer1")]
    assert line.split()[3] == "?"  # staked: unknown
    assert line.split()[-6:-4] == ["0.000032", "-"]  # rewards; balance +RLY unknown


def test_banner_curl_is_pasteable_for_every_service() -> None:
    from tests.devnet.test_supervisor import STATE

    data = json.loads(json.dumps(STATE))
    data["services"]["celestia"] = dict(data["services"]["eth"], rpc_type="celestia")
    state = DevnetState.from_dict(data)
    text = render_banner(state, Path(".devnet/state.json"), 12.3)
    curls = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == 2
    for line, (sid, svc) in zip(curls, state.services.items(), strict=True):
        argv = shlex.split(line)
        assert argv[-1] == svc.gateway_url
        assert json.loads(argv[argv.index("--data") + 1]) == example_call(svc.rpc_type), sid
    assert "Web3(Web3.HTTPProvider('http://127.0.0.1:2/v1/eth/rn_x'))" in text
    assert "relaynet devnet status --wait" in text and "--state-file" not in text
