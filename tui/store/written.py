"""What a writer stored last under each key, as a digest, so reading its own bytes back is cheap.

At 100,000 ids a shard value of a coarse block holds about 1,600 ids, and a flush reads (``gets``)
each value it merges into, and verification samples hundreds more. Checking every id and count of a
value (:mod:`tui.store.codec`) was the larger part of a flush. A value whose bytes are exactly the
bytes this writer stored is one it built and checked itself: its flush parses it without the checks,
and verification knows this writer's entry is in it. Any other bytes (another writer's merge, a
restored or stale copy, garbage) are decoded and checked in full, as before.

Only a 16-byte BLAKE2b digest is kept per key (not the value: at 100,000 ids the open blocks' values
are megabytes), at most :data:`MAX_KEYS` keys, the least recently written dropped first.
"""

from __future__ import annotations

import hashlib
import threading

#: Keys remembered: every key a writer rewrites within a few minutes, at 100,000 ids.
MAX_KEYS = 100_000


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class Written:
    """Digest of the bytes this writer last stored under each key."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._max = max_keys
        self._digests: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def mine(self, key: str, raw: bytes) -> bool:
        """Whether ``raw`` is exactly what this writer stored last under ``key``."""
        ours = self._digests.get(key)
        return ours is not None and ours == digest(raw)

    def stored(self, key: str, data: bytes) -> None:
        """This writer's ``add``/``cas`` of ``data`` under ``key`` succeeded."""
        with self._lock:
            self._digests.pop(key, None)
            self._digests[key] = digest(data)
            if len(self._digests) > self._max:
                for old in list(self._digests)[: len(self._digests) - self._max // 2]:
                    del self._digests[old]

    def __len__(self) -> int:
        return len(self._digests)
