"""Reading what a query needs, and no more: heads alone, a few ids' shards, or every shard.

* No tracking-id filter and no grouping by id: the heads' per-type totals answer it, whatever the
  number of ids.
* A few ids named exactly: each block's head and only the shard of each id, fetched in one multi-get
  (heads first in the request, so a shard a head lists was written before it was read), so the cost
  does not grow with the ids a site has. Only a missing top-level head needs a second round trip,
  for its children's heads (lost or never written?).
* A glob, or grouping by id: every shard the heads list (:meth:`Store.read`).

The first two decode each value through a small cache keyed by its bytes: an unchanged value (a
closed block's, the bulk of a 24 h query) decodes to the same thing, so it is decoded once. Holes are
reported as :meth:`Store.read` reports them (:mod:`tui.store.reads`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from tui import EVENT_TYPES
from tui.history.query import Query
from tui.store.base import Store
from tui.store.codec import Corrupt, Head, Shard, decode_head, decode_shard
from tui.store.layout import Layout, parent
from tui.store.reads import (
    RESTORED,
    BlocksRead,
    ancestors,
    block_gap,
    children,
    head_gaps,
)
from tui.window import Block, merge_into

#: The id under which a heads-only read files a type's total: such a read serves only queries that
#: neither filter nor group by tracking id, so it is never shown.
ALL_IDS = "*"
#: (type, id) pairs read shard by shard at most; more read every shard in one pass.
MAX_EXACT_PAIRS = 16
T = TypeVar("T")


class DecodedCache:
    """Decoded values by their exact bytes, least recently used dropped past ``limit`` bytes."""

    def __init__(self, limit: int = 8 << 20) -> None:
        self._items: OrderedDict[tuple[bytes, int], object] = OrderedDict()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, raw: bytes, kind: int, decode: Callable[[bytes], T]) -> T:
        """``decode(raw)``, remembered under ``(raw, kind)`` (``kind`` tells decoders apart); a value
        that raises (Corrupt) is not kept."""
        key = (raw, kind)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
        value = decode(raw)
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._size += len(raw)
                while self._size > self._limit:
                    (old, _), _ = self._items.popitem(last=False)
                    self._size -= len(old)
        return value


DECODED = DecodedCache()
SHARD_KIND = 0  # heads are kept under their span (1, 6, 60, 360)


def read_for(store: Store, layout: Layout, query: Query, blocks: Sequence[Block]) -> BlocksRead:
    """The counts of ``blocks`` that ``query`` can use (by type and tracking id), and the gaps."""
    if not blocks:
        return BlocksRead()
    if not query.tracking_ids and "tracking_id" not in query.group_by:
        found = read_pairs(store, layout, blocks, [])
        found.counts = {block: {t: {ALL_IDS: n} for t, n in totals.items()} for block, totals in found.totals.items()}
        return found
    pairs = [(t, i) for t in (query.types or EVENT_TYPES) for i in query.exact_ids]
    if query.globs or not pairs or len(pairs) > MAX_EXACT_PAIRS:
        return store.read(layout, blocks)
    return read_pairs(store, layout, blocks, pairs)


def read_pairs(store: Store, layout: Layout, blocks: Sequence[Block], pairs: Sequence[tuple[str, str]]) -> BlocksRead:
    """Heads of ``blocks`` (totals, holes) and the count of each (type, id) of ``pairs`` in each.
    Raises StoreUnavailable."""
    out = BlocksRead()
    wanted_heads = sorted({a for b in blocks for a in ancestors(b)} | set(blocks), key=lambda b: -b[0])
    head_keys = [layout.head_key(b) for b in wanted_heads]
    shard_of = {i: layout.shard(i) for _, i in pairs}
    shard_keys = {(b, t, i): layout.shard_key(b, t, shard_of[i]) for b in blocks for t, i in pairs}
    fetched = store.fetch("reading buckets", head_keys + list(dict.fromkeys(shard_keys.values())))
    heads: dict[Block, Head | None] = {}
    corrupt: set[Block] = set()

    def decode_heads(wanted: Sequence[Block], values: dict[str, bytes]) -> None:
        for block in wanted:
            key = layout.head_key(block)
            raw = values.get(key)
            heads[block] = None
            if raw is None:
                continue
            try:
                heads[block] = DECODED.get(raw, block[0], partial(decode_head, shards=layout.shards, span=block[0]))
            except Corrupt as exc:
                store.report(key, str(exc))
                corrupt.add(block)

    decode_heads(wanted_heads, fetched)
    tops = [b for b in blocks if heads[b] is None and b not in corrupt and parent(b) is None]
    if tops:
        below = sorted({c for b in tops for c in children(b)} - set(heads), key=lambda b: -b[0])
        decode_heads(below, store.fetch("reading buckets", [layout.head_key(b) for b in below]))
    for block in blocks:
        out.gaps.extend(head_gaps(layout, block, heads, corrupt))
        head = heads[block]
        if head is None:
            continue
        out.totals[block] = head.totals
        for etype, tid in pairs:
            key = shard_keys[(block, etype, tid)]
            if shard_of[tid] not in head.shards.get(etype, ()):
                continue  # the head does not list it: no events of that shard (a shard not yet listed is not read)
            raw = fetched.get(key)
            if raw is None:
                out.gaps.append(block_gap(block, f"lost: {key} is missing but the head lists it"))
                continue
            try:
                value: Shard = DECODED.get(raw, SHARD_KIND, decode_shard)
            except Corrupt as exc:
                store.report(key, str(exc))
                out.gaps.append(block_gap(block, f"corrupt value {key} ({exc})"))
                continue
            if value.restored:
                out.gaps.append(block_gap(block, RESTORED))
            if tid in value.counts:
                merge_into(out.counts.setdefault(block, {}), {etype: {tid: value.counts[tid]}})
    out.gaps = list(dict.fromkeys(out.gaps))
    return out
