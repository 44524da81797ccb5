"""The one small storage interface that the engine talks to, with memory and memcached behind it.

The data model is the same in both:

* one value per bucket, and per block of 6, 60 and 360 buckets (see ``tui.window.LEVELS``),
  ``{"w": {writer_id: {type: {tracking_id: count}}}}``: each writer owns its entry and sets it to
  its *absolute* counts, so repeated or retried writes are harmless and a reader sums the entries;
* one summary value per event type in the brief's shape, replaced only by a fresher one;
* a generation marker that changes when the store lost its data (a restart), so that each writer
  writes back what it still holds, exactly once.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tui.window import Block, BucketCounts, merge_into


class StoreUnavailable(Exception):
    """The store cannot be reached or answered wrongly; the message says which server and why."""


@dataclass(frozen=True)
class Health:
    """What the header and the stderr line say about the store."""

    backend: str  # "memory" or "memcached"
    ok: bool
    detail: str  # e.g. "127.0.0.1:11211 · 0.3 ms" or the error
    latency_ms: float | None = None
    evictions: int | None = None
    #: The servers that did not answer, with why: ``(("127.0.0.1:11211", "Connection refused"),)``.
    down: tuple[tuple[str, str], ...] = ()

    def unreachable(self) -> str:
        """``memcached 127.0.0.1:11211 unreachable (Connection refused)``: what a person reads."""
        return "; ".join(f"memcached {address} unreachable ({why})" for address, why in self.down)


def encode(value: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the format every value is stored in."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes | None) -> dict[str, Any] | None:
    """Parse a stored value; a value that is not ours (or corrupt) reads as absent."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def with_writer(old: Mapping[str, Any] | None, writer: str, counts: BucketCounts) -> dict[str, Any]:
    """A bucket value with ``writer``'s entry set to ``counts``, other writers' entries kept."""
    writers = dict(old.get("w", {})) if old else {}
    writers[writer] = counts
    return {"w": writers}


def bucket_total(value: Mapping[str, Any] | None) -> BucketCounts:
    """The counts of one bucket value, summed over its writers."""
    total: BucketCounts = {}
    if value:
        for counts in value.get("w", {}).values():
            if isinstance(counts, dict):
                merge_into(total, counts)
    return total


def is_fresher(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """A summary replaces another only if it was computed later (``asOfMs``)."""
    return old is None or int(new.get("asOfMs", 0)) > int(old.get("asOfMs", 0))


class Store(ABC):
    """Where the buckets and summaries live. Methods are safe to call from several threads."""

    backend: str

    @abstractmethod
    def write_buckets(self, writer: str, blocks: Mapping[Block, BucketCounts], bucket_seconds: int, ttl: int) -> None:
        """Set ``writer``'s absolute counts for these blocks. Raises :class:`StoreUnavailable`."""

    @abstractmethod
    def read_buckets(self, blocks: Sequence[Block], bucket_seconds: int) -> dict[Block, BucketCounts]:
        """Counts of these blocks summed over all writers; missing blocks are left out."""

    @abstractmethod
    def publish_summaries(self, summaries: Mapping[str, Mapping[str, Any]], ttl: int) -> None:
        """Store each type's summary under its own key, unless a fresher one is already there."""

    @abstractmethod
    def read_summaries(self, types: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """The published summary of each type, or None."""

    @abstractmethod
    def generation(self) -> str:
        """A token that changes whenever the store has lost its data (e.g. restarted)."""

    @abstractmethod
    def health(self) -> Health:
        """Probe the store: reachable or not, and how fast."""

    def close(self) -> None:
        """Release connections."""
