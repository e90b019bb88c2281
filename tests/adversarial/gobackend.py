"""A stand-in backend that reads JSON the way Go's ``encoding/json`` does, and records what
reaches it.

Go backends (geth, op-geth, nitro, CometBFT, celestia-node) unmarshal a request into a struct:
a key matches a field case-insensitively (Unicode folding, so ``ſ`` matches ``s`` and the
Kelvin sign ``K`` matches ``k``), escapes in keys are decoded first, and when several keys
match one field the last one wins. This stand-in decodes each POST body that way and answers
by the method it *would run*; every request (method, raw path, body, the Go-decoded method) is
recorded so a test can assert what never reached it. GETs (REST-like calls) are recorded with
their raw path, exactly as received.
"""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["GoBackend", "Seen", "go_decode"]

_FIELDS = ("jsonrpc", "id", "method", "params")


def _fold(name: str) -> str:
    return name.casefold()  # ſ → s, K (Kelvin) → k, like Go's EqualFold


class _Pairs(list):  # type: ignore[type-arg]
    """An object's members in order, repeats kept."""


def _plain(value: Any) -> Any:
    """Nested values as Go decodes them into ``interface{}`` (a map: the last repeat wins)."""
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def go_decode(body: bytes, *, first_wins: bool = False) -> dict[str, Any] | None:
    """The request struct Go's encoding/json fills from ``body`` (None: not an object).
    ``first_wins``: as a decoder that keeps the first match instead (others exist)."""
    try:
        pairs = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    if not isinstance(pairs, _Pairs):
        return None
    out: dict[str, Any] = {}
    for key, value in pairs:  # in order: the last match wins
        for name in _FIELDS:
            if key == name or _fold(key) == _fold(name):
                if not (first_wins and name in out):
                    out[name] = _plain(value)
                break
    return out


@dataclass(frozen=True)
class Seen:
    http_method: str
    path: str  # raw request target as received (path and query)
    body: bytes
    go_method: str | None


def _answer(method: str | None, id_: Any) -> bytes:
    results = {
        "eth_chainId": "0x7a69",
        "net_version": "31337",
        "eth_blockNumber": "0x10",
        "eth_syncing": False,
    }
    result = results.get(method or "", "0x0")
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode()


def _rest_answer(path: str) -> bytes:
    if path.startswith("/cosmos/base/tendermint/v1beta1/blocks/latest"):
        header = {"chain_id": "rollchain_262144-1", "height": "16"}
        return json.dumps({"block": {"header": header}, "sdk_block": {"header": header}}).encode()
    if path.startswith("/cosmos/base/tendermint/v1beta1/syncing"):
        return b'{"syncing":false}'
    return b'{"balances":[],"pagination":{"next_key":null,"total":"0"}}'


class GoBackend:
    """The threaded stand-in; ``seen`` lists every request in arrival order."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.startswith("/cosmos"):
                    outer._add(Seen("POST", self.path, body, None))
                    self._reply(_rest_answer(self.path))
                    return
                doc = go_decode(body)
                method = doc.get("method") if doc else None
                outer._add(
                    Seen("POST", self.path, body, method if isinstance(method, str) else None)
                )
                self._reply(
                    _answer(method if isinstance(method, str) else None, (doc or {}).get("id"))
                )

            def do_GET(self) -> None:
                outer._add(Seen("GET", self.path, b"", None))
                self._reply(_rest_answer(self.path))

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _add(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> GoBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
