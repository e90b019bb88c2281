"""Decoding the settlement contracts' event logs into plain, typed records.

:class:`EventDecoder` is built from the deployed contracts' ABIs (``ledger.artifacts``) and
their addresses; :meth:`EventDecoder.decode` turns one raw log (``eth_getLogs`` or a receipt)
into an :class:`Event` whose ``args`` hold Python values: addresses as 20 raw bytes, ``bytesN``
and ``Bytes[..]`` as bytes, integers as ``int``, strings as ``str``. Logs of other contracts or
of unknown events decode to None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import collapse_if_tuple, event_abi_to_log_topic

__all__ = ["Event", "EventDecoder"]


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded contract event, with its place in the chain."""

    contract: str  # "Suppliers", "Apps", … (Deployment.contracts key)
    name: str  # "PositionSet", …
    args: Mapping[str, Any]
    block_number: int
    log_index: int
    tx_hash: bytes


def _normalise(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return bytes.fromhex(str(value)[2:].lower())
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return tuple(_normalise(inner, v) for v in value)
    if isinstance(value, bytes):
        return bytes(value)
    return value


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


@dataclass(frozen=True, slots=True)
class _EventSpec:
    contract: str
    name: str
    indexed: tuple[tuple[str, str], ...]  # (name, type)
    data: tuple[tuple[str, str], ...]
    order: tuple[str, ...]


class EventDecoder:
    """Decodes the logs of a set of contracts (name -> (address, abi))."""

    def __init__(self, contracts: Mapping[str, tuple[bytes, Sequence[Mapping[str, Any]]]]) -> None:
        self._specs: dict[tuple[bytes, bytes], _EventSpec] = {}
        self._topics: dict[tuple[str, str], bytes] = {}
        self.addresses: tuple[bytes, ...] = tuple(addr for addr, _ in contracts.values())
        for contract, (address, abi) in contracts.items():
            for item in abi:
                if item.get("type") != "event":
                    continue
                topic = bytes(event_abi_to_log_topic(cast(Any, dict(item))))
                inputs = item.get("inputs", [])
                indexed = tuple(
                    (str(i["name"]), str(collapse_if_tuple(dict(i))))
                    for i in inputs
                    if i["indexed"]
                )
                data = tuple(
                    (str(i["name"]), str(collapse_if_tuple(dict(i))))
                    for i in inputs
                    if not i["indexed"]
                )
                spec = _EventSpec(
                    contract,
                    str(item["name"]),
                    indexed,
                    data,
                    tuple(str(i["name"]) for i in inputs),
                )
                self._specs[(address, topic)] = spec
                self._topics[(contract, str(item["name"]))] = topic

    def topic(self, contract: str, name: str) -> bytes:
        """The topic0 of ``contract``'s event ``name`` (KeyError when unknown)."""
        return self._topics[(contract, name)]

    def decode(self, log: Mapping[str, Any]) -> Event | None:
        """Decode one raw log; None for logs of other contracts or unknown events."""
        topics = [_as_bytes(t) for t in log.get("topics", ())]
        if not topics:
            return None
        address = _as_bytes(str(log["address"]).lower())
        spec = self._specs.get((address, topics[0]))
        if spec is None:
            return None
        args: dict[str, Any] = {}
        for (name, abi_type), topic in zip(spec.indexed, topics[1:], strict=False):
            (value,) = abi_decode([abi_type], topic)
            args[name] = _normalise(abi_type, value)
        if spec.data:
            values = abi_decode([t for _, t in spec.data], _as_bytes(log["data"]))
            for (name, abi_type), value in zip(spec.data, values, strict=True):
                args[name] = _normalise(abi_type, value)
        return Event(
            contract=spec.contract,
            name=spec.name,
            args={name: args[name] for name in spec.order if name in args},
            block_number=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash=_as_bytes(log["transactionHash"]),
        )

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[Event]:
        """Decode every known log, in chain order (block number, then log index)."""
        events = [e for e in (self.decode(log) for log in logs) if e is not None]
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return events
