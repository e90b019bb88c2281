"""A CometBFT RPC **stand-in** (no CometBFT node can be installed here): aiohttp, loopback.

What it serves, as a CometBFT v0.38 node does (shapes from CometBFT's own OpenAPI file, package
data in :mod:`rollups.standins.fixtures`):

* JSON-RPC POSTed to ``/`` — single objects and batches;
* URI GETs — ``GET /block?height=5``, string arguments quoted or 0x-hex;
* JSON-RPC over the WebSocket at ``/websocket``, with ``subscribe`` / ``unsubscribe`` /
  ``unsubscribe_all`` for ``tm.event='NewBlock'``, ``'NewBlockHeader'`` and ``'Tx'`` events;
* params validated against the OpenAPI file (:mod:`rollups.standins.openapi`): a missing
  required argument, a wrong type, or an unknown name is ``-32602 Invalid params``;
* unsafe routes (``dial_seeds``, ``dial_peers``, ``unsafe_flush_mempool``) are not served
  (``rpc.unsafe = false``, the default): ``-32601 Method not found``.

The chain is simulated: a block every ``block_time`` seconds (:class:`BlockClock`), hashes
derived from the network and height, ``broadcast_tx_*`` put transactions into the next block.
With ``rest=True`` a few Cosmos REST routes are served too (``/cosmos/base/tendermint/v1beta1/
blocks/{latest,<h>}``, ``…/node_info``, ``…/syncing``, ``/cosmos/bank/v1beta1/balances/<addr>``,
``POST /cosmos/tx/v1beta1/txs``), as a rollchain's port 1317 would.

Documented guesses (not in the fixtures): error answers over POST are HTTP 200 with a JSON-RPC
error object (CometBFT's shape: ``{"code":-32602,"message":"Invalid params","data":"…"}``);
URI errors are HTTP 500 with the same body; an unknown URI path is HTTP 404; the stand-in refuses
unknown parameter names (the real node ignores them); Cosmos REST error bodies follow
grpc-gateway (``{"code":5,"message":"…","details":[]}``).

Run it: ``python -m rollups.standins.cometbft --port 26657 [--network NAME] [--block-time S]``;
in code: ``standin = await start_cometbft(network="rollchain-1")`` … ``await standin.close()``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from rollups.standins.openapi import ParamError, check_params, example_result, routes
from rollups.standins.server import BlockClock, StandIn, StandInServer, run_standin

__all__ = ["CometBftStandIn", "main", "start_cometbft"]

log = logging.getLogger("rollups.standins.cometbft")

_GENESIS_TIME = 1_700_000_000
_WS_ONLY = ("subscribe", "unsubscribe", "unsubscribe_all")
_UNSAFE = ("dial_seeds", "dial_peers", "unsafe_flush_mempool")
_EVENTS = {
    "tm.event='NewBlock'": "NewBlock",
    "tm.event = 'NewBlock'": "NewBlock",
    "tm.event='NewBlockHeader'": "NewBlockHeader",
    "tm.event = 'NewBlockHeader'": "NewBlockHeader",
    "tm.event='Tx'": "Tx",
    "tm.event = 'Tx'": "Tx",
}


class RpcFailure(Exception):
    """A JSON-RPC error answer (code, message, data as CometBFT writes them)."""

    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _hash(*parts: object) -> str:
    text = "/".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest().upper()


def _time(height: int) -> str:
    moment = datetime.datetime.fromtimestamp(_GENESIS_TIME + height, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


@dataclass
class _Subscriber:
    ws: web.WebSocketResponse
    queries: dict[str, Any] = field(default_factory=dict)  # query -> request id


class CometBftStandIn(StandIn):
    """The stand-in's chain and its aiohttp application."""

    def __init__(
        self,
        network: str = "rollchain_262144-1",
        *,
        start_height: int = 1,
        block_time: float = 1.0,
        catching_up: bool = False,
        rest: bool = True,
    ) -> None:
        self.network = network
        self.clock = BlockClock(start_height, block_time)
        self.catching_up = catching_up
        self.txs: dict[int, list[bytes]] = {}
        self.tx_index: dict[str, int] = {}
        self.mempool: list[bytes] = []
        self.requests: list[dict[str, Any]] = []  # what reached the node (method, headers)
        self._subscribers: list[_Subscriber] = []
        self.clock.on_block(self._on_block)
        self.app = self._build_app(rest)
        self.server = StandInServer(self.app, "CometBFT")

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return self.server.url.replace("http://", "ws://") + "/websocket"

    def _open_sockets(self) -> Iterable[web.WebSocketResponse]:
        return [c.ws for c in self._subscribers]

    def _build_app(self, rest: bool) -> web.Application:
        app = web.Application(client_max_size=1 << 20)  # CometBFT's 1 MB body limit
        app.router.add_post("/", self._post)
        app.router.add_get("/websocket", self._websocket)
        if rest:
            app.router.add_get("/cosmos/base/tendermint/v1beta1/blocks/{height}", self._rest_block)
            app.router.add_get("/cosmos/base/tendermint/v1beta1/node_info", self._rest_node_info)
            app.router.add_get("/cosmos/base/tendermint/v1beta1/syncing", self._rest_syncing)
            app.router.add_get("/cosmos/bank/v1beta1/balances/{address}", self._rest_balances)
            app.router.add_post("/cosmos/tx/v1beta1/txs", self._rest_broadcast)
        app.router.add_get("/{route}", self._uri)
        return app

    # -- transports ------------------------------------------------------------------------
    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = _error(None, -32700, "Parse error. Invalid JSON", "invalid character")
            return web.Response(status=500, body=body, content_type="application/json")
        if isinstance(data, list):
            if not data:
                body = _error(None, -32600, "Invalid Request", "empty batch")
                return web.Response(status=500, body=body, content_type="application/json")
            answers = []
            for item in data:
                self._note(request, str(item.get("method")) if isinstance(item, dict) else "")
                answers.append(await self._answer(item, websocket=False))
            return web.Response(
                body=b"[" + b",".join(answers) + b"]", content_type="application/json"
            )
        self._note(request, str(data.get("method")) if isinstance(data, dict) else "")
        return web.Response(
            body=await self._answer(data, websocket=False), content_type="application/json"
        )

    async def _uri(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        self._note(request, route)
        if route in _WS_ONLY or route in _UNSAFE or route not in routes():
            body = _error(-1, -32601, "Method not found", "")
            return web.Response(status=404, body=body, content_type="application/json")
        try:
            params = check_params(route, dict(request.query), uri=True)
            result = await self._call(route, params)
        except ParamError as exc:
            body = _error(-1, -32602, "Invalid params", str(exc))
            return web.Response(status=500, body=body, content_type="application/json")
        except RpcFailure as exc:
            body = _error(-1, exc.code, exc.message, exc.data)
            return web.Response(status=500, body=body, content_type="application/json")
        return web.Response(body=_result(-1, result), content_type="application/json")

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sub = _Subscriber(ws)
        self._subscribers.append(sub)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                    break
                try:
                    data = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    await ws.send_str(
                        _error(None, -32700, "Parse error. Invalid JSON", "").decode()
                    )
                    continue
                self._note(request, str(data.get("method")) if isinstance(data, dict) else "")
                if isinstance(data, dict) and data.get("method") in _WS_ONLY:
                    await ws.send_str(self._subscription(sub, data).decode())
                else:
                    await ws.send_str((await self._answer(data, websocket=True)).decode())
        finally:
            self._subscribers.remove(sub)
        return ws

    # -- JSON-RPC --------------------------------------------------------------------------
    async def _answer(self, data: Any, *, websocket: bool) -> bytes:
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return _error(None, -32600, "Invalid Request", "not a JSON-RPC request object")
        id_ = data.get("id")
        method = data["method"]
        if data.get("jsonrpc") != "2.0":
            return _error(id_, -32600, "Invalid Request", 'jsonrpc must be "2.0"')
        if method in _UNSAFE or method not in routes():
            return _error(id_, -32601, "Method not found", "")
        try:
            params = check_params(method, data.get("params"))
            return _result(id_, await self._call(method, params))
        except ParamError as exc:
            return _error(
                id_, -32602, "Invalid params", f"error converting json params to arguments: {exc}"
            )
        except RpcFailure as exc:
            return _error(id_, exc.code, exc.message, exc.data)

    def _subscription(self, sub: _Subscriber, data: dict[str, Any]) -> bytes:
        id_ = data.get("id")
        method = data["method"]
        params = data.get("params")
        query = None
        if isinstance(params, dict):
            query = params.get("query")
        elif isinstance(params, list) and params:
            query = params[0]
        if method == "unsubscribe_all":
            sub.queries.clear()
            return _result(id_, {})
        if not isinstance(query, str) or not query:
            return _error(id_, -32602, "Invalid params", "missing required parameter 'query'")
        if method == "subscribe":
            if query in sub.queries:
                return _error(id_, -32603, "Internal error", "already subscribed")
            sub.queries[query] = id_
            return _result(id_, {})
        if sub.queries.pop(query, None) is None:
            return _error(id_, -32603, "Internal error", "subscription not found")
        return _result(id_, {})

    async def _on_block(self, height: int) -> None:
        if self.mempool:  # the mempool goes into the new block
            self.txs[height] = list(self.mempool)
            for raw in self.mempool:
                self.tx_index[hashlib.sha256(raw).hexdigest().upper()] = height
            self.mempool.clear()
        block = self._block(height)
        txs = self.txs.get(height, [])
        for sub in list(self._subscribers):
            for query, id_ in list(sub.queries.items()):
                kind = _EVENTS.get(query)
                if kind == "NewBlock":
                    value: Any = {"block": block["block"], "block_id": block["block_id"]}
                elif kind == "NewBlockHeader":
                    value = {"header": block["block"]["header"]}
                elif kind == "Tx" and txs:
                    value = {
                        "TxResult": {"height": str(height), "tx": base64.b64encode(txs[0]).decode()}
                    }
                else:
                    continue
                event = {
                    "query": query,
                    "data": {"type": f"tendermint/event/{kind}", "value": value},
                    "events": {"tm.event": [kind]},
                }
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await sub.ws.send_str(_result(id_, event).decode())

    # -- routes ----------------------------------------------------------------------------
    def _height(self, params: Mapping[str, Any], name: str = "height") -> int:
        height = params.get(name) or 0
        if height < 0:
            raise RpcFailure(-32603, "Internal error", f"height {height} must be greater than 0")
        if height == 0:
            return self.clock.height
        if height > self.clock.height:
            raise RpcFailure(
                -32603,
                "Internal error",
                f"height {height} must be less than or equal to the current blockchain height "
                f"{self.clock.height}",
            )
        return int(height)

    def _block(self, height: int) -> dict[str, Any]:
        result = example_result("block")
        header = result["block"]["header"]
        header.update(
            chain_id=self.network,
            height=str(height),
            time=_time(height),
            app_hash=_hash(self.network, "app", height),
            data_hash=_hash(self.network, "data", height),
        )
        header["last_block_id"]["hash"] = _hash(self.network, "block", height - 1)
        result["block_id"]["hash"] = _hash(self.network, "block", height)
        result["block"]["data"] = [base64.b64encode(t).decode() for t in self.txs.get(height, [])]
        result["block"]["evidence"] = []
        result["block"]["last_commit"]["height"] = str(max(height - 1, 0))
        return dict(result)

    async def _call(self, route: str, params: dict[str, Any]) -> Any:
        head = self.clock.height
        if route == "health":
            return {}
        if route == "status":
            result = example_result("status")
            result["node_info"]["network"] = self.network
            result["node_info"]["moniker"] = "cometbft-standin"
            result["sync_info"].update(
                latest_block_hash=_hash(self.network, "block", head),
                latest_app_hash=_hash(self.network, "app", head),
                latest_block_height=str(head),
                latest_block_time=_time(head),
                earliest_block_hash=_hash(self.network, "block", 1),
                earliest_app_hash=_hash(self.network, "app", 1),
                earliest_block_height="1",
                earliest_block_time=_time(1),
                catching_up=self.catching_up,
            )
            return result
        if route in ("block", "block_by_hash"):
            if route == "block":
                return self._block(self._height(params))
            return self._block(self._by_hash(params["hash"]))
        if route in ("header", "header_by_hash"):
            height = self._height(params) if route == "header" else self._by_hash(params["hash"])
            return {"header": self._block(height)["block"]["header"]}
        if route == "commit":
            height = self._height(params)
            result = example_result("commit")
            header = result["signed_header"]["header"]
            header.update(chain_id=self.network, height=str(height), time=_time(height))
            result["signed_header"]["commit"]["height"] = str(height)
            result["signed_header"]["commit"]["block_id"]["hash"] = _hash(
                self.network, "block", height
            )
            return result
        if route == "block_results":
            height = self._height(params)
            result = example_result("block_results")
            result["height"] = str(height)
            return result
        if route in ("validators", "consensus_params"):
            height = self._height(params)
            result = example_result(route)
            result["block_height"] = str(height)
            return result
        if route == "blockchain":
            low = params.get("minHeight") or 1
            high = min(params.get("maxHeight") or head, head)
            metas = []
            for h in range(high, max(low, high - 19) - 1, -1):
                block = self._block(h)
                metas.append(
                    {
                        "block_id": block["block_id"],
                        "block_size": "1000",
                        "header": block["block"]["header"],
                        "num_txs": str(len(self.txs.get(h, []))),
                    }
                )
            return {"last_height": str(head), "block_metas": metas}
        if route == "genesis":
            result = example_result("genesis")
            result["genesis"]["chain_id"] = self.network
            return result
        if route == "abci_info":
            result = example_result("abci_info")
            result["response"]["last_block_height"] = str(head)
            result["response"]["last_block_app_hash"] = base64.b64encode(
                bytes.fromhex(_hash(self.network, "app", head))
            ).decode()
            return result
        if route == "abci_query":
            height = self._height(params)
            data = str(params["data"])
            result = example_result("abci_query")
            result["response"].update(
                height=str(height),
                key=base64.b64encode(data.encode()).decode(),
                value=base64.b64encode(f"{params['path']}@{height}".encode()).decode(),
                proof=None if not params.get("prove") else result["response"]["proof"],
            )
            return result
        if route in ("broadcast_tx_sync", "broadcast_tx_async", "broadcast_tx_commit"):
            return await self._broadcast(route, str(params["tx"]))
        if route == "tx":
            tx_hash = str(params["hash"]).removeprefix("0x").upper()
            found = self.tx_index.get(tx_hash)
            if found is None:
                raise RpcFailure(-32603, "Internal error", f"tx ({tx_hash}) not found")
            result = example_result("tx")
            result.update(hash=tx_hash, height=str(found))
            return result
        if route == "unconfirmed_txs" or route == "num_unconfirmed_txs":
            result = example_result(route)
            result.update(n_txs=str(len(self.mempool)), total=str(len(self.mempool)))
            if route == "unconfirmed_txs":
                result["txs"] = [base64.b64encode(t).decode() for t in self.mempool]
            return result
        return example_result(route)

    def _by_hash(self, value: str) -> int:
        wanted = value.removeprefix("0x").upper()
        for height in range(self.clock.height, 0, -1):
            if _hash(self.network, "block", height) == wanted:
                return height
        raise RpcFailure(-32603, "Internal error", f"block with hash {wanted} not found")

    async def _broadcast(self, route: str, tx: str) -> Any:
        raw = bytes.fromhex(tx[2:]) if tx.startswith("0x") else _b64_or_text(tx)
        tx_hash = hashlib.sha256(raw).hexdigest().upper()
        if tx_hash in self.tx_index or raw in self.mempool:
            raise RpcFailure(-32603, "Internal error", "tx already exists in cache")
        self.mempool.append(raw)
        included = self.clock.height + 1
        if route != "broadcast_tx_commit":
            return {"code": 0, "data": "", "log": "", "codespace": "", "hash": tx_hash}
        try:
            async with asyncio.timeout(10.0):  # CometBFT's timeout_broadcast_tx_commit
                await self.clock.wait_for(included)
        except TimeoutError as exc:
            raise RpcFailure(
                -32603, "Internal error", "timed out waiting for tx to be included in a block"
            ) from exc
        ok = {"code": 0, "data": "", "log": "", "codespace": "", "events": []}
        return {"check_tx": ok, "tx_result": ok, "hash": tx_hash, "height": str(included)}

    # -- Cosmos REST (subset) --------------------------------------------------------------
    def _rest_header(self, height: int) -> dict[str, Any]:
        header = self._block(height)["block"]["header"]
        return {"header": header, "data": {"txs": []}, "evidence": {"evidence": []}}

    async def _rest_block(self, request: web.Request) -> web.Response:
        self._note(request, "rest:blocks")
        which = request.match_info["height"]
        head = self.clock.height
        if which == "latest":
            height = head
        elif which.isdigit() and 0 < int(which) <= head:
            height = int(which)
        else:
            return _grpc(
                400,
                3,
                f"requested block height {which} is bigger than the chain length {head}",
            )
        block = self._rest_header(height)
        block_id = {
            "hash": base64.b64encode(bytes.fromhex(_hash(self.network, "block", height))).decode()
        }
        return web.json_response({"block_id": block_id, "block": block, "sdk_block": block})

    async def _rest_node_info(self, request: web.Request) -> web.Response:
        self._note(request, "rest:node_info")
        return web.json_response(
            {
                "default_node_info": {"network": self.network, "moniker": "cometbft-standin"},
                "application_version": {"name": "rollchain", "app_name": "rollchaind"},
            }
        )

    async def _rest_syncing(self, request: web.Request) -> web.Response:
        self._note(request, "rest:syncing")
        return web.json_response({"syncing": self.catching_up})

    async def _rest_balances(self, request: web.Request) -> web.Response:
        self._note(request, "rest:balances")
        address = request.match_info["address"]
        if not address.isalnum():
            return _grpc(400, 3, f"invalid address {address}")
        amount = int(hashlib.sha256(address.encode()).hexdigest()[:8], 16)
        return web.json_response(
            {
                "balances": [{"denom": "stake", "amount": str(amount)}],
                "pagination": {"next_key": None, "total": "1"},
            }
        )

    async def _rest_broadcast(self, request: web.Request) -> web.Response:
        self._note(request, "rest:broadcast")
        try:
            data = orjson.loads(await request.read())
            tx = str(data["tx_bytes"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _grpc(400, 3, 'invalid request body: want {"tx_bytes": …, "mode": …}')
        try:
            result = await self._broadcast("broadcast_tx_sync", tx)
        except RpcFailure as exc:
            return _grpc(400, 19, exc.data)
        return web.json_response(
            {"tx_response": {"txhash": result["hash"], "code": 0, "height": "0"}}
        )


def _b64_or_text(tx: str) -> bytes:
    try:
        return base64.b64decode(tx, validate=True)
    except ValueError:
        return tx.encode()


def _result(id_: Any, result: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "result": result})


def _error(id_: Any, code: int, message: str, data: str) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message, "data": data}}
    )


def _grpc(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "details": []}, status=status)


async def start_cometbft(
    network: str = "rollchain_262144-1",
    *,
    port: int = 0,
    start_height: int = 1,
    block_time: float = 1.0,
    catching_up: bool = False,
    rest: bool = True,
) -> CometBftStandIn:
    """Start a CometBFT stand-in on a loopback port (0 = a free one); ``await x.close()``."""
    standin = CometBftStandIn(
        network,
        start_height=start_height,
        block_time=block_time,
        catching_up=catching_up,
        rest=rest,
    )
    await standin.start(port)
    return standin


def main(argv: list[str] | None = None) -> None:
    """``python -m rollups.standins.cometbft --port N [--network NAME] [--block-time S]``."""
    parser = argparse.ArgumentParser(description="CometBFT RPC stand-in (not a CometBFT node)")
    parser.add_argument("--port", type=int, default=26657)
    parser.add_argument("--network", default="rollchain_262144-1")
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--start-height", type=int, default=1)
    parser.add_argument(
        "--no-rest", action="store_true", help="do not serve the Cosmos REST subset"
    )
    args = parser.parse_args(argv)

    def make() -> CometBftStandIn:
        return CometBftStandIn(
            args.network,
            start_height=args.start_height,
            block_time=args.block_time,
            rest=not args.no_rest,
        )

    run_standin(make, args.port)


if __name__ == "__main__":
    main()
