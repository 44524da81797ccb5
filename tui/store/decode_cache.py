"""Decoded values kept by their exact bytes, so a reader validates each stored value once.

Most of a window's blocks are closed: every refresh reads the same bytes under their keys again, and
decoding (JSON plus the strict checks of :mod:`tui.store.codec`) was most of a recompute's time.
Decoding is a pure function of the bytes, so a value whose bytes equal those decoded before is
that same value: the cache compares the whole bytes (not a hash), never trusts a key alone, and so
cannot change what a read returns. Corrupt values are not kept (they are reported and decoded anew).

Bounded: at most :data:`MAX_ENTRIES` values, the oldest dropped first. Readers must not mutate what
it returns (reads copy counts out with ``merge_into``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R", bytes, tuple[bytes, ...])

#: A 24 h window at 100,000 ids reads about 5,000 values; a few windows' worth fit.
MAX_ENTRIES = 20_000


class DecodeCache:
    """``key -> (bytes, decoded)`` for the values read last; safe to share between threads. A key
    names the value and everything else its decoder depends on (e.g. the prefix's shard count)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[Hashable, tuple[object, object]] = OrderedDict()
        self._lock = threading.Lock()

    def decode(self, key: Hashable, raw: R, decoder: Callable[[R], T]) -> T:
        """``decoder(raw)``, or the value decoded earlier from the same bytes under ``key``.
        ``raw`` is bytes, or a tuple of bytes (compared whole, each in its place). Raises what
        ``decoder`` raises (a corrupt value is never kept)."""
        hit = self._entries.get(key)
        if hit is not None and hit[0] == raw:
            return hit[1]  # type: ignore[return-value]  # stored by this same decoder for this key
        value = decoder(raw)
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (raw, value)
            while len(self._entries) > self._max:
                # One at a time: dropping half at once freed thousands of sketches in one read
                # (a spike of over a millisecond every ~20 one-id reads at 1,000 ids).
                self._entries.popitem(last=False)
        return value

    def __contains__(self, key: Hashable) -> bool:
        """Whether a value is kept under ``key`` (whatever its bytes: a hint, never a value)."""
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
