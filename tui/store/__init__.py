"""Stores: :class:`MemoryStore` (embedded) and :class:`MemcachedStore`, behind :class:`Store`."""

from __future__ import annotations

from dataclasses import dataclass

from tui.clock import Clock
from tui.settings import Settings
from tui.store.base import (
    Health,
    PrefixConflict,
    PrefixSettings,
    Store,
    StoreUnavailable,
)
from tui.store.memcached import MemcachedStore
from tui.store.memory import MemoryStore

__all__ = [
    "Health", "MemcachedStore", "MemoryStore", "OpenedStore", "PrefixConflict", "Store", "StoreUnavailable", "open_store",
    "prefix_settings",
]


@dataclass(frozen=True)
class OpenedStore:
    store: Store
    #: One line for stderr: which backend is in use and why.
    reason: str


def prefix_settings(settings: Settings) -> PrefixSettings:
    return PrefixSettings(settings.bucket_seconds, settings.retention, settings.window_minutes)


def open_store(settings: Settings, clock: Clock | None = None) -> OpenedStore:
    """The store the settings ask for. ``auto`` probes memcached once and falls back to memory.

    ``memcached`` never falls back: the engine keeps counting locally and retries until it answers.
    A reachable memcached whose prefix metadata conflicts with the settings raises
    :class:`PrefixConflict` (a SettingsError: exit 2, both values named).
    """
    servers = ",".join(str(s) for s in settings.memcached.servers)
    prefix = settings.memcached.key_prefix
    if settings.backend == "memory":
        return OpenedStore(MemoryStore(clock, key_prefix=prefix), "backend memory: chosen in the settings; counts stay in this process")
    store = MemcachedStore(settings.memcached.servers, prefix)
    health = store.health()
    if health.ok:
        try:
            store.open_prefix(prefix_settings(settings))
        except PrefixConflict:
            store.close()
            raise
        except StoreUnavailable:
            pass  # it went away meanwhile: the engine agrees on the prefix when it answers
    if settings.backend == "memcached":
        return OpenedStore(store, f"backend memcached: {servers} (chosen in the settings)")
    if health.ok:
        return OpenedStore(store, f"backend memcached: {servers} answered in {health.latency_ms:.1f} ms")
    store.close()
    reason = f"no memcached at {health.detail.removeprefix('down: ')}"
    return OpenedStore(
        MemoryStore(clock, reason, key_prefix=prefix),
        f"backend memory: {health.detail}; counts stay in this process (backend auto)",
    )
