"""The embedded store: memcached's few operations on a dict in this process.

Used when no memcached answers (``backend: auto``) or when asked for (``backend: memory``). It keeps
the same bytes under the same keys as memcached, written by the same code, with the same expiry
rule (relative seconds up to 30 days, an absolute Unix time above), on the injected clock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from tui.clock import Clock, SystemClock
from tui.store.base import Health, Store
from tui.store.layout import RELATIVE_EXPIRY_LIMIT

T = TypeVar("T")


class MemoryStore(Store):
    backend = "memory"
    where = "in the embedded store"

    def __init__(self, clock: Clock | None = None, reason: str = "", key_prefix: str = "eventdash:") -> None:
        super().__init__()
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        #: key -> (expires_at or 0 for never, value, cas token)
        self._items: dict[str, tuple[float, bytes, int]] = {}
        self._tokens = itertools.count(1)
        self.reason = reason
        self.prefix = key_prefix

    def _call(self, action: str, operation: Callable[[], T]) -> T:
        with self._lock:
            return operation()

    def now(self) -> float:
        return self._clock.time()

    def _live(self, key: str) -> tuple[float, bytes, int] | None:
        item = self._items.get(key)
        if item is not None and item[0] and item[0] <= self._clock.time():
            del self._items[key]
            return None
        return item

    def _store(self, key: str, data: bytes, expire: int) -> None:
        now = self._clock.time()
        expires = 0.0 if expire == 0 else (now + expire if expire <= RELATIVE_EXPIRY_LIMIT else float(expire))
        if expires and expires <= now:
            self._items.pop(key, None)
            return
        self._items[key] = (expires, bytes(data), next(self._tokens))

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        with self._lock:
            return {k: item[1] for k in keys if (item := self._live(k)) is not None}

    def gets_many(self, keys: list[str]) -> dict[str, tuple[bytes, Any]]:
        with self._lock:
            return {k: (item[1], item[2]) for k in keys if (item := self._live(k)) is not None}

    def add(self, key: str, data: bytes, expire: int) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._store(key, data, expire)
            return True

    def cas(self, key: str, data: bytes, token: Any, expire: int) -> bool:
        with self._lock:
            item = self._live(key)
            if item is None or item[2] != token:
                return False
            self._store(key, data, expire)
            return True

    def set(self, key: str, data: bytes, expire: int) -> None:
        with self._lock:
            self._store(key, data, expire)

    def delete(self, key: str) -> None:
        """Drop a key, as an eviction would (for tests)."""
        with self._lock:
            self._items.pop(key, None)

    def keys(self) -> list[str]:
        with self._lock:
            return [k for k in list(self._items) if self._live(k) is not None]

    def generation(self) -> str:
        return "memory"

    def health(self) -> Health:
        detail = f"embedded ({self.reason})" if self.reason else "embedded"
        return Health(self.backend, True, detail, corrupt=self._take_reports())
