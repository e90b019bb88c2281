"""The ``relaynet`` console script: one subcommand group per role.

Each group lives in ``relaynet/commands/<module>.py`` (a ``typer.Typer`` named ``app``) and only
composes the packages. Groups are imported when they are invoked, not before: a relayer's
start-up does not pay for the gateway's imports, nor the other way round.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer._click.exceptions import (  # typer vendors click
    ClickException,
    NoArgsIsHelpError,
    UsageError,
)
from typer.core import TyperGroup

__all__ = ["GROUPS", "app", "main", "package_version"]

# group name -> (module under relaynet.commands, help)
GROUPS: dict[str, tuple[str, str]] = {
    "dev": ("dev", "Developer tools: protocol test vectors."),
    "relayer": ("relayer", "Run a relayer (node runners)."),
    "gateway": ("gateway", "Run a gateway, manage its API keys, stake as a gateway."),
    "supplier": ("supplier", "Stake as a supplier (node runners)."),
    "app": ("application", "Stake an application and delegate to gateways."),
    "token": ("token", "Token balances and transfers."),
    "chain": ("chain", "Register and list chains (rollup teams)."),
    "network": ("network", "Deploy the contracts to any EVM chain; administer them."),
    "devnet": ("devnet", "A whole local network in one command."),
    "verify": ("verify", "Verify a gateway's answer against the chain (receipts, sessions)."),
}


class LazyGroup(TyperGroup):
    """The root group: subgroups are loaded from their module on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*GROUPS, *(n for n in super().list_commands(ctx) if n not in GROUPS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in GROUPS:
            return super().get_command(ctx, cmd_name)
        module_name, help_text = GROUPS[cmd_name]
        module: Any = importlib.import_module(f"relaynet.commands.{module_name}")
        command = typer.main.get_command(module.app)
        command.name = cmd_name
        command.help = help_text
        command.short_help = help_text
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Every usage mistake is one line ``error: …`` naming the option and where help is —
        no usage box, no traceback; exit 2 (a failed action exits 1)."""
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except NoArgsIsHelpError as exc:  # the help was printed
            if exc.format_message().strip():
                exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "relaynet"
            message = exc.format_message().rstrip(".")
            typer.echo(f"error: {message} — see `{where} --help`", err=True)
            sys.exit(2)
        except ClickException as exc:
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def package_version() -> str:
    """The installed relaynet's version."""
    try:
        return version("relaynet")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"relaynet {package_version()}")
        raise typer.Exit()


app = typer.Typer(
    name="relaynet",
    cls=LazyGroup,
    help="relaynet — a decentralized RPC relay network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """relaynet — a decentralized RPC relay network."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
