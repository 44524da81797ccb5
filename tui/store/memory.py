"""The embedded store: the same data model as memcached, kept in this process.

Used when no memcached answers (``backend: auto``) or when asked for (``backend: memory``). Entries
expire after their TTL like memcached's, measured on the injected clock, so memory stays bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from tui.clock import Clock, SystemClock
from tui.store.base import Health, Store, bucket_total, is_fresher, with_writer
from tui.window import Block, BucketCounts


class MemoryStore(Store):
    backend = "memory"

    def __init__(self, clock: Clock | None = None, reason: str = "") -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        #: (bucket_seconds, block) -> (expires_at, value); type -> (expires_at, summary)
        self._buckets: dict[tuple[int, Block], tuple[float, dict[str, Any]]] = {}
        self._summaries: dict[str, tuple[float, dict[str, Any]]] = {}
        self.reason = reason

    def _expire(self, now: float) -> None:
        for table in (self._buckets, self._summaries):
            for key in [k for k, (expires, _) in table.items() if expires <= now]:
                del table[key]

    def write_buckets(self, writer: str, blocks: Mapping[Block, BucketCounts], bucket_seconds: int, ttl: int) -> None:
        now = self._clock.time()
        with self._lock:
            self._expire(now)
            for block, counts in blocks.items():
                old = self._buckets.get((bucket_seconds, block), (0.0, None))[1]
                self._buckets[(bucket_seconds, block)] = (now + ttl, with_writer(old, writer, counts))

    def read_buckets(self, blocks: Sequence[Block], bucket_seconds: int) -> dict[Block, BucketCounts]:
        now = self._clock.time()
        with self._lock:
            found = {b: self._buckets.get((bucket_seconds, b)) for b in blocks}
            return {i: bucket_total(entry[1]) for i, entry in found.items() if entry and entry[0] > now}

    def publish_summaries(self, summaries: Mapping[str, Mapping[str, Any]], ttl: int) -> None:
        now = self._clock.time()
        with self._lock:
            for etype, summary in summaries.items():
                old = self._summaries.get(etype)
                if is_fresher(summary, old[1] if old and old[0] > now else None):
                    self._summaries[etype] = (now + ttl, dict(summary))

    def read_summaries(self, types: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        now = self._clock.time()
        with self._lock:
            return {t: dict(e[1]) if (e := self._summaries.get(t)) and e[0] > now else None for t in types}

    def generation(self) -> str:
        return "memory"

    def health(self) -> Health:
        detail = f"embedded ({self.reason})" if self.reason else "embedded"
        return Health(self.backend, True, detail)
