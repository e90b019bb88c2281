"""The README's "Running outside the devnet" names only settings the servers have: every
`` `[table] key` `` it mentions is a field of that table in the gateway's or the relayer's
config model (so the section cannot drift from the code)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from gateway.config import GatewayConfig
from relayer.config import RelayerConfig

README = Path(__file__).resolve().parents[2] / "README.md"
SETTING = re.compile(r"`\[(\w+)\]\s+(\w+)")


def _table(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    field = model.model_fields.get(name)
    if field is None:
        return None
    for candidate in (field.annotation, *typing.get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def settings_named(text: str) -> list[tuple[str, str]]:
    section = text.split("## Running outside the devnet")[1].split("\n## ")[0]
    return SETTING.findall(section)


def test_every_setting_the_production_section_names_exists() -> None:
    named = settings_named(README.read_text())
    assert len(named) >= 8  # the section is there and names settings
    missing = [
        f"[{table}] {key}"
        for table, key in named
        if not any(
            (t := _table(model, table)) is not None and key in t.model_fields
            for model in (GatewayConfig, RelayerConfig)
        )
    ]
    assert missing == []


def test_a_misnamed_setting_is_caught() -> None:
    text = "## Running outside the devnet\n`[relay] ca_fil` and `[claims] min_reward`\n## Next"
    named = settings_named(text)
    assert named == [("relay", "ca_fil"), ("claims", "min_reward")]
    assert _table(GatewayConfig, "relay") is not None
    assert "ca_fil" not in _table(GatewayConfig, "relay").model_fields  # type: ignore[union-attr]
