"""One exchange with a gateway, split into what can be verified (DESIGN §4, headers).

An answer carries ``Relay-Supplier``, ``Relay-Request``, ``Relay-Receipt`` and
``Relay-Backend-Status``, each a list with one entry per answer object in body order
(batches included), entries separated by commas and ``-`` for an object answered from the
cache or by the gateway; a quorum read lists the legs of one group separated by spaces.
:func:`answer_objects` pairs every relayed leg with the request bytes it names and the
response bytes it answered.

A WebSocket relay stream is saved with ``frames`` instead of ``response``: the request is the
stream's first frame (the subscribe payload the supplier was sent), ``headers`` hold the
upgrade's ``Relay-Request`` (and ``Relay-Supplier``), and ``frames`` every binary frame the
relayer sent, base64, as it came: ``uint64(index) ‖ response_hash ‖ receipt_sig ‖ body``
(DESIGN §3.3). Each frame is a leg of its own, verified at its index with status 101. The
gateway does not pass these frames to its WebSocket clients (it rewrites each push to the
client's subscription id, so the bytes a client sees are not the signed ones): such a file
comes from whoever holds the relay stream — the gateway's side of it, or an app relaying
directly to a supplier.

Batch answers are the gateway's ``"[" + ",".join(element answers) + "]"``, each element the
backend's bytes untouched, so an element is exactly the text between two top-level delimiters
(:func:`array_segments`); a request element is relayed without the whitespace around it.

>>> array_segments(b'[{"a":[1,","]} ,\\n 2]')
[b'{"a":[1,","]} ', b'\\n 2']
>>> _legs("a b,-", "Relay-Supplier")
[['a', 'b'], None]
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.errors import ProtocolError
from protocol.relay import WS_STATUS, decode_ws_frame, encode_receipt
from verify.errors import ExchangeError

__all__ = [
    "AnswerObject",
    "Exchange",
    "Leg",
    "answer_objects",
    "array_segments",
]

_WS = " \t\r\n"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request body, the answer's body and its headers (names compared case-blind)."""

    request: bytes
    response: bytes
    headers: Mapping[str, str]
    frames: tuple[bytes, ...] = ()  # a WebSocket relay stream's frames (then no response)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lower:
                return value
        return None

    @classmethod
    def from_json(cls, doc: Any) -> Exchange:
        """``{"request": str, "response": str, "headers": {name: value}}`` — a saved exchange;
        a WebSocket relay stream has ``"frames": [base64 of each binary frame]`` instead of
        ``"response"``."""
        if not isinstance(doc, Mapping):
            raise ExchangeError(
                'an exchange is a JSON object with "request", "response", "headers"'
            )
        unknown = set(doc) - {"request", "response", "frames", "headers", "url", "http_status"}
        if unknown:
            raise ExchangeError(
                f"exchange: unknown field {sorted(unknown)[0]!r} — remove it or check its spelling"
            )
        frames = _frames(doc["frames"]) if "frames" in doc else ()
        if "frames" in doc and "response" in doc:
            raise ExchangeError(
                'exchange: "response" (an HTTP answer) or "frames" (a WebSocket stream), not both'
            )
        for name in ("request",) if frames else ("request", "response"):
            if not isinstance(doc.get(name), str):
                raise ExchangeError(f'exchange: "{name}" must be the body as a string')
        headers = doc.get("headers")
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ExchangeError('exchange: "headers" must map header names to strings')
        try:
            response = b"" if frames else doc["response"].encode()
            return cls(doc["request"].encode(), response, dict(headers), frames)
        except UnicodeEncodeError:
            raise ExchangeError(
                "exchange: a body holds a lone surrogate (\\ud800…) — not UTF-8 text"
            ) from None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"request": self.request.decode("utf-8", "surrogateescape")}
        if self.frames:
            doc["frames"] = [binascii.b2a_base64(f, newline=False).decode() for f in self.frames]
        else:
            doc["response"] = self.response.decode("utf-8", "surrogateescape")
        doc["headers"] = dict(self.headers)
        return doc


def _frames(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(f, str) for f in value):
        raise ExchangeError('exchange: "frames" must list each binary frame, base64')
    try:
        return tuple(binascii.a2b_base64(f.encode("ascii"), strict_mode=True) for f in value)
    except (binascii.Error, UnicodeEncodeError):
        raise ExchangeError('exchange: a frame of "frames" is not base64') from None


@dataclass(frozen=True, slots=True)
class Leg:
    """One relayed answer to verify: its headers' entries and the bytes they speak for."""

    position: int  # the answer object's place in the body (0 for a single answer)
    supplier: str | None  # Relay-Supplier's entry (None when the header is absent)
    relay_request: str
    relay_receipt: str
    backend_status: int | None  # None: the header is absent, recovered from the receipt
    requests: tuple[bytes, ...]  # candidate request payloads (the one with payload_hash wins)
    response: tuple[bytes, ...]  # candidate bytes of this answer object (exact, then trimmed)
    index: int = 0  # the receipt's index: 0 over HTTP, the frame's on a WebSocket stream
    stream: bool = False  # a WebSocket stream's frame (its relay needs max_index >= 1)


@dataclass(frozen=True, slots=True)
class AnswerObject:
    """One answer object of the body: its legs, or none when the gateway or cache answered."""

    position: int
    legs: tuple[Leg, ...]
    source: str  # "relay", "cache", "gateway", "disagreement" (legs from its data.answers)
    # or "frame" (one frame of a WebSocket stream; position is its index)


def array_segments(data: bytes) -> list[bytes]:
    """The text between the top-level delimiters of a JSON array (whitespace kept)."""
    text = data.decode("latin-1")  # one character per byte: offsets are byte offsets
    i = _skip(text, 0)
    if text[i : i + 1] != "[":
        raise ExchangeError("expected a JSON array")
    start = i + 1
    i = _skip(text, start)
    if text[i : i + 1] == "]":
        return []
    out: list[bytes] = []
    while True:
        try:
            _, end = _DECODER.raw_decode(text, i)
        except ValueError as exc:
            raise ExchangeError(f"not a JSON array: {exc}") from None
        j = _skip(text, end)
        if text[j : j + 1] not in (",", "]"):
            raise ExchangeError(f"not a JSON array: expected ',' or ']' at byte {j}")
        out.append(data[start:j])
        if text[j] == "]":
            return out
        start = j + 1
        i = _skip(text, start)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _legs(value: str | None, name: str) -> list[list[str] | None]:
    """A header's entries, each a list of legs (``None`` for ``-``)."""
    if value is None:
        return []
    out: list[list[str] | None] = []
    for entry in value.split(","):
        legs = entry.split()
        if not legs:
            raise ExchangeError(f"{name}: an empty entry — expected a value or '-' per answer")
        out.append(None if legs == ["-"] else legs)
    return out


def _status(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 100 <= int(text) <= 599:
        raise ExchangeError(f"Relay-Backend-Status: {text[:16]!r} is not a status in 100–599")
    return int(text)


def answer_objects(exchange: Exchange) -> list[AnswerObject]:
    """Every answer object of the exchange with its relayed legs (ExchangeError when the
    headers do not match the body's shape)."""
    if exchange.frames:
        return _stream_objects(exchange)
    requests_raw = _legs(exchange.header("Relay-Request"), "Relay-Request")
    if not requests_raw:
        if exchange.header("Relay-Cache") is not None:
            return [AnswerObject(0, (), "cache")]
        if _is_array(exchange.response):
            segments = array_segments(exchange.response)
            elements = tuple(r.strip(_WS.encode()) for r in array_segments(exchange.request))
            each = [_disagreement(i, seg, elements) for i, seg in enumerate(segments)]
            if any(o is not None for o in each):
                return [o or AnswerObject(i, (), "gateway") for i, o in enumerate(each)]
        else:
            single = _disagreement(0, exchange.response, (exchange.request,))
            if single is not None:
                return [single]
        raise ExchangeError("the answer carries no Relay-Request header: nothing to verify")
    receipts = _legs(exchange.header("Relay-Receipt"), "Relay-Receipt")
    suppliers = _legs(exchange.header("Relay-Supplier"), "Relay-Supplier")
    statuses = _legs(exchange.header("Relay-Backend-Status"), "Relay-Backend-Status")
    caches = (exchange.header("Relay-Cache") or "").split(",")
    count = len(requests_raw)
    for name, entries in (("Relay-Receipt", receipts), ("Relay-Supplier", suppliers)):
        if len(entries) != count:
            raise ExchangeError(f"{name} lists {len(entries)} entries, Relay-Request {count}")
    if statuses and len(statuses) != count:
        raise ExchangeError(
            f"Relay-Backend-Status lists {len(statuses)} entries, Relay-Request {count}"
        )

    if _is_array(exchange.response) and _is_array(exchange.request):
        responses = [(seg, seg.strip(_WS.encode())) for seg in array_segments(exchange.response)]
        request_elements = tuple(s.strip(_WS.encode()) for s in array_segments(exchange.request))
        if len(responses) != count:
            raise ExchangeError(
                f"the batch answer holds {len(responses)} objects but the headers list {count}"
            )
    else:
        if count != 1:
            raise ExchangeError(f"a single answer but the headers list {count} entries")
        responses = [(exchange.response, exchange.response)]
        request_elements = (exchange.request,)

    objects: list[AnswerObject] = []
    for i in range(count):
        reqs, recs = requests_raw[i], receipts[i]
        if reqs is None:
            source = "cache" if i < len(caches) and caches[i].strip() == "hit" else "gateway"
            signed = _disagreement(i, responses[i][0], request_elements)
            objects.append(signed or AnswerObject(i, (), source))
            continue
        if recs is None or len(recs) != len(reqs):
            raise ExchangeError(f"answer {i}: Relay-Receipt does not list one receipt per leg")
        sups = suppliers[i] if suppliers else None
        if sups is not None and len(sups) != len(reqs):
            raise ExchangeError(f"answer {i}: Relay-Supplier does not list one supplier per leg")
        stats = statuses[i] if statuses else None
        if statuses and (stats is None or len(stats) != len(reqs)):
            raise ExchangeError(f"answer {i}: Relay-Backend-Status does not list one per leg")
        exact, trimmed = responses[i]
        candidates = (exact,) if exact == trimmed else (exact, trimmed)
        legs = tuple(
            Leg(
                position=i,
                supplier=sups[k] if sups is not None else None,
                relay_request=reqs[k],
                relay_receipt=recs[k],
                backend_status=_status(stats[k]) if stats is not None else None,
                requests=request_elements,
                response=candidates,
            )
            for k in range(len(reqs))
        )
        objects.append(AnswerObject(i, legs, "relay"))
    return objects


def _stream_objects(exchange: Exchange) -> list[AnswerObject]:
    """One object per frame of a WebSocket relay stream, each at its index (status 101)."""
    relay_request = exchange.header("Relay-Request")
    if relay_request is None or len(relay_request.split()) != 1 or "," in relay_request:
        raise ExchangeError("a WebSocket stream needs its upgrade's one Relay-Request header")
    supplier = exchange.header("Relay-Supplier")
    objects: list[AnswerObject] = []
    seen: set[int] = set()
    for k, frame in enumerate(exchange.frames):
        try:
            index, rhash, rsig, body = decode_ws_frame(frame)
        except ProtocolError as exc:
            raise ExchangeError(f"frame {k}: {exc.message}") from None
        if index in seen:
            raise ExchangeError(f"frame {k}: index {index} repeated (a stream never repeats one)")
        seen.add(index)
        leg = Leg(
            position=index,
            supplier=supplier.strip() if supplier is not None else None,
            relay_request=relay_request.strip(),
            relay_receipt=encode_receipt(rhash, rsig),
            backend_status=WS_STATUS,
            requests=(exchange.request,),
            response=(body,),
            index=index,
            stream=True,
        )
        objects.append(AnswerObject(index, (leg,), "frame"))
    return objects


def _disagreement(position: int, body: bytes, requests: tuple[bytes, ...]) -> AnswerObject | None:
    """The signed answers of a quorum disagreement (DESIGN §4: error -32098 whose
    ``data.answers`` hold ``supplier, relay_request, relay_receipt, backend_status,
    body_base64``), each a leg to verify; None when ``body`` is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    err = doc.get("error", doc) if isinstance(doc, dict) else None
    if not isinstance(err, dict) or err.get("code") != -32098:
        return None
    answers = err.get("data", {}).get("answers") if isinstance(err.get("data"), dict) else None
    if not isinstance(answers, list) or not answers:
        raise ExchangeError(f"answer {position}: a disagreement (-32098) without data.answers")
    legs = []
    for k, a in enumerate(answers):
        fields = ("supplier", "relay_request", "relay_receipt", "body_base64")
        if not isinstance(a, dict) or not all(isinstance(a.get(f), str) for f in fields):
            raise ExchangeError(f"answer {position}: disagreement answer {k} lacks {fields}")
        status = a.get("backend_status")
        if type(status) is not int or not 100 <= status <= 599:
            raise ExchangeError(f"answer {position}: disagreement answer {k}: bad backend_status")
        try:
            answer_body = binascii.a2b_base64(a["body_base64"].encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ExchangeError(
                f"answer {position}: disagreement answer {k}: body_base64 is not base64"
            ) from None
        legs.append(
            Leg(
                position=position,
                supplier=a["supplier"],
                relay_request=a["relay_request"],
                relay_receipt=a["relay_receipt"],
                backend_status=status,
                requests=requests,
                response=(answer_body,),
            )
        )
    return AnswerObject(position, tuple(legs), "disagreement")


def _is_array(body: bytes) -> bool:
    return body.lstrip(_WS.encode())[:1] == b"["


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
