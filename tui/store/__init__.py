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
    #: Set when ``auto`` found no memcached: which servers, and why (for commands that need one).
    unreachable: str | None = None


def prefix_settings(settings: Settings) -> PrefixSettings:
    return PrefixSettings(settings.bucket_seconds, settings.retention, settings.window_minutes, settings.sketch_lg_k)


def open_store(settings: Settings, clock: Clock | None = None, chosen_by: str = "the settings") -> OpenedStore:
    """The store the settings ask for. ``auto`` probes memcached once and falls back to the
    embedded store; ``chosen_by`` names where the backend was chosen (a flag, a file), for the line.

    ``memcached`` never falls back: the writer keeps counting locally and retries until it answers.
    A reachable memcached whose prefix metadata conflicts with the settings raises
    :class:`PrefixConflict` (a SettingsError: exit 2, both values named).
    """
    servers = ",".join(str(s) for s in settings.memcached.servers)
    prefix = settings.memcached.key_prefix
    if settings.backend == "memory":
        return OpenedStore(MemoryStore(clock, key_prefix=prefix), f"embedded store (chosen by {chosen_by}): counts stay in this process")
    store = MemcachedStore(settings.memcached.servers, prefix)
    health = store.health()
    if health.ok:
        try:
            store.open_prefix(prefix_settings(settings))
        except PrefixConflict:
            store.close()
            raise
        except StoreUnavailable:
            pass  # it went away meanwhile: the writer agrees on the prefix when it answers
    if settings.backend == "memcached":
        return OpenedStore(store, f"memcached {servers} (chosen by {chosen_by})")
    if health.ok:
        return OpenedStore(store, f"memcached {servers} answered in {health.latency_ms:.1f} ms")
    store.close()
    return OpenedStore(
        MemoryStore(clock, f"no memcached at {health.detail.removeprefix('down: ')}", key_prefix=prefix),
        f"{health.unreachable()}: counting in the embedded store",
        unreachable=health.unreachable(),
    )
