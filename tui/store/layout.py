"""Where every count lives: key names, the tracking-id hash, retention per level and expiry times.

This module is the documented contract that lets a client in any language find a value
(README "How the counts live in Memcached"). ``P`` is the key prefix:

* ``Pmeta`` -- the prefix's settings (layout version, bucket length, shard count, retention per
  level, the published window); created once with ``add``, never expires.
* ``Ph<span>:<index>`` -- the *head* of block ``(span, index)``: per-type totals, which shards and
  which child blocks hold data, the writers' sequence numbers.
* ``Ps<span>:<index>:<type>:<shard>`` -- the counts of the tracking ids of ``shard`` in that block.
* ``Pd<span>:<index>:<series>:<shard>`` -- the HLL sketches of the distinct visitors of the ids of
  ``shard`` in that block, per type (``series`` = the type) and of the distinct signups (``signups``);
  ``…:t`` the series over all ids; ``…:<shard>/<id>`` one id's sketch when it does not fit
  (:mod:`tui.store.sketches`, format in :mod:`tui.distinct.value`).
* ``P<type>`` -- the published summary of a type (the brief's shape);
  ``P<type>:s<shard>`` -- the same for the ids of one shard, so one id's count is one ``get``.

``shard = zlib.crc32(tracking_id.encode("utf-8")) % shards`` (CRC-32 as in zlib, gzip and PNG).

A block ``(span, index)`` covers buckets ``span*index … span*index+span-1``; levels are spans
1, 6, 60 and 360 (10 s, 1 min, 10 min, 1 h with 10 s buckets). A key expires at its block's end
plus its level's retention (plus :data:`EXPIRY_GRACE_SECONDS`). memcached reads an expiry over 30 days (2,592,000 s) as an absolute
Unix time, so :meth:`Layout.expire` sends the relative seconds while they are at most 30 days and the
absolute time otherwise: retention of any length works and nothing expires at once.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from tui.distinct.sketch import DEFAULT_LG_K
from tui.settings import DEFAULT_RETENTION_SECONDS
from tui.window import LEVELS, Block

#: 3: distinct-visitors sketches beside the counts (``Pd…`` keys, :mod:`tui.store.sketches`).
LAYOUT_VERSION = 3
#: Chosen by measurement (README "Performance"): at 100,000 ids a shard of a 1 h block holds about
#: 1,600 ids (40 KB), far under the 512 KB goal, and a flush touches at most 64 keys per type and level.
DEFAULT_SHARDS = 64
MAX_SHARDS = 4096
MAX_VALUE_BYTES = 512 * 1024  # every value stays under this; a write that would not is refused
RELATIVE_EXPIRY_LIMIT = 2_592_000  # memcached: above this an expiry is an absolute Unix time
#: Seconds a block must still live for a reader to use it, so it cannot expire during the read.
EXPIRY_MARGIN_SECONDS = 5
#: Keys live this much past block end + retention, so a window exactly as long as a level's
#: retention (60 min with 1 h single buckets) still reads that level at its old edge.
EXPIRY_GRACE_SECONDS = 60
#: The shards of coarse blocks (6 buckets and up) are written once the block closed, a slice a
#: second (shard % COARSE_SLICES == the second % COARSE_SLICES), all of them COARSE_DEADLINE_SECONDS
#: after it closed; readers use one only COARSE_LAG_SECONDS after it closed, finer blocks before.
#: While a block is open each of its shards is written once every COARSE_OPEN_SECONDS (shard %
#: COARSE_OPEN_SECONDS == the second % COARSE_OPEN_SECONDS), so a writer that dies leaves at most
#: that much of an open block unwritten.
COARSE_SLICES = 10
COARSE_OPEN_SECONDS = 60
COARSE_DEADLINE_SECONDS = 2 + COARSE_SLICES
COARSE_LAG_SECONDS = COARSE_DEADLINE_SECONDS + 8  # and the writers flushed (once a second) since
#: Retention per level in seconds, by span: single buckets 1 h, 1-min and 10-min blocks 1 day, 1 h blocks 7 days.
DEFAULT_RETENTION: dict[int, int] = dict(zip(LEVELS, DEFAULT_RETENTION_SECONDS))


def memcached_expiry(seconds: int, now: float) -> int:
    """The expiry to send to memcached for a key that must live ``seconds`` from ``now``: relative
    while at most 30 days, else the absolute Unix time (see module doc). At least 1: 0 would mean
    "never expires"."""
    return max(1, seconds) if seconds <= RELATIVE_EXPIRY_LIMIT else int(now) + seconds


def shard_of(tracking_id: str, shards: int) -> int:
    """The documented hash: CRC-32 of the UTF-8 id, modulo the prefix's shard count."""
    return zlib.crc32(tracking_id.encode("utf-8")) % shards


@lru_cache(maxsize=4096)  # pure; reads walk the same blocks' ancestors on every refresh
def parent(block: Block) -> Block | None:
    """The block of the next coarser level that contains ``block`` (None at the top level)."""
    span, index = block
    level = LEVELS.index(span)
    if level + 1 == len(LEVELS):
        return None
    up = LEVELS[level + 1]
    return (up, span * index // up)


def child_offset(block: Block) -> int:
    """Which child of its parent ``block`` is (0-based), as listed in the parent's head."""
    span, index = block
    up = LEVELS[LEVELS.index(span) + 1]
    return (span * index % up) // span


@dataclass(frozen=True)
class Layout:
    """One prefix's layout, as agreed in its meta key."""

    prefix: str
    bucket_seconds: int
    shards: int = DEFAULT_SHARDS
    retention: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    #: ``lg_k`` of the prefix's sketches (the meta key's ``sketchLgK``).
    lg_k: int = DEFAULT_LG_K

    # -- keys -------------------------------------------------------------------------------------

    @property
    def meta_key(self) -> str:
        return f"{self.prefix}meta"

    def head_key(self, block: Block) -> str:
        return f"{self.prefix}h{block[0]}:{block[1]}"

    def shard_key(self, block: Block, etype: str, shard: int) -> str:
        return f"{self.prefix}s{block[0]}:{block[1]}:{etype}:{shard}"

    def summary_key(self, etype: str) -> str:
        return f"{self.prefix}{etype}"

    def shard_summary_key(self, etype: str, shard: int) -> str:
        return f"{self.prefix}{etype}:s{shard}"

    def shard(self, tracking_id: str) -> int:
        return shard_of(tracking_id, self.shards)

    # -- time -------------------------------------------------------------------------------------

    def block_end(self, block: Block) -> int:
        """Unix time (s) at which the block's last bucket ends."""
        span, index = block
        return (span * index + span) * self.bucket_seconds

    def expires_at(self, block: Block) -> int:
        return self.block_end(block) + self.retention[block[0]] + EXPIRY_GRACE_SECONDS

    def expire(self, block: Block, now: float) -> int:
        """The expiry to send to memcached for a key of ``block`` written at ``now``."""
        return memcached_expiry(self.expires_at(block) - int(now), now)

    def usable(self, now: float) -> Callable[[Block], bool]:
        """Whether a reader at ``now`` may use a block: it is still kept for a few seconds more, and
        a coarse one closed long enough ago that every writer has written all of it."""

        def usable(block: Block) -> bool:
            if self.expires_at(block) <= now + EXPIRY_MARGIN_SECONDS:
                return False
            return block[0] == 1 or self.block_end(block) + COARSE_LAG_SECONDS <= now

        return usable
