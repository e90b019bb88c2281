"""The one config loader (relaynet/config.py): expansion on parsed values, environment overrides,
paths from the file's folder, placeholders and removed keys refused, one-line messages.

Each message test pins the whole line a operator sees after ``error: ``: the file, the key and
the fix, no traceback, no library dump, no URL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from relaynet.cli import app
from relaynet.config import ConfigProblem, load_gateway, load_relayer

KEY = "0x" + "11" * 32

GATEWAY = """\
# the key comes from ${GW_KEY_NOT_SET_ANYWHERE} in production
[gateway]
listen = "127.0.0.1:18545"
private_key = "${GW_KEY}"

[settlement]
rpc_url = "${RPC:-http://127.0.0.1:8545}"
deployment = "deploy/deployment.json"

[keys]
file = "keys.json"

[services.eth]
catalogue = "devnet"
"""

RELAYER = """\
data_dir = "data"

[keys]
supplier_keystore = "keys/supplier.json"
receipt_key = "keys/receipt-key.json"
passphrase = "${PW}"

[chain]
rpc_url = "http://127.0.0.1:8545"
deployment = "deployment.json"

[services.eth]
chain = "devnet"
backends = { rpc = "http://127.0.0.1:8545" }
"""


def _gateway(tmp_path: Path, text: str = GATEWAY, **extra: str) -> Path:
    (tmp_path / "deploy").mkdir(exist_ok=True)
    (tmp_path / "deploy" / "deployment.json").write_text("{}")
    path = tmp_path / "gw.toml"
    path.write_text(text + "".join(extra.values()))
    return path


def _relayer(tmp_path: Path, text: str = RELAYER) -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    for name in ("keys/supplier.json", "keys/receipt-key.json", "deployment.json"):
        (tmp_path / name).write_text("{}")
    path = tmp_path / "relayer.toml"
    path.write_text(text)
    return path


def _problem(path: Path, env: dict[str, str], *, relayer: bool = False) -> str:
    with pytest.raises(ConfigProblem) as info:
        (load_relayer if relayer else load_gateway)(path, env=env)
    message = info.value.message
    assert "\n" not in message and "pydantic" not in message and "https://" not in message
    return message


# -- what loads --------------------------------------------------------------------------------


def test_expansion_is_on_parsed_values_with_defaults_and_never_recursive(tmp_path: Path) -> None:
    path = _gateway(tmp_path)
    # the comment's unset ${…} does not stop start-up; ${RPC:-…} takes its default
    cfg = load_gateway(path, env={"GW_KEY": KEY})
    assert cfg.gateway.key_bytes() == bytes.fromhex("11" * 32)
    assert cfg.settlement.rpc_url == "http://127.0.0.1:8545"
    # a value from the environment is not expanded again, and a quote in it breaks nothing
    rel = _relayer(tmp_path)
    secret = 'pa"ss ${HOME} \\ word'
    assert load_relayer(rel, env={"PW": secret}).passphrase() == secret
    # $${X} is a literal ${X}
    rel.write_text(RELAYER.replace('"${PW}"', '"$${PW}"'))
    assert load_relayer(rel, env={}).passphrase() == "${PW}"


def test_environment_overrides_file_overrides_default(tmp_path: Path) -> None:
    path = _gateway(tmp_path, GATEWAY + "\n[qos]\nprobe_interval = 2.5\nmax_height_lag = 7\n")
    env = {
        "GW_KEY": KEY,
        "RPC": "http://chain.example:8545",
        "RELAYNET_GATEWAY__REDIS__URL": "redis://127.0.0.1:6390/0",
        "RELAYNET_GATEWAY__QOS__PROBE_INTERVAL": "0.5",
        "RELAYNET_GATEWAY__GATEWAY__DEVNET": "true",
        "RELAYNET_RELAYER__SERVER__PORT": "1",  # the relayer's: ignored by the gateway
    }
    cfg = load_gateway(path, env=env)
    assert cfg.redis is not None and cfg.redis.url.get_secret_value() == "redis://127.0.0.1:6390/0"
    assert cfg.qos.probe_interval == 0.5  # env over file
    assert cfg.qos.max_height_lag == 7  # file over default
    assert cfg.qos.breaker_failures == 3  # default
    assert cfg.gateway.devnet is True
    assert cfg.settlement.rpc_url == "http://chain.example:8545"


def test_relative_paths_start_at_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _gateway(tmp_path)
    monkeypatch.chdir("/")
    cfg = load_gateway(Path(path), env={"GW_KEY": KEY})
    assert cfg.settlement.deployment == tmp_path / "deploy" / "deployment.json"
    assert cfg.keys.file == tmp_path / "keys.json"
    rel = load_relayer(_relayer(tmp_path), env={"PW": "x"})
    assert rel.keys.supplier_keystore == tmp_path / "keys" / "supplier.json"
    assert rel.data_dir == tmp_path / "data"


# -- mistakes, one line each ---------------------------------------------------------------------


def test_unknown_key_names_the_key_and_a_close_match(tmp_path: Path) -> None:
    path = _gateway(tmp_path, GATEWAY + "\n[limits]\nmax_batchh = 3\n")
    assert _problem(path, {"GW_KEY": KEY}) == (
        f"{path}: unknown key `limits.max_batchh` (did you mean `max_batch`?) — delete it or "
        "check its spelling"
    )


def test_unknown_key_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    path = _gateway(tmp_path)
    env = {"GW_KEY": KEY, "RELAYNET_GATEWAY__REDIS__URLL": "redis://x"}
    assert _problem(path, env) == (
        f"{path}: `redis.url` is missing — add it; unknown key `redis.urll` (from "
        "RELAYNET_GATEWAY__REDIS__URLL) (did you mean `url`?) — delete it or check its spelling"
    )


def test_unset_variable_names_the_key_and_both_fixes(tmp_path: Path) -> None:
    path = _gateway(tmp_path)
    assert _problem(path, {}) == (
        f"{path}: `gateway.private_key` uses ${{GW_KEY}}, which is not set — export GW_KEY, or "
        "write ${GW_KEY:-default}"
    )


def test_placeholder_from_the_readme_is_refused(tmp_path: Path) -> None:
    path = _gateway(tmp_path, GATEWAY.replace("${RPC:-http://127.0.0.1:8545}", "…"))
    assert _problem(path, {"GW_KEY": KEY}) == (
        f"{path}: `settlement.rpc_url` = '…' is a placeholder — put the real value there"
    )
    for value in ("<your node URL>", "changeme", "0x…"):
        rel = _relayer(tmp_path, RELAYER.replace("http://127.0.0.1:8545", value, 1))
        assert "is a placeholder" in _problem(rel, {"PW": "x"}, relayer=True)


def test_removed_option_says_delete_the_line(tmp_path: Path) -> None:
    path = _gateway(tmp_path, GATEWAY + "\n[qos]\nprefetch_blocks = 2\n")
    assert _problem(path, {"GW_KEY": KEY}).startswith(
        f"{path}: `qos.prefetch_blocks` was removed: delete the line"
    )


def test_missing_file_named_by_its_resolved_absolute_path(tmp_path: Path) -> None:
    path = _gateway(tmp_path, GATEWAY.replace("deploy/deployment.json", "../nowhere/d.json"))
    resolved = tmp_path.parent / "nowhere" / "d.json"
    assert _problem(path, {"GW_KEY": KEY}) == (
        f"{path}: `settlement.deployment`: {resolved} does not exist — fix the path (relative "
        "paths start at the config file's folder)"
    )


def test_missing_config_file_and_bad_toml(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert _problem(missing, {}) == (
        f"cannot read {missing}: No such file or directory — check the --config path"
    )
    bad = _gateway(tmp_path, 'listen = "no end\n')
    message = _problem(bad, {})
    assert message.startswith(f"{bad}: not valid TOML: ") and message.endswith("fix that line")
    assert "line 1" in message


def test_out_of_range_value_shows_what_was_given(tmp_path: Path) -> None:
    rel = _relayer(tmp_path, RELAYER + "timeout = 0\n")
    assert _problem(rel, {"PW": "x"}, relayer=True) == (
        f"{rel}: `services.eth.timeout`: input should be greater than 0 (got 0)"
    )


def test_missing_tables_each_named(tmp_path: Path) -> None:
    rel = tmp_path / "relayer.toml"
    rel.write_text('data_dir = "d"\n')
    assert _problem(rel, {}, relayer=True) == (
        f"{rel}: `keys` is missing — add it; `chain` is missing — add it; `services` is missing "
        "— add it"
    )


def test_cli_prints_the_loader_message_as_one_error_line(tmp_path: Path) -> None:
    path = _gateway(tmp_path, GATEWAY.replace("${RPC:-http://127.0.0.1:8545}", "…"))
    result = CliRunner().invoke(
        app, ["gateway", "keys", "list", "--config", str(path)], env={"GW_KEY": KEY}
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        f"error: {path}: `settlement.rpc_url` = '…' is a placeholder — put the real value there"
    ]
