"""API keys: which app pays for which service, with a rate limit and a quota.

A key is shown to its owner once (``relaynet gateway keys add``) and stored only as
``sha256(key)``. Look-ups hash the presented key and compare digests in constant time. Records
live in a JSON file (single machine) or in a Redis hash (replicas); a running gateway reloads
them every ``reload_interval`` seconds (file mtime / Redis version counter), so keys are added
and revoked without a restart.

Limits: a token bucket per key (``rate_limit`` requests per second, ``burst``), and a quota of
``quota`` requests per ``quota_period`` seconds; usage is counted per key and service
(:mod:`gateway.limiter`). A presented key is hashed on every look-up and never kept: nothing in
this module holds a plaintext key. (The fast front's route table, which keeps the paths it
serves, hashes a path's key once per path and looks the digest up: :meth:`KeyRing.lookup_hash`.)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.errors import BadRequest, ClientReason
from gateway.store.base import StoreUnavailable

__all__ = [
    "ApiKey",
    "FileKeyBackend",
    "KeyBackend",
    "KeyRing",
    "RedisKeyBackend",
    "generate_key",
    "hash_key",
]

KEY_PREFIX = "rn_"


def generate_key() -> str:
    """A new random API key (shown once, never stored)."""
    return KEY_PREFIX + secrets.token_hex(24)


def hash_key(key: str) -> str:
    """``sha256(key)`` in hex: how a key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key's record. ``services`` maps service id → paying app (0x address)."""

    key_hash: str
    name: str
    services: Mapping[str, str]
    rate_limit: float = 50.0  # requests per second (0 = unlimited)
    burst: float = 100.0
    quota: int = 0  # requests per quota_period (0 = unlimited)
    quota_period: int = 86_400
    created: float = 0.0
    revoked: bool = False
    quorum: int = 1  # default quorum of the key's reads (DESIGN §4), 1–5
    #: browser origins allowed by CORS (exact ``scheme://host[:port]``); empty: any (``*``)
    origins: tuple[str, ...] = ()

    @property
    def key_id(self) -> str:
        """A short, non-secret name for logs and metrics (prefix of the hash)."""
        return self.key_hash[:12]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["services"] = dict(self.services)
        data["origins"] = list(self.origins)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApiKey:
        return cls(
            key_hash=str(data["key_hash"]),
            name=str(data.get("name", "")),
            services={str(k): str(v) for k, v in dict(data.get("services", {})).items()},
            rate_limit=float(data.get("rate_limit", 50.0)),
            burst=float(data.get("burst", 100.0)),
            quota=int(data.get("quota", 0)),
            quota_period=int(data.get("quota_period", 86_400)),
            created=float(data.get("created", 0.0)),
            revoked=bool(data.get("revoked", False)),
            quorum=int(data.get("quorum", 1)),
            origins=tuple(str(o) for o in data.get("origins", ())),
        )


class KeyBackend(Protocol):
    """Where key records live."""

    async def version(self) -> str:
        """Changes whenever a record changes (cheap; polled)."""
        ...

    async def load(self) -> dict[str, ApiKey]: ...

    async def put(self, record: ApiKey) -> None: ...


class FileKeyBackend:
    """Key records in one JSON file ``{"keys": [...]}``, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def version(self) -> str:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return "absent"
        return f"{st.st_mtime_ns}:{st.st_size}"

    async def load(self) -> dict[str, ApiKey]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        data = json.loads(raw) if raw.strip() else {"keys": []}
        records = (ApiKey.from_json(d) for d in data.get("keys", []))
        return {r.key_hash: r for r in records}

    async def put(self, record: ApiKey) -> None:
        records = await self.load()
        records[record.key_hash] = record
        payload = {"keys": [r.to_json() for r in records.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


class RedisKeyBackend:
    """Key records in a Redis hash (field = key hash), with a version counter."""

    def __init__(self, client: aioredis.Redis, prefix: str = "relaynet:gw:") -> None:
        self._r = client
        self._hash = f"{prefix}keys"
        self._ver = f"{prefix}keys:version"

    async def version(self) -> str:
        try:
            v = await self._r.get(self._ver)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return "0" if v is None else (v.decode() if isinstance(v, bytes) else str(v))

    async def load(self) -> dict[str, ApiKey]:
        try:
            raw = await self._r.hgetall(self._hash)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        out: dict[str, ApiKey] = {}
        for k, v in raw.items():
            rec = ApiKey.from_json(json.loads(v))
            out[k.decode() if isinstance(k, bytes) else str(k)] = rec
        return out

    async def put(self, record: ApiKey) -> None:
        try:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hset(self._hash, record.key_hash, json.dumps(record.to_json()))
                pipe.incr(self._ver)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc


class KeyRing:
    """The keys a running gateway accepts, reloaded from its backend without restart."""

    def __init__(self, backend: KeyBackend, *, reload_interval: float = 2.0) -> None:
        self.backend = backend
        self._interval = reload_interval
        self._keys: dict[str, ApiKey] = {}
        self._version: str | None = None

    async def refresh(self) -> bool:
        """Reload when the backend changed; True when it did."""
        version = await self.backend.version()
        if version == self._version:
            return False
        self._keys = await self.backend.load()
        self._version = version
        return True

    @property
    def records(self) -> dict[str, ApiKey]:
        return dict(self._keys)

    @property
    def loaded(self) -> bool:
        """True once the backend itself was read (not only a snapshot adopted)."""
        return self._version is not None

    def adopt(self, records: Mapping[str, ApiKey]) -> None:
        """Serve ``records`` (a snapshot's) until the backend can be read: revoked records
        stay revoked; the next successful :meth:`refresh` replaces them."""
        if self._version is None:
            self._keys = dict(records)

    async def run(
        self, after: Callable[[Mapping[str, ApiKey]], Awaitable[None]] | None = None
    ) -> None:
        """Reload forever (a background task); a backend outage keeps the last known keys.
        ``after`` runs after every successful reload (the outage snapshot)."""
        while True:
            try:
                await self.refresh()
                if after is not None:
                    await after(self._keys)
            except (StoreUnavailable, OSError, ValueError):
                pass
            await asyncio.sleep(self._interval)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, presented: str | None) -> ApiKey:
        """The record of a presented key; ``BadRequest(UNAUTHORIZED)`` for unknown or revoked."""
        if not presented:
            raise BadRequest("missing API key", reason=ClientReason.UNAUTHORIZED)
        digest = hash_key(presented)  # no cache: a plaintext key is never kept
        record = self._keys.get(digest)
        # constant-time comparison of the digests (the dict look-up itself works on hashes)
        if record is None or not hmac.compare_digest(record.key_hash, digest) or record.revoked:
            raise BadRequest("invalid API key", reason=ClientReason.UNAUTHORIZED)
        return record

    def lookup_hash(self, key_hash: str) -> ApiKey:
        """The record whose digest is ``key_hash``: an already authenticated key re-checked (it
        may have been revoked), or a presented key hashed by the caller; 401 as :meth:`lookup`."""
        record = self._keys.get(key_hash)
        if record is None or record.revoked:
            raise BadRequest("invalid API key", reason=ClientReason.UNAUTHORIZED)
        return record

    @staticmethod
    def app_for(record: ApiKey, service_id: str) -> str:
        """The app that pays for ``service_id`` under this key."""
        app = record.services.get(service_id)
        if app is None:
            raise BadRequest(
                f"this key may not use service {service_id!r}",
                reason=ClientReason.SERVICE_NOT_ALLOWED,
            )
        return app


def revoked(record: ApiKey) -> ApiKey:
    return replace(record, revoked=True)
