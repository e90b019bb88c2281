"""``relaynet gateway keys add|list|revoke|usage`` on the keys file and on Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from typer.testing import CliRunner, Result

from gateway.keys import FileKeyBackend, KeyRing
from relaynet.cli import app
from relaynet.config import load_gateway as load_config
from tests.support.redis_server import RedisServer

APP = "0x" + "cd" * 20


def write_config(tmp: Path, redis_url: str | None = None) -> Path:
    lines = [
        "[gateway]",
        f'private_key = "0x{"22" * 32}"',
        "[settlement]",
        'rpc_url = "http://127.0.0.1:1"',
        'deployment = "deployment.json"',
    ]
    if redis_url:
        lines += ["[redis]", f'url = "{redis_url}"', f'prefix = "cli{uuid.uuid4().hex[:6]}:"']
    else:
        lines += ["[keys]", 'file = "keys.json"']
    lines += ["[services.devnet]", 'catalogue = "devnet"']
    path = tmp / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def keys(runner: CliRunner, cfg: Path, command: str, *args: str) -> Result:
    """``relaynet gateway keys <command> --config <cfg> <args>``."""
    return runner.invoke(app, ["gateway", "keys", command, "--config", str(cfg), *args])


def test_keys_lifecycle_on_the_keys_file(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = write_config(tmp_path)
    added = keys(
        runner,
        cfg,
        "add",
        f"--service=devnet={APP}",
        "--name=alice",
        "--rate-limit=5",
        "--quota=1000",
    )
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[0]
    assert key.startswith("rn_")
    assert key not in (tmp_path / "keys.json").read_text()
    listed = runner.invoke(app, ["gateway", "keys", "list", "--config", str(cfg)])
    assert (
        "alice" in listed.stdout
        and "active" in listed.stdout
        and f"devnet={APP}" in listed.stdout.lower()
    )
    ring = KeyRing(FileKeyBackend(tmp_path / "keys.json"))
    asyncio.run(ring.refresh())
    record = ring.lookup(key)
    assert record.rate_limit == 5 and record.quota == 1000
    revoked = runner.invoke(app, ["gateway", "keys", "revoke", "--config", str(cfg), record.key_id])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in runner.invoke(app, ["gateway", "keys", "list", "--config", str(cfg)]).stdout
    bad = runner.invoke(
        app, ["gateway", "keys", "add", "--config", str(cfg), "--service", "devnet=nothex"]
    )
    assert bad.exit_code == 1


def test_keys_in_redis_with_usage(tmp_path: Path, redis_server: RedisServer) -> None:
    runner = CliRunner()
    cfg = write_config(tmp_path, redis_server.url)
    added = keys(runner, cfg, "add", f"--service=devnet={APP}", "--quota=10")
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[0]

    async def use() -> None:
        from gateway.app import build_store, key_backend
        from gateway.limiter import Limiter

        config = load_config(cfg, check_files=False)
        store = build_store(config)
        try:
            ring = KeyRing(key_backend(config, store))
            await ring.refresh()
            await Limiter(store).admit(ring.lookup(key), "devnet", 3)
        finally:
            await store.close()

    asyncio.run(use())
    usage = runner.invoke(app, ["gateway", "keys", "usage", "--config", str(cfg), key])
    assert usage.exit_code == 0, usage.output
    assert "period=3/10" in usage.stdout and "total=3" in usage.stdout
    assert json.dumps(APP) not in usage.stdout
