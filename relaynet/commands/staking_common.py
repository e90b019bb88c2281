"""What the staking commands share: chain and key options, one action wrapper, amounts, output.

Used by ``relaynet supplier``, ``relaynet app``, ``relaynet gateway stake|…|status``,
``relaynet token`` and ``relaynet chain``. A command is an ``async`` function taking an
:class:`Action` first; :func:`command` adds the shared options to its signature and runs it:

- every command: ``--rpc-url`` (default: the deployment's) and ``--deployment`` (a
  ``Deployment.to_json()`` file, or a devnet state file holding one under ``"deployment"``);
- ``key=True``: a keystore (``--keystore``) whose passphrase comes from ``--passphrase-env
  NAME``, ``--passphrase-file PATH`` or a prompt — loaded only when the command asks for it;
- ``sends=True``: ``--yes`` (otherwise what will be spent is shown and confirmed);
- ``json=True``: ``--json``.

Failures print one line ``error: …`` naming the option or file and the fix, and exit 1 —
never a traceback. Amounts are ``<decimal><unit>``: ``1000rly`` or ``5base`` for tokens,
``0.5eth``, ``12gwei`` or ``7wei`` for gas money; a bare number is refused.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer

from protocol.encoding import address_from_hex, address_to_checksum
from protocol.errors import ErrorCode, RelaynetError
from protocol.keys import AccountKey
from relayer.keyfiles import read_account_key, resolve_passphrase

if TYPE_CHECKING:  # web3 is imported only when a command talks to the chain (fast --help)
    from ledger.client import LedgerClient, SupplierState
    from ledger.deploy import Deployment
    from ledger.tx import TxReceipt

__all__ = [
    "DECIMALS",
    "DEFAULT_DEPLOYMENT",
    "GAS_UNITS",
    "TOKEN_UNITS",
    "Action",
    "AddressOpt",
    "AmountOpt",
    "CliError",
    "Role",
    "add_lifecycle",
    "check_minimum",
    "checksum",
    "command",
    "describe_stake",
    "emit_json",
    "event_args",
    "format_amount",
    "format_gas",
    "load_deployment",
    "parse_address",
    "parse_amount",
    "staked_suppliers",
]

DECIMALS = 18  # the RLY token's (Token.vy: decimals = 18)
DEFAULT_DEPLOYMENT = Path(".devnet/state.json")
TOKEN_UNITS: Mapping[str, int] = {"rly": 10**DECIMALS, "base": 1}
GAS_UNITS: Mapping[str, int] = {"eth": 10**18, "gwei": 10**9, "wei": 1}
_HOW = {
    id(TOKEN_UNITS): "1000rly (tokens) or 5base (base units)",
    id(GAS_UNITS): "0.5eth, 12gwei or 7wei",
}


class CliError(RelaynetError):
    """A command-line mistake: the message names the option or file and the fix."""

    code = ErrorCode.MALFORMED_INPUT


# -- values --------------------------------------------------------------------------------


def parse_amount(text: str, option: str, units: Mapping[str, int] = TOKEN_UNITS) -> int:
    """``<decimal><unit>`` → base units. ``1000rly``, ``1.5 RLY``, ``5base``; ``0.5eth``,
    ``12gwei`` for ``units=GAS_UNITS``. A bare number is refused: its unit would be a guess."""
    raw = text.strip().replace("_", "").lower()
    written = _HOW[id(units)] if id(units) in _HOW else " or ".join(f"1{u}" for u in units)
    unit = next((u for u in sorted(units, key=len, reverse=True) if raw.endswith(u)), None)
    if unit is None:
        other = TOKEN_UNITS if units is GAS_UNITS else GAS_UNITS
        if any(raw.endswith(u) for u in other) and raw[:1].isdigit():
            raise CliError(f"{option} {text}: wrong kind of amount here — write it as {written}")
        if raw.replace(".", "", 1).isdigit():
            raise CliError(f"{option} {text}: a bare number has no unit — write it as {written}")
        raise CliError(f"{option} {text!r} is not an amount — write it as {written}")
    try:
        value = Decimal(raw[: -len(unit)].strip()) * units[unit]
    except InvalidOperation:
        raise CliError(f"{option} {text!r} is not an amount — write it as {written}") from None
    if value != value.to_integral_value():
        raise CliError(f"{option} {text}: finer than one base unit — use fewer decimals")
    if value <= 0:
        raise CliError(f"{option} {text}: the amount must be positive")
    return int(value)


def format_amount(amount: int) -> str:
    """``1500000000000000000`` → ``1.5 RLY (1500000000000000000 base units)``."""
    whole = Decimal(amount) / (Decimal(10) ** DECIMALS)
    text = format(whole.normalize(), "f") if amount else "0"
    return f"{text} RLY ({amount} base units)"


def format_gas(wei: int) -> str:
    """Gas money: ``1.5 ETH`` (exact)."""
    whole = Decimal(wei) / Decimal(10**18)
    return f"{format(whole.normalize(), 'f') if wei else '0'} ETH"


def parse_address(text: str, option: str) -> bytes:
    try:
        return address_from_hex(text.strip())
    except RelaynetError:
        raise CliError(f"{option} {text!r} is not an address — give 0x and 40 hex digits") from None


def checksum(address: bytes) -> str:
    return address_to_checksum(address)


def emit_json(doc: Mapping[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=2, sort_keys=True))


def load_deployment(path: Path) -> Deployment:
    """Read a ``Deployment.to_json()`` file, or a devnet state file that holds one."""
    from ledger.deploy import Deployment

    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise CliError(
            f"deployment file {path} not found — pass --deployment FILE "
            "(or start a devnet: relaynet devnet up)"
        ) from None
    except OSError as exc:
        raise CliError(f"cannot read deployment file {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"deployment file {path} is not JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if isinstance(doc, Mapping) and "contracts" not in doc:
        for key in ("deployment", "ledger", "settlement"):
            inner = doc.get(key)
            if isinstance(inner, Mapping) and "contracts" in inner:
                doc = inner
                break
    if not isinstance(doc, Mapping) or "contracts" not in doc:
        raise CliError(f'{path} holds no deployment (no "contracts") — pass --deployment FILE')
    try:
        return Deployment.from_json(json.dumps(doc))
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(f"malformed deployment in {path}: {exc}") from None


async def event_args(
    client: LedgerClient, contract: str, event: str, *topics: bytes | None
) -> list[Mapping[str, Any]]:
    """The arguments of every ``contract.event`` since the deployment, in chain order;
    ``topics`` filter the indexed arguments in order (None: any; addresses as 20 bytes)."""
    logs = await client.w3.eth.get_logs(
        {
            "address": client.w3.to_checksum_address(client.deployment.contracts[contract]),
            "fromBlock": client.deployment.genesis_block,
            "toBlock": "latest",
            "topics": [
                "0x" + client.events.topic(contract, event).hex(),
                *(None if t is None else "0x" + t.rjust(32, b"\0").hex() for t in topics),
            ],
        }
    )
    return [e.args for e in client.events.decode_all(logs)]


async def staked_suppliers(client: LedgerClient) -> list[SupplierState]:
    """Every supplier staked or unbonding now (from ``SupplierStaked`` events), by address."""
    seen = {bytes(a["supplier"]) for a in await event_args(client, "Suppliers", "SupplierStaked")}
    states = [await client.supplier(s) for s in sorted(seen)]
    return [s for s in states if s.status.name != "NONE"]


async def check_minimum(client: LedgerClient, param: str, value: int, given: str) -> None:
    """Refuse ``value`` below the economic parameter ``param`` (``min_stake_app``, …) in
    force, saying what the minimum is."""
    params = await client.economic_params(await client.current_session())
    least = int(getattr(params, param))
    if value < least:
        role = param.removeprefix("min_stake_")
        tokens = format((Decimal(least) / (Decimal(10) ** DECIMALS)).normalize(), "f")
        raise CliError(
            f"{given} is below the minimum {role} stake of {format_amount(least)} — "
            f"stake at least {tokens}rly"
        )


# -- the shared options --------------------------------------------------------------------

AmountOpt = Annotated[str, typer.Option("--amount", help="Tokens, e.g. 1000rly or 5base.")]

AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Address (default: the keystore's).")
]

_CHAIN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "rpc_url": (
        Annotated[
            str | None,
            typer.Option(
                "--rpc-url",
                envvar="RELAYNET_RPC_URL",
                help="Settlement chain JSON-RPC URL (default: the deployment's).",
            ),
        ],
        None,
    ),
    "deployment": (
        Annotated[
            Path,
            typer.Option(
                "--deployment",
                envvar="RELAYNET_DEPLOYMENT",
                help="Deployment JSON, or a devnet state file (.devnet/state.json).",
            ),
        ],
        DEFAULT_DEPLOYMENT,
    ),
}
_KEY_OPTIONS: dict[str, tuple[Any, Any]] = {
    "keystore": (
        Annotated[
            Path | None,
            typer.Option(
                "--keystore", envvar="RELAYNET_KEYSTORE", help="Ethereum keystore v3 file."
            ),
        ],
        None,
    ),
    "passphrase_env": (
        Annotated[
            str | None,
            typer.Option("--passphrase-env", help="Environment variable holding the passphrase."),
        ],
        None,
    ),
    "passphrase_file": (
        Annotated[
            Path | None,
            typer.Option("--passphrase-file", help="File whose first line is the passphrase."),
        ],
        None,
    ),
}
_YES_OPTION = {
    "yes": (
        Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")],
        False,
    )
}
_JSON_OPTION = {"as_json": (Annotated[bool, typer.Option("--json", help="Print JSON.")], False)}


@dataclass
class Action:
    """What a staking command gets: its chain, its key (loaded on first use), its flags."""

    rpc_url: str | None = None
    deployment: Path = DEFAULT_DEPLOYMENT
    keystore: Path | None = None
    passphrase_env: str | None = None
    passphrase_file: Path | None = None
    yes: bool = False
    as_json: bool = False
    _account: AccountKey | None = field(default=None, repr=False)

    def account(self) -> AccountKey:
        """The keystore's key (decrypted once)."""
        if self._account is None:
            if self.keystore is None:
                raise CliError("a keystore is needed: pass --keystore PATH")
            passphrase = resolve_passphrase(env_var=self.passphrase_env, file=self.passphrase_file)
            self._account = read_account_key(self.keystore, passphrase)
        return self._account

    def who(self, address: str | None, option: str = "--address") -> bytes:
        """``address`` when given, else the keystore's account."""
        return parse_address(address, option) if address else self.account().address

    def client(self, *, signer: bool = False) -> LedgerClient:
        """A :class:`LedgerClient` on the deployment's chain (``--rpc-url`` overrides its URL),
        signing with the keystore's key when ``signer``."""
        from ledger.client import LedgerClient

        deployment = load_deployment(self.deployment)
        account = self.account() if signer else None
        return LedgerClient(self.rpc_url or deployment.rpc_url, deployment, account)

    def confirm(self, lines: list[str]) -> None:
        """Show what is about to happen; ask unless ``--yes`` (declining exits 1)."""
        for line in lines:
            typer.echo(line)
        if self.yes:
            return
        if not typer.confirm("Proceed?", default=False):
            typer.echo("aborted: nothing was sent", err=True)
            raise typer.Exit(code=1)

    def show(self, doc: Mapping[str, Any], lines: list[str]) -> None:
        """Print ``doc`` as JSON with ``--json``, else ``lines``."""
        if self.as_json:
            emit_json(doc)
        else:
            for line in lines:
                typer.echo(line)

    async def pay(
        self,
        amount: str,
        purpose: str,
        tx: Callable[[LedgerClient, int], Awaitable[TxReceipt]],
        *,
        verb: str = "Stake",
        done: str = "staked",
        option: str = "--amount",
        minimum: str = "",
    ) -> None:
        """Parse ``amount`` (of ``option``), then :meth:`spend` it on ``tx(client, value)``;
        ``minimum`` names the economic parameter it may not be below (empty: none)."""
        value = parse_amount(amount, option)
        async with self.client(signer=True) as client:
            if minimum:
                await check_minimum(client, minimum, value, f"{option} {amount}")
            await self.spend(client, verb, value, purpose, lambda: tx(client, value), done=done)

    async def spend(
        self,
        client: LedgerClient,
        verb: str,
        value: int,
        purpose: str,
        tx: Callable[[], Awaitable[TxReceipt]],
        *,
        done: str,
        details: tuple[str, ...] = (),
    ) -> TxReceipt:
        """Confirm ``<verb> <value> from <me> (balance …) <purpose>`` (and ``details``), then
        send ``tx`` like :meth:`send`."""
        have = await client.balance()
        line = (
            f"{verb} {format_amount(value)} from {checksum(self.account().address)} "
            f"(balance {format_amount(have)}) {purpose}"
        )
        return await self.send(done, [line, *details], tx)

    async def send(
        self, what: str, lines: list[str], tx: Callable[[], Awaitable[TxReceipt]]
    ) -> TxReceipt:
        """Confirm ``lines``, send ``tx``, print its receipt as ``what: transaction …``."""
        self.confirm(lines)
        receipt = await tx()
        typer.echo(
            f"{what}: transaction {receipt.tx_hash_hex} mined in block {receipt.block_number} "
            f"(gas {receipt.gas_used})"
        )
        return receipt


Describe = Callable[[Any, int], tuple[dict[str, Any], list[str]]]


@dataclass(frozen=True)
class Role:
    """A staked role's life after staking. ``kind`` names its
    :class:`ledger.client.LedgerClient` methods: ``<kind>(address)`` reads it,
    ``top_up_<kind>``, ``unstake_<kind>`` and ``withdraw_<kind>`` send. ``services`` names the
    state's field of services for the unstake line (empty: none). ``describe(state,
    session)`` gives ``status``'s JSON and lines (None: the group has its own ``status``)."""

    noun: str
    kind: str
    services: str = ""
    describe: Describe | None = None


def add_lifecycle(app: typer.Typer, role: Role) -> None:
    """Add ``top-up``, ``unstake``, ``withdraw`` (and ``status``) for ``role`` to ``app``."""

    async def read(client: LedgerClient, who: bytes | None = None) -> Any:
        return await getattr(client, role.kind)(who)

    @command(app, "top-up", sends=True)
    async def top_up(action: Action, amount: AmountOpt) -> None:
        value = parse_amount(amount, "--amount")
        async with action.client(signer=True) as client:
            state = await read(client)
            await action.spend(
                client,
                "Add",
                value,
                f"to the stake of {role.noun} {checksum(state.address)} "
                f"(stake {format_amount(state.stake)})",
                lambda: getattr(client, f"top_up_{role.kind}")(value),
                done="topped up",
            )
            typer.echo(f"stake now {format_amount((await read(client)).stake)}")

    top_up.__doc__ = f"Add stake to a staked {role.noun} (nothing else changes)."

    def leave(name: str, method: str, done: str, describe: Callable[[Any], str]) -> None:
        async def run(action: Action) -> None:
            async with action.client(signer=True) as client:
                state = await read(client)
                await action.send(done, [describe(state)], getattr(client, method))
                if name == "unstake":
                    after = await read(client)
                    typer.echo(f"withdrawable from session {after.withdrawable_session}")

        run.__doc__ = (
            f"Unstake the {role.noun} from the next session; the stake unbonds."
            if name == "unstake"
            else f"Withdraw the {role.noun}'s stake once unbonding is over and no claim is open."
        )
        command(app, name, sends=True)(run)

    leave(
        "unstake",
        f"unstake_{role.kind}",
        "unstaked",
        lambda state: (
            f"Unstake {role.noun} {checksum(state.address)} "
            f"(stake {format_amount(state.stake)}{_served(state, role.services)})"
        ),
    )
    leave(
        "withdraw",
        f"withdraw_{role.kind}",
        "withdrawn",
        lambda state: f"Withdraw {format_amount(state.stake)} to {checksum(state.address)}",
    )
    if role.describe is not None:
        _add_status(app, role, role.describe)


def _add_status(app: typer.Typer, role: Role, describe: Describe) -> None:
    @command(app, "status", key=True, prints_json=True)
    async def status(action: Action, address: AddressOpt = None) -> None:
        who = action.who(address)
        async with action.client() as client:
            state = await getattr(client, role.kind)(who)
            session = await client.current_session()
        action.show(*describe(state, session))

    status.__doc__ = f"Show a {role.noun}'s stake, services, claims and unbonding."


def describe_stake(
    noun: str, state: Any, session: int, doc: dict[str, Any], lines: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """``status`` of a staked role: the fields every role has around its own ``doc``/``lines``."""
    full = {
        "address": checksum(state.address),
        "status": state.status.name.lower(),
        "stake": str(state.stake),
        **doc,
        "unstake_session": state.unstake_session,
        "withdrawable_session": state.withdrawable_session,
        "current_session": session,
    }
    out = [f"{noun} {full['address']}: {full['status']}", *lines]
    if state.status.name == "UNBONDING":
        out.append(f"  withdrawable from session {state.withdrawable_session} (now {session})")
    return full, out


def _served(state: Any, field_name: str) -> str:
    """``, services a, b`` from a role's state field (a name or a collection of names)."""
    if not field_name:
        return ""
    value = getattr(state, field_name)
    names = [value] if isinstance(value, str) or value is None else list(value)
    return f", services {', '.join(n for n in names if n) or '-'}"


def command(
    app: typer.Typer | None,
    name: str,
    *,
    key: bool = False,
    sends: bool = False,
    prints_json: bool = False,
) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., None]]:
    """Register ``async def fn(action: Action, **own)`` as command ``name`` of ``app`` with the
    shared options added (see the module doc); errors become one ``error: …`` line, exit 1.
    ``app=None`` returns the command without registering it."""
    shared = dict(_CHAIN_OPTIONS)
    if key or sends:
        shared.update(_KEY_OPTIONS)
    if sends:
        shared.update(_YES_OPTION)
    if prints_json:
        shared.update(_JSON_OPTION)

    def wrap(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        hints = get_type_hints(fn, include_extras=True)
        own = list(inspect.signature(fn).parameters.values())[1:]  # drop ``action``
        params = [p.replace(annotation=hints[p.name]) for p in own] + [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=t, default=d)
            for n, (t, d) in shared.items()
        ]

        @functools.wraps(fn)
        def run(**kwargs: Any) -> None:
            action = Action(**{n: kwargs.pop(n) for n in shared})
            try:
                asyncio.run(_call(fn, action, kwargs))
            except RelaynetError as exc:
                typer.echo(f"error: {exc.message}", err=True)
                raise typer.Exit(code=1) from None

        del run.__wrapped__  # typer must see the new signature, not ``fn``'s
        run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return app.command(name)(run) if app is not None else run

    return wrap


async def _call(fn: Callable[..., Awaitable[None]], action: Action, kwargs: dict[str, Any]) -> None:
    await fn(action, **kwargs)
