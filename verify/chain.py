"""Reading the settlement chain with plain ``eth_call``s over HTTP (no web3, no ``ledger/``).

:class:`ChainReader` knows only the settlement contract's address; it asks it for the other
contracts (``SESSIONS()``, ``SERVICES()``, ``SUPPLIERS()``, ``APPS()``) and reads the view
functions the verification algorithm needs, each one ``eth_call`` at ``latest`` (the contracts
keep every history, so the latest state answers for any past session). Arguments and results
are static ABI words, encoded here by hand:

>>> _selector("signer_ok(address,address,uint256)").hex()
'436df790'
>>> _word(5).hex()[-4:]
'0005'
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from protocol.encoding import ADDRESS_SIZE
from protocol.keys import keccak256
from session.snapshot import SessionShape
from verify.errors import ChainError

__all__ = ["ChainReader", "ChainRevert", "JsonRpcTransport", "ServiceLimits", "UrllibTransport"]

_WORD: Final = 32
#: ``econ_params(n)`` returns the 16-word EconParams struct; max_stream_relays is the last.
_ECON_WORDS: Final = 16
_MAX_STREAM_RELAYS_WORD: Final = 15

#: ``(method, params) -> result`` of one JSON-RPC call; raises :class:`ChainError`.
JsonRpcTransport = Callable[[str, Sequence[Any]], Any]


class ChainRevert(ChainError):
    """An ``eth_call`` reverted (for example ``services: unknown service``)."""


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """A service's parameters in force at one session (``Services.service_params``)."""

    cu_per_relay: int
    max_cu_per_relay: int
    difficulty_bits: int


@lru_cache(maxsize=64)
def _selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def _word(value: int | bytes) -> bytes:
    if isinstance(value, int):
        return value.to_bytes(_WORD, "big")
    if len(value) == ADDRESS_SIZE:
        return bytes(12) + value
    if len(value) == _WORD:
        return value
    raise ValueError(f"cannot ABI-encode {len(value)} bytes as one word")


class UrllibTransport:
    """JSON-RPC over HTTP POST with the standard library; errors become :class:`ChainError`."""

    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ChainError(f"--rpc-url {url!r}: give an http:// or https:// URL")
        self.url = url
        self.timeout = timeout
        self._id = 0

    def __call__(self, method: str, params: Sequence[Any]) -> Any:
        self._id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        ).encode()
        req = urllib.request.Request(  # noqa: S310 - the operator's own RPC URL
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ChainError(f"{self.url} answered HTTP {exc.code} to {method}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ChainError(f"cannot reach the chain at {self.url}: {exc}") from exc
        except ValueError as exc:
            raise ChainError(f"{self.url} answered {method} with something not JSON") from exc
        if not isinstance(answer, dict):
            raise ChainError(f"{self.url} answered {method} with something not JSON-RPC")
        if "error" in answer:
            err = answer["error"] if isinstance(answer["error"], dict) else {}
            message = str(err.get("message", answer["error"]))
            if method == "eth_call" and "revert" in message.lower():
                raise ChainRevert(f"eth_call reverted: {message}")
            raise ChainError(f"{method} failed: {message}")
        return answer.get("result")


class ChainReader:
    """The views the verifier reads, cached for the life of one verification run."""

    def __init__(self, transport: JsonRpcTransport, settlement: bytes) -> None:
        if len(settlement) != ADDRESS_SIZE:
            raise ChainError("the settlement address is 20 bytes")
        self._rpc = transport
        self.settlement = bytes(settlement)
        self._cache: dict[tuple[bytes, str, tuple[int | bytes, ...]], bytes] = {}
        self._contracts: dict[str, bytes] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def call(self, to: bytes, signature: str, *args: int | bytes) -> bytes:
        """``eth_call`` of ``signature`` on ``to`` with static arguments; the raw result."""
        key = (to, signature, args)
        if key in self._cache:
            return self._cache[key]
        data = _selector(signature) + b"".join(_word(a) for a in args)
        result = self._rpc(
            "eth_call", [{"to": "0x" + to.hex(), "data": "0x" + data.hex()}, "latest"]
        )
        raw = _hex(result, f"eth_call {signature}")
        if len(raw) < _WORD:
            raise ChainError(
                f"{signature} on 0x{to.hex()} answered {len(raw)} bytes — is --deployment "
                "the deployment on this chain?"
            )
        self._cache[key] = raw
        return raw

    def _uint(self, to: bytes, signature: str, *args: int | bytes) -> int:
        return int.from_bytes(self.call(to, signature, *args)[:_WORD], "big")

    def _address(self, to: bytes, signature: str, *args: int | bytes) -> bytes:
        return self.call(to, signature, *args)[12:_WORD]

    def contract(self, name: str) -> bytes:
        """``SESSIONS``, ``SERVICES``, ``SUPPLIERS`` or ``APPS`` as the settlement names it."""
        if name not in self._contracts:
            self._contracts[name] = self._address(self.settlement, f"{name}()")
        return self._contracts[name]

    # -- the chain itself -------------------------------------------------------------------

    def head(self) -> int:
        return _quantity(self._rpc("eth_blockNumber", []), "eth_blockNumber")

    def chain_id(self) -> int:
        return _quantity(self._rpc("eth_chainId", []), "eth_chainId")

    def block_hash(self, height: int) -> bytes | None:
        block = self._rpc("eth_getBlockByNumber", [hex(height), False])
        if block is None:
            return None
        if not isinstance(block, dict):
            raise ChainError("eth_getBlockByNumber answered something that is not a block")
        return _hex(block.get("hash"), "block hash")

    # -- Sessions ---------------------------------------------------------------------------

    def shape(self) -> SessionShape:
        s = self.contract("SESSIONS")
        names = ("genesis_block", "L", "G", "CO", "CW", "PO", "PW", "S")
        v = [self._uint(s, f"{n}()") for n in names]
        return SessionShape(B0=v[0], L=v[1], G=v[2], CO=v[3], CW=v[4], PO=v[5], PW=v[6], S=v[7])

    def recorded_h_n(self, n: int) -> bytes:
        """``H_n`` as the contract recorded it (zero until a checkpoint stored it)."""
        return self.call(self.contract("SESSIONS"), "h_n(uint256)", n)[:_WORD]

    def recorded_chain_id(self, n: int) -> int:
        """The chain id recorded with ``H_n`` (0 until then)."""
        return self._uint(self.contract("SESSIONS"), "chain_id_of(uint256)", n)

    def max_stream_relays(self, n: int) -> int:
        raw = self.call(self.contract("SESSIONS"), "econ_params(uint256)", n)
        if len(raw) < _ECON_WORDS * _WORD:
            raise ChainError("econ_params answered a short struct")
        o = _MAX_STREAM_RELAYS_WORD * _WORD
        return int.from_bytes(raw[o : o + _WORD], "big")

    # -- Services, Suppliers, Apps ----------------------------------------------------------

    def service_limits(self, service: bytes, n: int) -> ServiceLimits:
        raw = self.call(self.contract("SERVICES"), "service_params(bytes32,uint256)", service, n)
        if len(raw) < 3 * _WORD:
            raise ChainError("service_params answered a short struct")
        w = [int.from_bytes(raw[i * _WORD : (i + 1) * _WORD], "big") for i in range(3)]
        return ServiceLimits(w[0], w[1], w[2])

    def length(self, service: bytes, n: int) -> int:
        return self._uint(self.contract("SUPPLIERS"), "length(bytes32,uint256)", service, n)

    def occupant(self, service: bytes, position: int, n: int) -> bytes:
        return self._address(
            self.contract("SUPPLIERS"), "occupant(bytes32,uint256,uint256)", service, position, n
        )

    def receipt_key(self, supplier: bytes, n: int) -> bytes:
        """``receipt_key(supplier, n)``; 32 zero bytes when the supplier never had one."""
        raw = self.call(self.contract("SUPPLIERS"), "receipt_key_at(address,uint256)", supplier, n)
        return raw[:_WORD]

    def signer_ok(self, app: bytes, signer: bytes, n: int) -> bool:
        return bool(
            self._uint(self.contract("APPS"), "signer_ok(address,address,uint256)", app, signer, n)
        )


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainError(f"{what}: expected 0x-hex from the chain, got {str(value)[:40]!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ChainError(f"{what}: not hex") from exc


def _quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainError(f"{what}: expected a 0x quantity, got {str(value)[:40]!r}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise ChainError(f"{what}: not a quantity") from exc
