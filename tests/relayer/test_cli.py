"""``relaynet relayer init`` and ``status``: keys (0600), config, backend checks, the stake
command; the status of a data folder."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from typer.testing import CliRunner

from ledger.anvil import AnvilProcess
from protocol.encoding import address_to_checksum
from protocol.keys import decrypt_keystore
from relayer.claimer import ClaimRecord, ClaimState, ClaimStore
from relayer.relaylog import RelayLog, SessionKey
from relaynet.commands.relayer import app
from relaynet.config import load_relayer as load_config

runner = CliRunner()


def _init(tmp: Path, backend: str, chain: str, *extra: str) -> object:
    return runner.invoke(
        app,
        [
            "init",
            "--dir",
            str(tmp / "r"),
            "--service",
            f"devnet={backend}",
            "--chain",
            f"devnet={chain}",
            "--header",
            "devnet=X-Node-Token:tok",
            "--rpc-url",
            "http://127.0.0.1:8545",
            "--deployment",
            str(tmp / "deployment.json"),
            "--port",
            "9999",
            "--public-url",
            "https://relay.example:443",
            "--passphrase-env",
            "TEST_RELAYER_PW",
            "--no-interactive",
            *extra,
        ],
        env={"TEST_RELAYER_PW": "pw-123"},
    )


def test_init_writes_keys_config_checks_backend_and_prints_stake_command(
    tmp_path: Path, anvil: AnvilProcess
) -> None:
    result = _init(tmp_path, anvil.url, "devnet")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = result.output  # type: ignore[attr-defined]
    base = tmp_path / "r"
    for f in ("relayer.toml", "keys/supplier.json", "keys/receipt-key.json"):
        assert stat.S_IMODE(os.stat(base / f).st_mode) == 0o600, f
    assert "devnet: backend ok — chain 31337" in out
    address = re.search(r"supplier account (0x[0-9a-fA-F]{40})", out).group(1)  # type: ignore[union-attr]
    key = decrypt_keystore((base / "keys/supplier.json").read_bytes(), "pw-123")
    from protocol.keys import AccountKey

    assert address_to_checksum(AccountKey(key).address) == address  # EIP-55 in the output
    assert (
        "relaynet supplier stake --amount 1000rly "
        "--service devnet=https://relay.example:443/v1/relay"
    ) in out
    assert f"--keystore {base / 'keys/supplier.json'}" in out
    assert "--passphrase-env TEST_RELAYER_PW" in out
    text = (base / "relayer.toml").read_text()
    assert "pw-123" not in text and "${TEST_RELAYER_PW}" in text
    cfg = load_config(base / "relayer.toml", env={"TEST_RELAYER_PW": "pw-123"}, check_files=False)
    assert cfg.passphrase() == "pw-123"
    assert cfg.services["devnet"].backends == {"rpc": anvil.url}
    assert cfg.services["devnet"].header_values() == {"X-Node-Token": "tok"}
    assert cfg.server.port == 9999


def test_init_refuses_a_backend_of_another_chain(tmp_path: Path, anvil: AnvilProcess) -> None:
    result = _init(tmp_path, anvil.url, "eth")  # mainnet spec, anvil is 31337
    assert result.exit_code == 1
    assert "wrong_chain" in result.output  # type: ignore[attr-defined]


def test_status_shows_sessions_claims_rewards_and_gas(tmp_path: Path) -> None:
    result = _init(tmp_path, "http://127.0.0.1:1", "devnet", "--no-check")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    cfg_path = tmp_path / "r" / "relayer.toml"
    data = tmp_path / "r" / "data"
    app_addr = b"\x07" * 20
    rlog = RelayLog(data / "logs")
    log = rlog.open(SessionKey("devnet", app_addr, 5))
    for i in range(3):
        log.append(i.to_bytes(32, "big"), bytes(326))
    log.close()
    store = ClaimStore(data / "claims")
    settled = {"relays": 10, "claimed": 10**20, "reward": 9 * 10**19, "gas_wei": 12345}
    skipped = {"relays": 1, "reason": "reward 5 below min_reward 10"}
    for n, state, fields in ((4, ClaimState.SETTLED, settled), (3, ClaimState.SKIPPED, skipped)):
        record = ClaimRecord("devnet", "0x" + app_addr.hex(), n, state=state, **fields)
        store.save(SessionKey("devnet", app_addr, n), record)
    result = runner.invoke(
        app,
        ["status", "--config", str(cfg_path), "--json", "--no-chain"],
        env={"TEST_RELAYER_PW": "pw-123"},
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    report = json.loads(result.output)  # type: ignore[attr-defined]
    assert report["sessions_served"] == 3
    assert report["relays_per_service"] == {"devnet": 14}
    assert report["claims_by_state"] == {"settled": 1, "skipped": 1}
    assert report["rewards"] == 9 * 10**19 and report["gas_spent_wei"] == 12345
    text = runner.invoke(
        app,
        ["status", "--config", str(cfg_path), "--no-chain"],
        env={"TEST_RELAYER_PW": "pw-123"},
    ).output  # type: ignore[attr-defined]
    assert "below min_reward" in text and "settled" in text


def test_init_takes_the_rpc_url_from_the_deployment_file(tmp_path: Path) -> None:
    deployment = tmp_path / "deployment.json"
    deployment.write_text(json.dumps({"rpc_url": "http://127.0.0.1:8545", "contracts": {}}))
    args = [
        "init",
        "--dir",
        str(tmp_path / "r"),
        "--service",
        "devnet=http://127.0.0.1:1",
        "--passphrase-env",
        "TEST_RELAYER_PW",
        "--no-interactive",
        "--no-check",
    ]
    env = {"TEST_RELAYER_PW": "pw-123"}
    missing = runner.invoke(app, [*args, "--deployment", str(tmp_path / "none.json")], env=env)
    assert missing.exit_code == 1
    assert f"deployment file {tmp_path / 'none.json'} not found" in missing.output
    assert not (tmp_path / "r" / "keys").exists()  # nothing written before the refusal
    result = runner.invoke(app, [*args, "--deployment", str(deployment)], env=env)
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "r" / "relayer.toml", env=env, check_files=False)
    assert cfg.chain.rpc_url == "http://127.0.0.1:8545"
    assert "--rpc-url http://127.0.0.1:8545" in result.output  # in the stake command


def test_status_last_n_shows_the_newest_sessions_under_a_header(tmp_path: Path) -> None:
    assert _init(tmp_path, "http://127.0.0.1:1", "devnet", "--no-check").exit_code == 0
    store = ClaimStore(tmp_path / "r" / "data" / "claims")
    for n in range(1, 6):
        record = ClaimRecord("devnet", "0x" + "07" * 20, n, state=ClaimState.SETTLED, relays=n)
        store.save(SessionKey("devnet", b"\x07" * 20, n), record)
    cfg = str(tmp_path / "r" / "relayer.toml")
    env = {"TEST_RELAYER_PW": "pw-123"}
    text = runner.invoke(app, ["status", "--config", cfg, "--no-chain", "--last", "2"], env=env)
    assert text.exit_code == 0, text.output
    rows = [ln.split() for ln in text.output.splitlines() if ln.strip().startswith("devnet ")]
    assert [r[1] for r in rows] == ["5", "4"]  # newest first, only the last two sessions
    assert "service" in text.output and "session" in text.output  # the header
    assert "2 of 5 claims; --last N for more" in text.output
    doc = runner.invoke(
        app, ["status", "--config", cfg, "--no-chain", "--json", "--last", "3"], env=env
    )
    assert sorted(c["session"] for c in json.loads(doc.output)["claims"]) == [3, 4, 5]
