"""``relaynet chain``: rollup teams register their chains as services, and anyone lists them.

``register --spec FILE [--probe URL]`` composes the packages in four named steps: validate the
chain spec with ``rollups/`` (a refusal lists each problem with what to fix); probe a live
endpoint when given and compare its chain identity with the spec's (height and identity
printed); refuse a service id already on chain; register with ``ledger/`` — the keystore's
account pays the registration fee and becomes the service's owner (it earns the owner share).
``list`` and ``show`` read the chain. ``transfer-ownership --service ID --to ADDRESS`` (the
owner) proposes a new owner, who takes the service over with ``accept-ownership --service ID``
(two steps: a mistyped address owns nothing). Shared options:
:mod:`relaynet.commands.staking_common`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import aiohttp
import typer

from ledger.client import LedgerClient
from protocol.encoding import service_id_to_bytes
from protocol.errors import ErrorCode, RelaynetError
from relaynet.commands.staking_common import (
    Action,
    checksum,
    command,
    emit_json,
    format_amount,
    parse_address,
)
from relaynet.commands.tables import print_table
from rollups.catalogue import catalogue
from rollups.handler import Health, HealthStatus
from rollups.health import probe as probe_backend
from rollups.loading import load_spec
from rollups.spec import ChainSpec

__all__ = ["ChainCommandError", "app", "check_probe", "probe_endpoint"]

app = typer.Typer(no_args_is_help=True)


class ChainCommandError(RelaynetError):
    """A ``chain`` command refused (the message says what to fix)."""

    code = ErrorCode.MALFORMED_INPUT


# -- steps of ``register`` -----------------------------------------------------------------


async def probe_endpoint(spec: ChainSpec, url: str, token: str | None) -> Health:
    """Probe ``url`` with the spec's handler (health, height, chain identity)."""
    async with aiohttp.ClientSession() as session:
        return await probe_backend(spec, url, session, token=token)


def check_probe(spec: ChainSpec, url: str, health: Health, origin: str) -> None:
    """Refuse a probe that disagrees with the spec, saying what to fix."""
    field = "chain_id" if spec.chain_id is not None else "network"
    if health.status is HealthStatus.WRONG_CHAIN:
        raise ChainCommandError(
            f"the endpoint {url} serves chain {health.chain_id!r}, but {origin} says "
            f"{field} = {spec.identity!r} — fix `{field}` in the spec, or probe an endpoint of "
            "this chain"
        )
    if health.status is HealthStatus.UNREACHABLE:
        raise ChainCommandError(
            f"the endpoint {url} did not answer — check the URL (and that the node is up), or "
            "leave out --probe"
        )
    if health.status is HealthStatus.BAD_ANSWER:
        raise ChainCommandError(
            f"the endpoint {url} does not answer like a {spec.rpc_type!r} node "
            f"({health.reason}) — check `rpc_type` in {origin}, the URL, or the node's "
            "token (--probe-token-env)"
        )


async def _already_registered(client: LedgerClient, service_id: str) -> str | None:
    info = await client.service(service_id)
    return None if info is None else checksum(info.owner)


# -- commands ------------------------------------------------------------------------------


@command(app, "register", sends=True, prints_json=True)
async def register(
    action: Action,
    spec_file: Annotated[
        Path, typer.Option("--spec", help="Chain spec (TOML) of the service to register.")
    ],
    probe: Annotated[
        str | None,
        typer.Option("--probe", help="A live endpoint of the chain: checked against the spec."),
    ] = None,
    probe_token_env: Annotated[
        str | None,
        typer.Option(
            "--probe-token-env",
            help="Environment variable holding the probed node's token (celestia-node JWT).",
        ),
    ] = None,
    metadata_uri: Annotated[
        str | None,
        typer.Option("--metadata-uri", help="Metadata URI (default: the spec's website)."),
    ] = None,
    difficulty_bits: Annotated[
        int, typer.Option("--difficulty-bits", min=0, max=32, help="Relay mining difficulty.")
    ] = 0,
) -> None:
    """Register the chain of --spec as a service; you become its owner. Prints the service id."""
    spec = load_spec(spec_file)  # step 1: SpecError lists what to fix
    origin = str(spec_file)
    height: int | None = None
    if probe is not None:  # step 2
        token = None
        if probe_token_env:
            token = os.environ.get(probe_token_env)
            if not token:
                raise ChainCommandError(
                    f"--probe-token-env {probe_token_env}: the variable is not set"
                )
        health = await probe_endpoint(spec, probe, token)
        check_probe(spec, probe, health, origin)
        height = health.height
        state = "in sync" if health.ok else health.reason
        typer.echo(
            f"probe: {probe} serves {health.chain_id} at height {health.height} ({state})",
            err=action.as_json,
        )
    account = action.account()
    async with action.client(signer=True) as client:
        owner = await _already_registered(client, spec.service_id)  # step 3
        if owner is not None:
            raise ChainCommandError(
                f"service id {spec.service_id!r} is already registered (owner {owner}) — "
                f"choose another `service_id` in {origin}"
            )
        fee = (
            await client.economic_params(await client.current_session())
        ).service_registration_fee
        uri = metadata_uri if metadata_uri is not None else str(spec.metadata.get("website", ""))
        if not action.as_json:  # --json is for scripts: it implies --yes
            action.confirm(
                [
                    f"register service {spec.service_id} ({spec.name}), "
                    f"rpc type {spec.rpc_type}, chain {spec.identity}",
                    f"compute units per relay {spec.compute_units.default}, "
                    f"max {spec.compute_units.max}, difficulty {difficulty_bits} bits",
                    f"owner {checksum(account.address)}; registration fee {format_amount(fee)}",
                ]
            )
        receipt = await client.register_service(  # step 4
            spec.service_id,
            name=spec.name,
            rpc_type=spec.rpc_type,
            metadata_uri=uri,
            cu_per_relay=spec.compute_units.default,
            max_cu_per_relay=spec.compute_units.max,
            difficulty_bits=difficulty_bits,
        )
    if action.as_json:
        emit_json(
            {
                "service_id": spec.service_id,
                "owner": checksum(account.address),
                "rpc_type": spec.rpc_type,
                "chain": spec.identity,
                "probed_height": height,
                "tx": receipt.tx_hash_hex,
                "block": receipt.block_number,
            }
        )
        return
    typer.echo(
        f"registered: transaction {receipt.tx_hash_hex} mined in block "
        f"{receipt.block_number}; owner {checksum(account.address)}"
    )
    typer.echo(spec.service_id)


@command(app, "list", prints_json=True)
async def list_services(action: Action) -> None:
    """List the services registered ON CHAIN (not the catalogue: `relaynet chain catalogue`)."""
    rows = []
    async with action.client() as client:
        for service_id in await client.services():
            info = await client.service(service_id)
            if info is not None:
                rows.append(
                    {
                        "service_id": service_id,
                        "name": info.name,
                        "rpc_type": info.rpc_type,
                        "owner": checksum(info.owner),
                    }
                )
    if action.as_json:
        emit_json({"services": rows})
        return
    print_table(
        f"Services registered on chain ({len(rows)})",
        ["service", "rpc type", "owner", "name"],
        ([r["service_id"], r["rpc_type"], r["owner"], r["name"]] for r in rows),
        caption="The catalogue of chain specs to start from: relaynet chain catalogue",
    )


@app.command("catalogue")
def list_catalogue(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the chain specs shipped with relaynet (start a spec from one; none is on chain
    until registered — `relaynet chain list` shows what is)."""
    specs = catalogue()
    if as_json:
        emit_json(
            {
                "catalogue": [
                    {
                        "service_id": s.service_id,
                        "name": s.name,
                        "rpc_type": s.rpc_type,
                        "chain": str(s.identity),
                    }
                    for s in specs.values()
                ]
            }
        )
        return
    print_table(
        f"Chain specs in the catalogue ({len(specs)}; rollups/catalogue/*.toml)",
        ["service", "rpc type", "chain", "name"],
        ([s.service_id, s.rpc_type, s.identity, s.name] for s in specs.values()),
        caption="Registered on chain: relaynet chain list",
    )


@command(app, "show", prints_json=True)
async def show(
    action: Action, service_id: Annotated[str, typer.Argument(help="Service id.")]
) -> None:
    """Show one registered service: owner, RPC type, parameters in force."""
    async with action.client() as client:
        info = await client.service(service_id)
        if info is None:
            raise ChainCommandError(
                f"no service {service_id!r} is registered — see `relaynet chain list`"
            )
        n = await client.current_session()
        params = await client.service_params(service_id, n)
    doc = {
        "service_id": service_id,
        "name": info.name,
        "rpc_type": info.rpc_type,
        "owner": checksum(info.owner),
        "metadata_uri": info.metadata_uri,
        "session": n,
        "cu_per_relay": params.cu_per_relay,
        "max_cu_per_relay": params.max_cu_per_relay,
        "difficulty_bits": params.difficulty_bits,
        "in_catalogue": service_id in catalogue(),
    }
    action.show(doc, [f"{key:<17} {value}" for key, value in doc.items()])


async def _owned(client: LedgerClient, service_id: str) -> bytes:
    info = await client.service(service_id)
    if info is None:
        raise ChainCommandError(
            f"--service {service_id}: no service {service_id!r} is registered — see "
            "`relaynet chain list`"
        )
    return info.owner


@command(app, "transfer-ownership", sends=True)
async def transfer_ownership(
    action: Action,
    service: Annotated[str, typer.Option("--service", help="The service id you own.")],
    to: Annotated[str, typer.Option("--to", help="The new owner's address.")],
) -> None:
    """Propose a new owner for a service you own; it becomes owner when it accepts."""
    new_owner = parse_address(to, "--to")
    async with action.client(signer=True) as client:
        owner = await _owned(client, service)
        me = action.account().address
        if owner != me:
            raise ChainCommandError(
                f"--service {service}: owned by {checksum(owner)}, not by {checksum(me)} — "
                "only the owner can transfer it"
            )
        if new_owner == me:
            raise ChainCommandError(f"--to {to}: that is already the owner")
        line = f"Propose {checksum(new_owner)} as owner of service {service} (now {checksum(me)})"
        await action.send(
            "owner proposed", [line], lambda: client.propose_service_owner(service, new_owner)
        )
        typer.echo(
            f"{checksum(me)} stays the owner until {checksum(new_owner)} runs "
            f"`relaynet chain accept-ownership --service {service}`"
        )


@command(app, "accept-ownership", sends=True)
async def accept_ownership(
    action: Action,
    service: Annotated[str, typer.Option("--service", help="The service id proposed to you.")],
) -> None:
    """Take over a service whose owner proposed you (``chain transfer-ownership``)."""
    async with action.client(signer=True) as client:
        owner = await _owned(client, service)
        me = action.account().address
        raw = await client._call("Services", "pending_owner", service_id_to_bytes(service))
        if bytes.fromhex(str(client.w3.to_checksum_address(raw))[2:]) != me:
            raise ChainCommandError(
                f"--service {service}: {checksum(me)} was not proposed as its owner — the owner "
                f"{checksum(owner)} runs `relaynet chain transfer-ownership` first"
            )
        line = f"Become owner of service {service} (now {checksum(owner)})"
        await action.send("owner set", [line], lambda: client.accept_service_owner(service))
        typer.echo(f"{checksum(me)} owns {service} from now on (its owner share included)")
