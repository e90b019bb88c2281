"""The relayer config: strict decoding, env expansion, secrets redacted, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.config import dump_config
from relaynet.config import ConfigProblem as ConfigError
from relaynet.config import load_relayer as load_config
from relaynet.config import parse_relayer as parse_config


def _raw(**over: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "data_dir": "data",
        "keys": {
            "supplier_keystore": "keys/s.json",
            "receipt_key": "keys/r.json",
            "passphrase": "${PW}",
        },
        "chain": {"rpc_url": "http://127.0.0.1:8545", "deployment": "deployment.json"},
        "services": {
            "eth": {
                "chain": "devnet",
                "backends": {"rpc": "http://127.0.0.1:8545"},
                "headers": {"X-Node-Token": "sekret"},
            }
        },
    }
    raw.update(over)
    return raw


def test_paths_resolve_and_secrets_are_redacted(tmp_path: Path) -> None:
    cfg = parse_config(_raw(), base=tmp_path, env={"PW": "hunter2"})
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.keys.supplier_keystore == tmp_path / "keys" / "s.json"
    assert cfg.passphrase() == "hunter2"
    assert "hunter2" not in repr(cfg) and "sekret" not in repr(cfg)
    assert cfg.services["eth"].header_values() == {"X-Node-Token": "sekret"}


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key `surprise`"):
        parse_config(_raw(surprise=1), env={"PW": "x"})


def test_missing_env_var_is_an_error() -> None:
    with pytest.raises(ConfigError, match="PW"):
        parse_config(_raw(), env={})


def test_service_needs_an_rpc_backend() -> None:
    raw = _raw()
    raw["services"] = {"eth": {"chain": "devnet", "backends": {"op-node": "http://x:1"}}}
    with pytest.raises(ConfigError, match="rpc"):
        parse_config(raw, env={"PW": "x"})


def test_bad_service_id_and_forbidden_header() -> None:
    raw = _raw()
    raw["services"] = {"ETH!": {"chain": "devnet", "backends": {"rpc": "http://x:1"}}}
    with pytest.raises(ConfigError):
        parse_config(raw, env={"PW": "x"})
    raw["services"] = {
        "eth": {"chain": "devnet", "backends": {"rpc": "http://x:1"}, "headers": {"Host": "a"}}
    }
    with pytest.raises(ConfigError, match="Host"):
        parse_config(raw, env={"PW": "x"})


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    cfg = parse_config(_raw(), base=tmp_path, env={"PW": "${PW}"})
    path = tmp_path / "relayer.toml"
    path.write_text(dump_config(cfg))
    again = load_config(path, env={"PW": "pw"}, check_files=False)
    assert again.services == cfg.services
    assert again.keys.receipt_key == cfg.keys.receipt_key
    assert again.passphrase() == "pw"
    assert '"${PW}"' in path.read_text()
