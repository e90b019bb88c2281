"""A celestia-node **stand-in** (no Celestia node can be installed here): aiohttp, loopback.

JSON-RPC 2.0 over HTTP (POST ``/``) and WebSocket (upgrade on ``/``), as celestia-node serves
on port 26658, with its permission model enforced the way the node does it (go-jsonrpc's auth
proxy):

* ``Authorization: Bearer <JWT>`` (HS256 with the node's secret, claim ``{"Allow": [...]}``,
  :mod:`rollups.standins.jwt`); permissions are cumulative public ⊂ read ⊂ write ⊂ admin;
* no token: only ``public`` — every read answers
  ``{"code":1,"message":"missing permission to invoke 'header.NetworkHead' (need 'read')"}``;
* a token that does not verify: HTTP 401 with an empty body (the request never reaches a method);
* the 72 methods of :mod:`rollups.celestia.methods` with their levels (``blob.Submit`` and the
  ``state.*`` writes need ``write``; ``node.*`` admin methods and ``p2p.*`` need ``admin``);
  anything else, including the removed ``da.*`` module: ``-32601 method '<name>' not found``.

Answers use celestia-node's own doc examples (package data :mod:`rollups.standins.fixtures`:
extended header, blob, blob proof, sampling stats, tx response) filled with the simulated
chain's network and heights. Subscriptions (``header.Subscribe``, ``blob.Subscribe``) follow
go-jsonrpc channels: the call answers a channel id, then the node pushes
``{"jsonrpc":"2.0","method":"xrpc.ch.val","params":[<id>, <value>]}`` for each new block.
Long polls (``header.WaitForHeight``, ``header.SyncWait``, ``das.WaitCatchUp``) wait server-side.

Documented guesses (not in the fixtures): the permission error's code 1 (go-jsonrpc's default
for errors a method returns), the messages of "from the future" and "blob: not found", and the
shapes of share / state / blobstream answers beyond the tx response.

Run it: ``python -m rollups.standins.celestia --port 26658 --jwt-secret HEX [--network NAME]``
(prints a read token and an admin token); in code: ``standin = await start_celestia(secret)``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from rollups.celestia.methods import METHODS, Permission
from rollups.standins.fixtures import load_json
from rollups.standins.jwt import InvalidToken, make_token, verify_token
from rollups.standins.server import BlockClock, StandIn, StandInServer, run_standin

__all__ = ["CelestiaStandIn", "main", "start_celestia"]

log = logging.getLogger("rollups.standins.celestia")

_CHANNEL_VALUE = "xrpc.ch.val"
_SEED_HEIGHT = 2  # the fixture blob is in this block


class NodeError(Exception):
    """An error a method returns (go-jsonrpc code 1 unless said otherwise)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    granted: frozenset[Permission]
    channels: dict[int, str] = field(default_factory=dict)  # channel id -> topic


def _hash(*parts: object) -> str:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest().upper()


class CelestiaStandIn(StandIn):
    """The stand-in's chain, permission check and aiohttp application."""

    def __init__(
        self,
        jwt_secret: bytes,
        network: str = "mocha-4",
        *,
        start_height: int = 3,
        block_time: float = 1.0,
        sync_lag: int = 0,
    ) -> None:
        self.secret = jwt_secret
        self.network = network
        self.clock = BlockClock(start_height, block_time)
        self.sync_lag = sync_lag  # how far LocalHead trails NetworkHead
        blob = load_json("celestia-blob.json")
        self.blobs: dict[int, list[dict[str, Any]]] = {_SEED_HEIGHT: [blob]}
        self.requests: list[dict[str, Any]] = []  # what reached the node (method, headers)
        self._connections: list[_Connection] = []
        self._next_channel = 0
        self.clock.on_block(self._on_block)
        self._handlers = self._methods()
        app = web.Application(client_max_size=8 << 20)
        app.router.add_post("/", self._post)
        app.router.add_get("/", self._websocket)
        self.app = app
        self.server = StandInServer(app, "celestia-node")

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return self.server.url.replace("http://", "ws://")

    def token(self, permission: Permission | str) -> str:
        """A token of this node for ``permission``."""
        return make_token(self.secret, permission)

    def _open_sockets(self) -> Iterable[web.WebSocketResponse]:
        return [c.ws for c in self._connections]

    # -- auth ------------------------------------------------------------------------------
    def _granted(self, request: web.Request) -> frozenset[Permission] | None:
        """Levels of the caller; ``None`` when a token was given and does not verify."""
        header = request.headers.get("Authorization", "")
        if not header:
            return frozenset({Permission.PUBLIC})
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return verify_token(self.secret, token.strip()) | {Permission.PUBLIC}
        except (InvalidToken, ValueError):
            return None

    # -- transports ------------------------------------------------------------------------
    async def _post(self, request: web.Request) -> web.Response:
        granted = self._granted(request)
        if granted is None:
            log.warning("JWT Verification failed (stand-in)")
            return web.Response(status=401)
        raw = await request.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _json(_error(None, -32700, "Parse error"), status=500)
        self._note(request, str(data.get("method")) if isinstance(data, dict) else "")
        return _json(await self._answer(data, granted, None))

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        granted = self._granted(request)
        if granted is None:
            return web.Response(status=401)
        ws = web.WebSocketResponse()
        if not ws.can_prepare(request).ok:
            return web.Response(status=405, text="POST JSON-RPC, or upgrade to a WebSocket")
        await ws.prepare(request)
        conn = _Connection(ws, granted)
        self._connections.append(conn)
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    data = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    await ws.send_str(_error(None, -32700, "Parse error").decode())
                    continue
                self._note(request, str(data.get("method")) if isinstance(data, dict) else "")
                await ws.send_str((await self._answer(data, granted, conn)).decode())
        finally:
            self._connections.remove(conn)
        return ws

    # -- JSON-RPC --------------------------------------------------------------------------
    async def _answer(
        self, data: Any, granted: frozenset[Permission], conn: _Connection | None
    ) -> bytes:
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return _error(None, -32600, "invalid request")
        id_ = data.get("id")
        method: str = data["method"]
        info = METHODS.get(method)
        if info is None:
            return _error(id_, -32601, f"method '{method}' not found")
        if info.permission not in granted:
            return _error(
                id_,
                1,
                f"missing permission to invoke '{method}' (need '{info.permission.value}')",
            )
        params = data.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error(id_, -32602, f"unmarshaling params for '{method}': expected an array")
        try:
            if info.info.method_class.value == "subscription":
                if conn is None:
                    return _error(
                        id_, -32603, f"{method}: channels are only served over a WebSocket"
                    )
                return _result(id_, self._subscribe(conn, method, params))
            handler = self._handlers.get(method, _default)
            return _result(id_, await handler(params))
        except NodeError as exc:
            return _error(id_, exc.code, exc.message)
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            return _error(id_, -32602, f"unmarshaling params for '{method}': {exc}")

    def _subscribe(self, conn: _Connection, method: str, params: list[Any]) -> int:
        self._next_channel += 1
        topic = method if not params else f"{method}:{params[0]}"
        conn.channels[self._next_channel] = topic
        return self._next_channel

    async def _on_block(self, height: int) -> None:
        for conn in list(self._connections):
            for channel, topic in list(conn.channels.items()):
                if topic == "header.Subscribe":
                    value: Any = self._header(height)
                elif topic.startswith("blob.Subscribe:"):
                    ns = topic.split(":", 1)[1]
                    found = [b for b in self.blobs.get(height, []) if b["namespace"] == ns]
                    value = {"blobs": found or None, "height": height}
                else:
                    continue
                message = {"jsonrpc": "2.0", "method": _CHANNEL_VALUE, "params": [channel, value]}
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(orjson.dumps(message).decode())

    # -- methods ---------------------------------------------------------------------------
    def _header(self, height: int) -> dict[str, Any]:
        header = load_json("celestia-extendedHeader.json")
        inner = header["header"]
        inner.update(
            chain_id=self.network,
            height=str(height),
            data_hash=_hash(self.network, "data", height),
            app_hash=_hash(self.network, "app", height),
        )
        inner["last_block_id"]["hash"] = _hash(self.network, "block", height - 1)
        if isinstance(header.get("commit"), dict):
            header["commit"]["height"] = height
            if isinstance(header["commit"].get("block_id"), dict):
                header["commit"]["block_id"]["hash"] = _hash(self.network, "block", height)
        return dict(header)

    def _check_height(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"height must be a positive integer, got {value!r}")
        head = self.clock.height
        if value > head:
            raise NodeError(
                f"header: given height is from the future: networkHeight: {head}, "
                f"requestedHeight: {value}"
            )
        return value

    def _local_head(self) -> int:
        return max(1, self.clock.height - self.sync_lag)

    def _methods(self) -> dict[str, Callable[[list[Any]], Awaitable[Any]]]:
        async def local_head(p: list[Any]) -> Any:
            return self._header(self._local_head())

        async def network_head(p: list[Any]) -> Any:
            return self._header(self.clock.height)

        async def by_height(p: list[Any]) -> Any:
            return self._header(self._check_height(p[0]))

        async def by_hash(p: list[Any]) -> Any:
            wanted = str(p[0]).upper()
            for h in range(self.clock.height, 0, -1):
                if _hash(self.network, "block", h) == wanted:
                    return self._header(h)
            raise NodeError("header: not found")

        async def range_by_height(p: list[Any]) -> Any:
            start = int(read_height(p[0])) + 1
            end = self._check_height(p[1])
            return [self._header(h) for h in range(start, end)]

        async def wait_for_height(p: list[Any]) -> Any:
            wanted = p[0]
            if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
                raise ValueError("height must be a positive integer")
            await self.clock.wait_for(wanted)
            return self._header(wanted)

        async def sync_state(p: list[Any]) -> Any:
            head = self.clock.height
            return {
                "id": 1,
                "height": self._local_head(),
                "from_height": 1,
                "to_height": head,
                "from_hash": _hash(self.network, "block", 1),
                "to_hash": _hash(self.network, "block", head),
                "start": "2023-02-25T12:10:28.067566292Z",
                "end": "0001-01-01T00:00:00Z",
            }

        async def sync_wait(p: list[Any]) -> Any:
            while self.sync_lag > 0:
                await self.clock.wait_for(self.clock.height + 1)
            return None

        async def tail(p: list[Any]) -> Any:
            return self._header(1)

        async def blob_submit(p: list[Any]) -> Any:
            blobs = p[0]
            if not isinstance(blobs, list) or not blobs:
                raise ValueError("blobs must be a non-empty array")
            height = self.clock.height + 1
            for blob in blobs:
                if not isinstance(blob, dict) or "namespace" not in blob or "data" not in blob:
                    raise ValueError("a blob needs namespace and data")
                stored = dict(load_json("celestia-blob.json"))
                stored.update(namespace=blob["namespace"], data=blob["data"])
                stored["commitment"] = base64.b64encode(
                    hashlib.sha256(str(blob["data"]).encode()).digest()
                ).decode()
                self.blobs.setdefault(height, []).append(stored)
            await self.clock.advance(1)
            return height

        async def blob_get(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            for blob in self.blobs.get(height, []):
                if blob["namespace"] == p[1] and blob["commitment"] == p[2]:
                    return blob
            raise NodeError("blob: not found")

        async def blob_get_all(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            namespaces = p[1]
            if not isinstance(namespaces, list):
                raise ValueError("namespaces must be an array")
            found = [b for b in self.blobs.get(height, []) if b["namespace"] in namespaces]
            return found or None

        async def blob_get_proof(p: list[Any]) -> Any:
            await blob_get(p)
            return load_json("celestia-blobProof.json")

        async def blob_included(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            return any(
                b["namespace"] == p[1] and b["commitment"] == p[3]
                for b in self.blobs.get(height, [])
            )

        async def commitment_proof(p: list[Any]) -> Any:
            self._check_height(p[0])
            return {"subtree_roots": [], "subtree_root_proofs": [], "namespace_id": p[1]}

        async def shares_available(p: list[Any]) -> Any:
            self._check_height(p[0])
            return None

        async def share_at(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            return base64.b64encode(
                bytes.fromhex(_hash(self.network, "share", height, p[1:])) * 16
            ).decode()

        async def eds(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            share = base64.b64encode(
                bytes.fromhex(_hash(self.network, "share", height)) * 16
            ).decode()
            return {"data_square": [share] * 4, "codec": "Leopard", "square_size": 2}

        async def row(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            share = base64.b64encode(
                bytes.fromhex(_hash(self.network, "row", height)) * 16
            ).decode()
            return {"shares": [share, share], "side": "both"}

        async def namespace_data(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            blobs = [b for b in self.blobs.get(height, []) if b["namespace"] == p[1]]
            return [{"shares": [b["data"] for b in blobs], "proof": None}] if blobs else []

        async def share_range(p: list[Any]) -> Any:
            height = self._check_height(p[0])
            return {"shares": [], "proof": {"height": height}}

        async def samples(p: list[Any]) -> Any:
            return [{"share": "", "proof": None} for _ in (p[1] if len(p) > 1 else [])]

        async def account_address(p: list[Any]) -> Any:
            return "celestia1standin0000000000000000000000000000000"

        async def balance(p: list[Any]) -> Any:
            return {"denom": "utia", "amount": "1000000000"}

        async def state_read(p: list[Any]) -> Any:
            return {"height": self.clock.height, "response": {}}

        async def state_write(p: list[Any]) -> Any:
            tx = load_json("celestia-txResponse.json")
            tx["height"] = self.clock.height + 1
            tx["txhash"] = _hash(self.network, "tx", self.clock.height, len(self.requests))
            await self.clock.advance(1)
            return tx

        async def sampling_stats(p: list[Any]) -> Any:
            stats = load_json("celestia-samplingStats.json")
            head = self.clock.height
            stats.update(
                head_of_sampled_chain=self._local_head(),
                head_of_catchup=self._local_head(),
                network_head_height=head,
                catch_up_done=self.sync_lag == 0,
                workers=[],
            )
            return stats

        async def wait_catch_up(p: list[Any]) -> Any:
            return await sync_wait(p)

        async def tuple_root(p: list[Any]) -> Any:
            self._check_height(p[1])
            return base64.b64encode(
                bytes.fromhex(_hash(self.network, "dataroot", p[0], p[1]))
            ).decode()

        async def tuple_proof(p: list[Any]) -> Any:
            self._check_height(p[0])
            return {"total": 1, "index": 0, "leaf_hash": "", "aunts": []}

        async def ready(p: list[Any]) -> Any:
            return True

        async def node_info(p: list[Any]) -> Any:
            return {"type": 2, "api_version": "v0.0.0-standin"}

        return {
            "header.LocalHead": local_head,
            "header.NetworkHead": network_head,
            "header.GetByHeight": by_height,
            "header.GetByHash": by_hash,
            "header.GetRangeByHeight": range_by_height,
            "header.WaitForHeight": wait_for_height,
            "header.SyncState": sync_state,
            "header.SyncWait": sync_wait,
            "header.Tail": tail,
            "blob.Submit": blob_submit,
            "blob.Get": blob_get,
            "blob.GetAll": blob_get_all,
            "blob.GetProof": blob_get_proof,
            "blob.Included": blob_included,
            "blob.GetCommitmentProof": commitment_proof,
            "share.SharesAvailable": shares_available,
            "share.GetShare": share_at,
            "share.GetSamples": samples,
            "share.GetEDS": eds,
            "share.GetRow": row,
            "share.GetNamespaceData": namespace_data,
            "share.GetRange": share_range,
            "state.AccountAddress": account_address,
            "state.Balance": balance,
            "state.BalanceForAddress": balance,
            "state.QueryDelegation": state_read,
            "state.QueryDelegationRewards": state_read,
            "state.QueryUnbonding": state_read,
            "state.QueryRedelegations": state_read,
            "state.Transfer": state_write,
            "state.SubmitPayForBlob": state_write,
            "state.Delegate": state_write,
            "state.Undelegate": state_write,
            "state.BeginRedelegate": state_write,
            "state.CancelUnbondingDelegation": state_write,
            "state.WithdrawDelegatorReward": state_write,
            "state.GrantFee": state_write,
            "state.RevokeGrantFee": state_write,
            "das.SamplingStats": sampling_stats,
            "das.WaitCatchUp": wait_catch_up,
            "blobstream.GetDataRootTupleRoot": tuple_root,
            "blobstream.GetDataRootTupleInclusionProof": tuple_proof,
            "node.Ready": ready,
            "node.Info": node_info,
        }


def read_height(header: Any) -> int:
    """The height of an ExtendedHeader param (``header.height``, a decimal string)."""
    if isinstance(header, dict) and isinstance(header.get("header"), dict):
        return int(str(header["header"]["height"]))
    raise ValueError("expected an extended header")


async def _default(params: list[Any]) -> Any:
    return None


def _result(id_: Any, result: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "result": result})


def _error(id_: Any, code: int, message: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}})


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


async def start_celestia(
    jwt_secret: bytes,
    network: str = "mocha-4",
    *,
    port: int = 0,
    start_height: int = 3,
    block_time: float = 1.0,
    sync_lag: int = 0,
) -> CelestiaStandIn:
    """Start a celestia-node stand-in on a loopback port (0 = a free one); ``await x.close()``."""
    standin = CelestiaStandIn(
        jwt_secret, network, start_height=start_height, block_time=block_time, sync_lag=sync_lag
    )
    await standin.start(port)
    return standin


def main(argv: list[str] | None = None) -> None:
    """``python -m rollups.standins.celestia --port N --jwt-secret HEX [--network NAME]``."""
    parser = argparse.ArgumentParser(description="celestia-node stand-in (not a Celestia node)")
    parser.add_argument("--port", type=int, default=26658)
    parser.add_argument("--jwt-secret", required=True, help="the node's HS256 secret, hex")
    parser.add_argument("--network", default="mocha-4")
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--start-height", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        secret = bytes.fromhex(args.jwt_secret.removeprefix("0x"))
    except ValueError:
        parser.error("--jwt-secret must be hex")

    def make() -> CelestiaStandIn:
        standin = CelestiaStandIn(
            secret, args.network, start_height=args.start_height, block_time=args.block_time
        )
        print(f"read token:  {standin.token(Permission.READ)}", flush=True)
        print(f"admin token: {standin.token(Permission.ADMIN)}", flush=True)
        return standin

    run_standin(make, args.port)


if __name__ == "__main__":
    main()
