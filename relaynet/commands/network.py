"""``relaynet network``: put the settlement contracts on any EVM chain and administer them.

- ``deploy`` deploys and wires every contract (:func:`ledger.network.deploy_network`): resumable
  from the journal next to ``--out``, parameters from ``--params`` (TOML, the parameters' own
  names, token amounts with units) checked by the protocol's validator first; ``--dry-run``
  lists the transactions, gas and cost and sends nothing.
- ``show`` the deployment: addresses checked against the committed artifacts, chain, shape,
  pause and admin, the EIP-712 domain (computed).
- ``params show|set``, ``pause``, ``unpause``, ``admin propose|accept``: the admin's actions.

Shared options and the action wrapper: :mod:`relaynet.commands.staking_common`.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from relaynet.commands import staking_common as common
from relaynet.commands.tables import print_table

if TYPE_CHECKING:
    from ledger.deploy import DeployParams
    from session.snapshot import EconomicParams

__all__ = ["app", "parse_params"]

app = typer.Typer(no_args_is_help=True)
params_app = typer.Typer(no_args_is_help=True, help="Show or change the economic parameters.")
admin_app = typer.Typer(no_args_is_help=True, help="Hand the network's admin over (two steps).")
app.add_typer(params_app, name="params")
app.add_typer(admin_app, name="admin")

# Parameters that are token amounts: written with a unit (``100rly``, ``5base``).
TOKEN_PARAMS = frozenset(
    {
        "min_stake_supplier",
        "min_stake_app",
        "min_stake_gateway",
        "service_registration_fee",
        "cu_price",
        "initial_supply",
    }
)
# Fixed at deployment (the session shape, the supply, the treasury): not for ``params set``.
DEPLOY_ONLY = frozenset({"L", "G", "CO", "CW", "PO", "PW", "S", "initial_supply", "treasury"})


def parse_params(path: Path, *, base: DeployParams, allowed: frozenset[str] | None = None) -> Any:
    """``base`` with the values of TOML file ``path`` (the parameters' own names, top level or
    under ``[params]``); ``allowed`` limits the names. Returns a ``DeployParams``."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise common.CliError(f"parameters file {path} not found") from None
    except OSError as exc:
        raise common.CliError(f"cannot read parameters file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise common.CliError(f"parameters file {path} is not TOML: {exc}") from None
    if isinstance(doc.get("params"), Mapping) and len(doc) == 1:
        doc = dict(doc["params"])
    names = {f.name for f in fields(base)}
    changes: dict[str, Any] = {}
    for name, value in doc.items():
        where = f"{path}: {name}"
        if name not in names or (allowed is not None and name not in allowed):
            known = sorted(allowed if allowed is not None else names)
            raise common.CliError(f"{where} is not a parameter here — known: {', '.join(known)}")
        if name in TOKEN_PARAMS:
            if not isinstance(value, str):
                raise common.CliError(
                    f"{where} = {value!r}: write tokens with a unit, e.g. '100rly'"
                )
            changes[name] = common.parse_amount(value, where)
        elif name == "treasury":
            changes[name] = common.parse_address(str(value), where)
        elif name == "mint_shares":
            if not (isinstance(value, list) and len(value) == 3 and all(_is_int(v) for v in value)):
                raise common.CliError(f"{where} must be [supplier, owner, treasury] in bps")
            changes[name] = tuple(value)
        else:
            if not _is_int(value):
                raise common.CliError(f"{where} = {value!r} must be a whole number")
            changes[name] = value
    return replace(base, **changes)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validated(params: DeployParams) -> DeployParams:
    from ledger.network import check_params
    from protocol.errors import ProtocolError

    try:
        check_params(params)
    except ProtocolError as exc:
        raise common.CliError(f"--params refused: {exc.message}") from None
    return params


def _params_rows(p: EconomicParams) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for f in fields(p):
        value = getattr(p, f.name)
        if f.name in TOKEN_PARAMS:
            rows.append((f.name, common.format_amount(value)))
        elif f.name == "mint_shares":
            rows.append((f.name, " / ".join(str(v) for v in value) + " bps"))
        else:
            rows.append((f.name, str(value)))
    return rows


# -- deploy --------------------------------------------------------------------------------


@common.command(app, "deploy", key=True)
async def deploy(
    action: common.Action,
    out: Annotated[Path, typer.Option("--out", help="Where to write the deployment JSON.")],
    params_file: Annotated[
        Path | None,
        typer.Option("--params", help="TOML file of parameters (default: the devnet column)."),
    ] = None,
    admin: Annotated[
        str | None, typer.Option("--admin", help="Propose this address as admin at the end.")
    ] = None,
    confirmations: Annotated[
        int, typer.Option("--confirmations", help="Blocks each transaction must be under.")
    ] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the transactions, gas and cost; send none.")
    ] = False,
) -> None:
    """Deploy and wire every contract on the chain at --rpc-url; resumable (rerun it)."""
    from web3.exceptions import Web3Exception

    from ledger.deploy import DeployError, DeployParams
    from ledger.errors import LedgerError
    from ledger.network import deploy_network, journal_path
    from ledger.network import dry_run as plan_dry_run

    if not action.rpc_url:
        raise common.CliError("pass --rpc-url URL (the chain to deploy to)")
    if confirmations < 1:
        raise common.CliError(f"--confirmations {confirmations}: at least 1")
    params = DeployParams()
    if params_file is not None:
        params = parse_params(params_file, base=params)
    _validated(params)
    admin_cs = common.checksum(common.parse_address(admin, "--admin")) if admin else None
    account = action.account()
    me = common.checksum(account.address)
    try:
        if dry_run:
            lines, price, balance = await asyncio.to_thread(
                plan_dry_run, action.rpc_url, me, params, admin_cs
            )
            total = sum(line.gas for line in lines)
            print_table(
                f"Dry run: deploy from {me} (nothing sent)",
                ("nonce", "transaction", "address", "gas"),
                [
                    (ln.nonce, ln.step, ln.address, f"≤ {ln.gas}" if ln.bound else ln.gas)
                    for ln in lines
                ],
                right=("nonce", "gas"),
                caption=(
                    f"total gas ≤ {total} at {price} wei/gas: "
                    f"cost ≤ {common.format_gas(total * price)}; "
                    f"balance {common.format_gas(balance)}"
                ),
            )
            if total * price > balance:
                raise common.CliError(
                    f"{me} holds {common.format_gas(balance)}, less than the "
                    f"{common.format_gas(total * price)} the deployment may cost"
                )
            return
        journal = journal_path(out)
        if out.exists() and not journal.exists():
            raise common.CliError(
                f"{out} exists and has no journal ({journal}) — choose another --out"
            )
        deployment = await asyncio.to_thread(
            deploy_network,
            action.rpc_url,
            account.private_key,
            params,
            journal=journal,
            admin=admin_cs,
            confirmations=confirmations,
            log=typer.echo,
        )
    except (DeployError, LedgerError, Web3Exception) as exc:
        raise common.CliError(f"deploy: {exc}") from None
    except (OSError, ValueError) as exc:  # the node: unreachable, or an RPC error
        raise common.CliError(f"deploy: {action.rpc_url}: {exc}") from None
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(deployment.to_json() + "\n")
    os.replace(tmp, out)
    print_table(
        f"Deployed on chain {deployment.chain_id} (B0 = block {deployment.genesis_block})",
        ("contract", "address"),
        sorted(deployment.contracts.items()),
    )
    typer.echo(f"written to {out}")
    if admin_cs:
        typer.echo(f"admin proposed to {admin_cs}: it runs `relaynet network admin accept`")


# -- show ----------------------------------------------------------------------------------


@common.command(app, "show", prints_json=True)
async def show(action: common.Action) -> None:
    """Show the deployment: contracts (code checked), chain, shape, pause, admin, EIP-712."""
    from ledger.artifacts import load_artifact
    from ledger.deploy import DeployParams
    from ledger.network import code_problem, expected_immutables
    from protocol.relay import Domain

    async with action.client() as client:
        d = client.deployment
        chain_id = await client.chain_id()
        if chain_id != d.chain_id:
            raise common.CliError(
                f"the node at {action.rpc_url or d.rpc_url} serves chain {chain_id}, "
                f"the deployment is on chain {d.chain_id}"
            )
        session = await client.current_session()
        econ = await client.economic_params(session)
        shape_params = DeployParams(
            **{k: getattr(d.shape, k) for k in ("L", "G", "CO", "CW", "PO", "PW", "S")}
        )
        checks: dict[str, str] = {}
        for name, address in d.contracts.items():
            code = bytes(await client.w3.eth.get_code(client.w3.to_checksum_address(address)))
            problem = code_problem(
                name, code, expected_immutables(name, d.contracts, shape_params, d.genesis_block)
            )
            checks[name] = problem or "artifact ✓"
        paused = await client.paused()
        admin = await client.admin()
        sessions = client.w3.eth.contract(
            address=client.w3.to_checksum_address(d.contracts["Sessions"]),
            abi=load_artifact("Sessions").abi,
        )
        pending = str(await sessions.functions.pending_admin().call())
    domain = Domain(d.chain_id, bytes.fromhex(d.settlement[2:]))
    shape = {k: getattr(d.shape, k) for k in ("L", "G", "CO", "CW", "PO", "PW", "S")}
    doc: dict[str, Any] = {
        "chain_id": d.chain_id,
        "genesis_block": d.genesis_block,
        "deploy_block": d.extra.get("deploy_block"),
        "contracts": d.contracts,
        "code": checks,
        "shape": shape,
        "current_session": session,
        "paused": paused,
        "admin": common.checksum(admin),
        "pending_admin": common.checksum(bytes.fromhex(pending[2:])) if int(pending, 16) else None,
        "eip712_domain_separator": "0x" + domain.separator.hex(),
        "unbonding_sessions": econ.unbonding_sessions,
    }
    if action.as_json:
        common.emit_json(doc)
        return
    print_table(
        f"Deployment on chain {d.chain_id}",
        ("contract", "address", "code"),
        [(n, a, checks[n]) for n, a in d.contracts.items()],
    )
    shape_text = ", ".join(f"{k}={v}" for k, v in shape.items())
    typer.echo(f"B0 = block {d.genesis_block}; shape {shape_text}; session {session} now")
    typer.echo(
        f"admin {doc['admin']}"
        + (f" (proposed: {doc['pending_admin']})" if doc["pending_admin"] else "")
        + ("; PAUSED" if paused else "; not paused")
    )
    typer.echo(f"EIP-712 domain separator {doc['eip712_domain_separator']} (computed)")
    if any(v != "artifact ✓" for v in checks.values()):
        raise common.CliError("a contract's code is not the committed artifact (see above)")


# -- params --------------------------------------------------------------------------------


@common.command(params_app, "show", prints_json=True)
async def params_show(
    action: common.Action,
    session: Annotated[
        int | None, typer.Option("--session", help="Session (default: the current one).")
    ] = None,
) -> None:
    """The economic parameters in force in a session."""
    async with action.client() as client:
        n = session if session is not None else await client.current_session()
        econ = await client.economic_params(n)
    rows = _params_rows(econ)
    if action.as_json:
        common.emit_json({"session": n, **{k: v for k, v in rows}})
        return
    print_table(f"Economic parameters in session {n}", ("parameter", "value"), rows)


@common.command(params_app, "set", sends=True)
async def params_set(
    action: common.Action,
    params_file: Annotated[
        Path, typer.Option("--params", help="TOML file: the parameters to change (own names).")
    ],
) -> None:
    """Change economic parameters from the next session (admin); the rest stay."""
    from ledger.deploy import DeployParams

    allowed = frozenset(f.name for f in fields(DeployParams)) - DEPLOY_ONLY
    async with action.client(signer=True) as client:
        n = await client.current_session()
        econ = await client.economic_params(n)
        shape = client.deployment.shape
        base = DeployParams(
            **{k: getattr(shape, k) for k in ("L", "G", "CO", "CW", "PO", "PW", "S")},
            **{f.name: getattr(econ, f.name) for f in fields(econ)},
        )
        new = _validated(parse_params(params_file, base=base, allowed=allowed))
        changed = [
            (name, old, new_value)
            for (name, old), (_, new_value) in zip(
                _params_rows(econ), _params_rows(new.economic_params()), strict=True
            )
            if old != new_value
        ]
        if not changed:
            typer.echo("nothing to change: the file holds the parameters in force")
            return
        await action.send(
            "parameters set",
            [f"Set from session {n + 1}:", *(f"  {k}: {a} -> {b}" for k, a, b in changed)],
            lambda: client.set_economic_params(new.economic_params()),
        )


# -- pause, admin --------------------------------------------------------------------------


def _admin_action(name: str, method: str, line: str, doc: str) -> None:
    async def run(action: common.Action) -> None:
        async with action.client(signer=True) as client:
            await action.send(name, [line], getattr(client, method))

    run.__doc__ = doc
    common.command(app, name.split()[0], sends=True)(run)


_admin_action(
    "pause",
    "pause",
    "Pause the network (new stakes stop; claims and proofs go on)",
    "Pause (admin).",
)
_admin_action("unpause", "unpause", "Unpause the network", "Unpause (admin).")


@common.command(admin_app, "propose", sends=True)
async def admin_propose(
    action: common.Action,
    address: Annotated[str, typer.Argument(help="The new admin's address.")],
) -> None:
    """Step one: propose ADDRESS as admin (it then runs `relaynet network admin accept`)."""
    target = common.parse_address(address, "ADDRESS")
    async with action.client(signer=True) as client:
        now = common.checksum(await client.admin())
        await action.send(
            "admin proposed",
            [f"Propose {common.checksum(target)} as admin (now {now})"],
            lambda: client.propose_admin(target),
        )


@common.command(admin_app, "accept", sends=True)
async def admin_accept(action: common.Action) -> None:
    """Step two: the proposed admin (this keystore) takes over."""
    async with action.client(signer=True) as client:
        await action.send(
            "admin accepted",
            [f"Become admin as {common.checksum(action.account().address)}"],
            client.accept_admin,
        )
        typer.echo(f"admin is now {common.checksum(await client.admin())}")
