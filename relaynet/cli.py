"""The ``relaynet`` console script: one subcommand group per role.

Each group lives in ``relaynet/commands/<group>.py`` and only composes the packages.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="relaynet",
    help="relaynet — a decentralized RPC relay network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (module under relaynet.commands, group name, help)
_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("dev", "dev", "Developer tools: protocol test vectors."),
    ("relayer", "relayer", "Run a relayer (node runners)."),
    ("gateway", "gateway", "Run a gateway and manage its API keys."),
    ("supplier", "supplier", "Stake as a supplier (node runners)."),
    ("application", "app", "Stake an application and delegate to gateways."),
    ("token", "token", "Token balances and transfers."),
    ("chain", "chain", "Register and list chains (rollup teams)."),
    ("devnet", "devnet", "A whole local network in one command."),
)

for _module, _name, _help in _GROUPS:
    try:
        _mod = importlib.import_module(f"relaynet.commands.{_module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"relaynet.commands.{_module}":
            raise
        continue
    app.add_typer(_mod.app, name=_name, help=_help)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
