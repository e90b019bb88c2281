"""Shared gateway state behind one interface, with a memory and a Redis driver."""

from gateway.store.base import Store, StoreUnavailable
from gateway.store.fallback import FallbackStore
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore

__all__ = ["FallbackStore", "MemoryStore", "RedisStore", "Store", "StoreUnavailable"]
