"""``relaynet relayer check`` and ``relaynet gateway check``: is this server ready to run?

Each check is one :class:`Check` (✓ or ✗, what, detail with the fix). The sequence stops where a
later check would only repeat an earlier failure (no chain checks without a readable config).

Relayer: config → keys decrypt → settlement RPC (chain id as the deployment says) → deployment
(code at every contract address, the session shape) → each backend's chain id and height → gas
balance against one claim and its proof → stake (staked, the receipt key on chain, headroom: a
claim locks ``slash_multiplier`` × what it claims) → each staked endpoint allowed by the address
rules gateways apply (loopback, private and link-local refused outside a devnet) and answering
as a relayer.

Gateway: config → key → settlement RPC → deployment → the gateway's stake → each service's spec
and its registration on chain → the API key store (Redis answers, or the keys file reads).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from protocol.encoding import address_to_checksum
from protocol.errors import RelaynetError
from relaynet.config import load_gateway, load_relayer

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from ledger.client import LedgerClient
    from ledger.deploy import Deployment
    from protocol.keys import AccountKey, ReceiptKey
    from relayer.config import RelayerConfig

__all__ = ["Check", "gateway_checks", "relayer_checks"]

_TIMEOUT = 5.0  # seconds per network probe


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    detail: str


def _rly(amount: int) -> str:
    return f"{format((Decimal(amount) / 10**18).normalize(), 'f') if amount else '0'} RLY"


def _eth(wei: int) -> str:
    return f"{format((Decimal(wei) / 10**18).normalize(), 'f') if wei else '0'} ETH"


# -- shared steps ---------------------------------------------------------------------------------


def _deployment(out: list[Check], path: Path) -> Deployment | None:
    from ledger.deploy import Deployment

    try:
        return Deployment.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        out.append(Check(False, "deployment", f"cannot read {path}: {_reason(exc)}"))
        return None


async def _settlement(
    out: list[Check], rpc_url: str, deployment: Deployment
) -> LedgerClient | None:
    """The settlement RPC and the deployment: chain id, height, code at every address, shape."""
    from ledger.client import LedgerClient

    client = LedgerClient(rpc_url, deployment, request_timeout=_TIMEOUT)
    try:
        chain_id = await client.chain_id()
        height = await client.block_number()
    except (TimeoutError, RelaynetError, OSError, aiohttp.ClientError) as exc:
        await client.close()
        out.append(
            Check(
                False, "settlement RPC", f"{rpc_url} unreachable ({_reason(exc)}) — check rpc_url"
            )
        )
        return None
    if chain_id != deployment.chain_id:
        await client.close()
        out.append(
            Check(
                False,
                "settlement RPC",
                f"{rpc_url} is chain {chain_id}, the deployment is on chain "
                f"{deployment.chain_id} — point rpc_url at the deployment's chain",
            )
        )
        return None
    out.append(Check(True, "settlement RPC", f"{rpc_url}: chain {chain_id}, height {height}"))
    empty = []
    for name, address in sorted(deployment.contracts.items()):
        code = await client.w3.eth.get_code(client.w3.to_checksum_address(address))
        if not code:
            empty.append(f"{name} {address_to_checksum(bytes.fromhex(address[2:]))}")
    if empty:
        out.append(
            Check(
                False,
                "deployment",
                f"no code at {', '.join(empty)} — the deployment file is not of this chain",
            )
        )
        await client.close()
        return None
    shape = await client.shape()
    if shape != deployment.shape:
        out.append(Check(False, "deployment", "the session shape on chain differs from the file"))
        await client.close()
        return None
    out.append(
        Check(
            True, "deployment", f"code at all {len(deployment.contracts)} contracts, shape matches"
        )
    )
    return client


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


# -- relayer --------------------------------------------------------------------------------------


def relayer_checks(
    path: Path, *, devnet: bool = False, wait: float = 0.0, env: dict[str, str] | None = None
) -> list[Check]:
    """Every check of a relayer config (see the module doc); ``wait``: seconds to keep trying
    an endpoint that does not answer yet (a relayer just started)."""
    from relayer.keyfiles import read_account_key, read_receipt_keys

    try:
        cfg = load_relayer(path, env=env)
    except RelaynetError as exc:
        return [Check(False, "config", exc.message)]
    out = [Check(True, "config", f"{Path(path).absolute()} is valid")]
    try:
        account = read_account_key(cfg.keys.supplier_keystore, cfg.passphrase())
        receipt = read_receipt_keys(cfg.keys.receipt_key)  # after rotations: every key
    except RelaynetError as exc:
        out.append(Check(False, "keys", exc.message))
        return out
    address = address_to_checksum(account.address)
    out.append(Check(True, "keys", f"supplier {address} decrypts; receipt key reads"))
    deployment = _deployment(out, cfg.chain.deployment)
    if deployment is not None:
        asyncio.run(_relayer_network(out, cfg, account, receipt, deployment, devnet, wait))
    return out


async def _relayer_network(
    out: list[Check],
    cfg: RelayerConfig,
    account: AccountKey,
    receipt: tuple[ReceiptKey, ...],
    deployment: Deployment,
    devnet: bool,
    wait: float,
) -> None:
    from relayer.setup import check_backends

    address = address_to_checksum(account.address)
    for backend in await check_backends(cfg):
        detail = backend.message.removeprefix(f"{backend.service}: ")
        out.append(Check(backend.ok, f"backend {backend.service}", detail))
    client = await _settlement(out, cfg.chain.rpc_url, deployment)
    if client is None:
        return
    try:
        gas = cfg.claims.claim_gas_estimate + cfg.claims.proof_gas_estimate
        await _gas(out, client, account.address, gas)
        held = frozenset(k.public_key for k in receipt)
        endpoints = await _stake(out, client, account.address, held)
        if endpoints is None:
            return
        for sid in cfg.services:
            url = endpoints.get(sid)
            if url is None:
                out.append(
                    Check(
                        False,
                        f"endpoint {sid}",
                        f"{address} is not staked for {sid} — relaynet supplier stake (or "
                        f"supplier set-endpoint) --service {sid}=URL",
                    )
                )
            else:
                out.append(await _endpoint(sid, url, devnet=devnet, wait=wait))
    finally:
        await client.close()


async def _gas(out: list[Check], client: LedgerClient, who: bytes, gas: int) -> None:
    balance = await client.eth_balance(who)
    price = int(await client.w3.eth.gas_price)
    cost = gas * price
    need = f"a claim and its proof cost about {_eth(cost)} ({gas:,} gas at {price:,} wei)"
    if balance == 0 or balance < cost:
        where = address_to_checksum(who)
        out.append(Check(False, "gas", f"{_eth(balance)} at {where}; {need} — send it ETH for gas"))
    else:
        out.append(Check(True, "gas", f"{_eth(balance)}; {need}"))


async def _stake(
    out: list[Check], client: LedgerClient, who: bytes, receipt_keys: frozenset[bytes]
) -> dict[str, str] | None:
    from ledger.client import StakeStatus

    state = await client.supplier(who)
    if state.status != StakeStatus.STAKED:
        out.append(
            Check(
                False,
                "stake",
                f"{address_to_checksum(who)} is {state.status.name.lower()}, not staked — "
                "relaynet supplier stake (relayer init printed the command)",
            )
        )
        return None
    if state.receipt_key not in receipt_keys:
        out.append(
            Check(
                False,
                "receipt key",
                "the receipt key on chain is not the configured one — point keys.receipt_key "
                "at the staked key",
            )
        )
    params = await client.economic_params(await client.current_session())
    unlocked = max(state.stake - state.locked, 0)
    multiple = Decimal(params.slash_multiplier_bps) / 10_000
    covers = unlocked * 10_000 // max(params.slash_multiplier_bps, 1)
    text = (
        f"{_rly(state.stake)} staked, {_rly(state.locked)} locked by {state.open_claims} open "
        f"claim(s); a claim locks {multiple.normalize():f}× what it claims, so claims worth "
        f"{_rly(covers)} more can be made"
    )
    if unlocked == 0:
        out.append(Check(False, "stake headroom", f"{text} — relaynet supplier top-up"))
    else:
        out.append(Check(True, "stake headroom", text))
    return dict(state.endpoints)


async def _endpoint(sid: str, url: str, *, devnet: bool, wait: float) -> Check:
    """The staked URL under the gateways' address rules, then an answer from a relayer."""
    from gateway.endpoints import forbidden_ip

    what = f"endpoint {sid}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(False, what, f"{url} is not an http(s) URL — relaynet supplier set-endpoint")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return Check(False, what, f"{url}: {parts.hostname} does not resolve ({exc.strerror})")
    ips = sorted({str(info[4][0]) for info in infos})
    refused = [(ip, why) for ip in ips if (why := forbidden_ip(ip)) is not None]
    if refused and not devnet:
        ip, why = refused[0]
        return Check(
            False,
            what,
            f"{url} resolves to {ip}, a {why} address: gateways refuse it outside a devnet — "
            "stake a public URL (relaynet supplier set-endpoint)",
        )
    deadline = time.monotonic() + wait
    while True:
        answer = await _answers_as_relayer(url)
        if answer.startswith("HTTP") or time.monotonic() >= deadline:
            break
        await asyncio.sleep(1.0)
    if not answer.startswith("HTTP"):
        return Check(False, what, f"{url} unreachable ({answer}) — is `relaynet relayer run` up?")
    return Check(True, what, f"{url} answers as a relayer ({answer})")


async def _answers_as_relayer(url: str) -> str:
    """``HTTP <status> <code>`` when a relayer answered an empty relay with its error body,
    else why not."""
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=b"", allow_redirects=False) as resp,
        ):
            body = await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _reason(exc)
    try:
        doc = json.loads(body)
        error = doc.get("error")
        code = error.get("code") if isinstance(error, dict) else doc.get("code")
    except (ValueError, AttributeError):
        code = None
    if not isinstance(code, str):
        return f"HTTP {resp.status} but not a relayer's error body"
    return f"HTTP {resp.status} {code}"


# -- gateway --------------------------------------------------------------------------------------


def gateway_checks(path: Path, *, env: dict[str, str] | None = None) -> list[Check]:
    """Every check of a gateway config (see the module doc)."""
    from protocol.keys import AccountKey

    try:
        cfg = load_gateway(path, env=env)
    except RelaynetError as exc:
        return [Check(False, "config", exc.message)]
    out = [Check(True, "config", f"{Path(path).absolute()} is valid")]
    try:
        key = AccountKey(cfg.gateway.key_bytes())
    except (OSError, ValueError, RelaynetError) as exc:
        out.append(Check(False, "key", f"the gateway key does not load: {_reason(exc)}"))
        return out
    out.append(Check(True, "key", f"gateway {address_to_checksum(key.address)}"))
    if cfg.redis is None and cfg.keys.file is not None:
        exists = cfg.keys.file.exists()
        detail = f"keys file {cfg.keys.file}" + ("" if exists else " (empty until keys add)")
        out.append(Check(True, "key store", detail))
    deployment = _deployment(out, cfg.settlement.deployment)
    if deployment is not None:
        asyncio.run(_gateway_network(out, cfg, key.address, deployment))
    return out


async def _gateway_network(
    out: list[Check], cfg: GatewayConfig, who: bytes, deployment: Deployment
) -> None:
    from ledger.client import StakeStatus

    address = address_to_checksum(who)
    if cfg.redis is not None:
        await _redis(out, cfg.redis.url.get_secret_value())
    client = await _settlement(out, cfg.settlement.rpc_url, deployment)
    if client is None:
        return
    try:
        state = await client.gateway(who)
        if state.status == StakeStatus.STAKED:
            out.append(Check(True, "stake", f"{address} staked {_rly(state.stake)}"))
        else:
            out.append(
                Check(
                    False,
                    "stake",
                    f"{address} is {state.status.name.lower()}, not staked — relaynet gateway "
                    "stake --amount 100rly --url URL",
                )
            )
        on_chain = set(await client.services())
        for sid, svc in cfg.services.items():
            source = svc.catalogue if svc.catalogue is not None else svc.spec
            if sid in on_chain:
                out.append(Check(True, f"service {sid}", f"registered on chain; spec {source}"))
            else:
                out.append(
                    Check(
                        False,
                        f"service {sid}",
                        f"{sid} is not registered on chain — relaynet chain list shows what is",
                    )
                )
    finally:
        await client.close()


async def _redis(out: list[Check], url: str) -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client: Any = aioredis.from_url(url, socket_connect_timeout=_TIMEOUT)
    try:
        await client.ping()
        out.append(Check(True, "key store", "Redis answers"))
    except (RedisError, OSError) as exc:
        out.append(Check(False, "key store", f"Redis does not answer ({_reason(exc)}) — start it"))
    finally:
        await client.aclose()
