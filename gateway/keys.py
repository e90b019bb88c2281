"""API keys: which app pays for which service, with a rate limit and a quota.

A key is shown to its owner once (``relaynet gateway keys add``) and stored only as
``sha256(key)``. Look-ups hash the presented key and compare digests in constant time. Records
live in a JSON file (single machine) or in a Redis hash (replicas); a running gateway reloads
them every ``reload_interval`` seconds (file mtime / Redis version counter), so keys are added
and revoked without a restart.

Limits: a token bucket per key (``rate_limit`` requests per second, ``burst``), and a quota of
``quota`` requests per ``quota_period`` seconds; usage is counted per key and service.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.errors import BadRequest, ClientReason
from gateway.store.base import Store, StoreUnavailable

__all__ = [
    "ApiKey",
    "FileKeyBackend",
    "KeyBackend",
    "KeyRing",
    "Limiter",
    "RedisKeyBackend",
    "Usage",
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

    @property
    def key_id(self) -> str:
        """A short, non-secret name for logs and metrics (prefix of the hash)."""
        return self.key_hash[:12]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["services"] = dict(self.services)
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
        self._digests: dict[str, str] = {}  # presented key -> sha256 (saves hashing repeats)
        self._version: str | None = None

    async def refresh(self) -> bool:
        """Reload when the backend changed; True when it did."""
        version = await self.backend.version()
        if version == self._version:
            return False
        self._keys = await self.backend.load()
        self._version = version
        return True

    async def run(self) -> None:
        """Reload forever (a background task); a backend outage keeps the last known keys."""
        while True:
            try:
                await self.refresh()
            except (StoreUnavailable, OSError, ValueError):
                pass
            await asyncio.sleep(self._interval)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, presented: str | None) -> ApiKey:
        """The record of a presented key; ``BadRequest(UNAUTHORIZED)`` for unknown or revoked."""
        if not presented:
            raise BadRequest("missing API key", reason=ClientReason.UNAUTHORIZED)
        digest = self._digests.get(presented)
        if digest is None:
            digest = hash_key(presented)
            if len(self._digests) > 10_000:
                self._digests.clear()
            self._digests[presented] = digest
        record = self._keys.get(digest)
        # constant-time comparison of the digests (the dict look-up itself works on hashes)
        if record is None or not hmac.compare_digest(record.key_hash, digest) or record.revoked:
            raise BadRequest("invalid API key", reason=ClientReason.UNAUTHORIZED)
        return record

    def lookup_hash(self, key_hash: str) -> ApiKey:
        """The record of an already authenticated key (re-checked: it may have been revoked)."""
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


@dataclass(frozen=True, slots=True)
class Usage:
    key_id: str
    period_requests: int
    total_requests: int
    by_service: dict[str, int] = field(default_factory=dict)


class Limiter:
    """Rate limit, quota and usage counting of keys on the shared store."""

    def __init__(self, store: Store, *, clock: Any = time.time) -> None:
        self._store = store
        self._clock = clock

    def _period(self, record: ApiKey) -> int:
        return int(self._clock()) // max(1, record.quota_period)

    async def admit(self, record: ApiKey, service_id: str, requests: int = 1) -> None:
        """Count ``requests`` against the key's rate limit and quota; raise 429 when over."""
        if record.rate_limit > 0 and not await self._store.take(
            f"key:{record.key_hash}", record.rate_limit, max(record.burst, 1.0), float(requests)
        ):
            raise BadRequest("rate limit exceeded", reason=ClientReason.RATE_LIMITED)
        period = self._period(record)
        quota_counter = f"quota:{record.key_hash}:{period}"
        if record.quota > 0:
            used = await self._store.counter(quota_counter)
            if used + requests > record.quota:
                raise BadRequest("quota exceeded", reason=ClientReason.QUOTA_EXCEEDED)
        await self._store.incr(quota_counter, requests, ttl=float(record.quota_period) + 60)
        await self._store.incr(f"usage:{record.key_hash}:{service_id}", requests)
        await self._store.incr(f"usage:{record.key_hash}", requests)

    async def usage(self, record: ApiKey) -> Usage:
        by_service = {
            s: await self._store.counter(f"usage:{record.key_hash}:{s}") for s in record.services
        }
        return Usage(
            key_id=record.key_id,
            period_requests=await self._store.counter(
                f"quota:{record.key_hash}:{self._period(record)}"
            ),
            total_requests=await self._store.counter(f"usage:{record.key_hash}"),
            by_service=by_service,
        )


def revoked(record: ApiKey) -> ApiKey:
    return replace(record, revoked=True)
