"""Reading blocks: heads first, then the shards they list, and every hole found on the way.

A read never returns a silently low number. Each part of the window that it could not read whole is
returned as a :class:`Gap` (buckets and why), and the view reports them as ``incomplete``:

* a head is missing while the nearest ancestor head still there lists it (or its missing ancestor)
  as holding data, or, at the top level, while one of its children's heads is there (lost: evicted);
* a head lists a shard that is missing;
* a value does not decode (corrupt; reported once, named by key);
* a value is marked restored: a writer wrote back its own counts after a loss, others' may be missing;
* a type's shards sum to less than the head's total for it: some writer's deltas are not written
  (a coarse block's slice still pending, or a writer that died before writing it).

Only a block whose head, every ancestor's head and every child's head are gone cannot be told from a
block without traffic by a reader alone; the writers' verification restores (and marks) such blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import TypeVar

from tui.store.codec import Corrupt, Head, decode_head, decode_shard
from tui.store.decode_cache import DecodeCache
from tui.store.layout import Layout, child_offset, parent
from tui.window import LEVELS, Block, BucketCounts, Gap, merge_into

T = TypeVar("T")


def block_gap(block: Block, why: str) -> Gap:
    span, index = block
    return Gap(span * index, span * index + span - 1, why)


@lru_cache(maxsize=4096)  # pure, and a window's plan repeats them on every refresh
def ancestors(block: Block) -> tuple[Block, ...]:
    out = []
    up = parent(block)
    while up is not None:
        out.append(up)
        up = parent(up)
    return tuple(out)


@lru_cache(maxsize=4096)
def children(block: Block) -> tuple[Block, ...]:
    span, index = block
    finer = LEVELS[LEVELS.index(span) - 1] if span != LEVELS[0] else None
    return () if finer is None else tuple((finer, index * span // finer + j) for j in range(span // finer))


def lost_head(block: Block, heads: Mapping[Block, Head | None]) -> str | None:
    """Why the missing head of ``block`` held data, if some head still there says so."""
    child, up = block, parent(block)
    while up is not None:
        above = heads.get(up)
        if above is not None:
            return f"{up[0]}-block {up[1]} lists it" if child_offset(child) in above.children else None
        child, up = up, parent(up)
    if any(heads.get(c) is not None for c in children(block)):
        return "its child blocks hold data"
    return None


@dataclass
class BlocksRead:
    """What a read found: counts by id (if asked), per-type totals from the heads, and the holes."""

    counts: dict[Block, BucketCounts] = field(default_factory=dict)
    totals: dict[Block, dict[str, int]] = field(default_factory=dict)
    #: Per block, the shards its head lists per type: which values were written (the evidence a
    #: distinct read judges a missing sketch value by, without reading the counts).
    shards: dict[Block, dict[str, list[int]]] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    #: The values found of the ``also`` keys of :func:`read_blocks` (None: none were asked for).
    also: dict[str, bytes] | None = None


def read_blocks(
    get_many: Callable[[list[str]], Mapping[str, bytes]],
    layout: Layout,
    blocks: Sequence[Block],
    report: Callable[[str, str], None],
    ids: bool = True,
    only: tuple[str | tuple[str, ...], str] | None = None,
    cache: DecodeCache | None = None,
    also: Sequence[str] = (),
) -> BlocksRead:
    """Read ``blocks``: heads (and their parents' heads, to tell lost from empty), then, if ``ids``,
    the shards the heads list (only the shard of ``only = (type, tracking_id)`` when given; ``type``
    may be a tuple of types, whose shard keys of that id are then read in the same round trip).

    With ``only`` the read is one round trip: that id's shard key of every block is known from the
    plan, so it is read together with the heads (after them) and with the children of top-level
    blocks (which tell a lost top-level head from an empty one) whose head ``cache`` does not hold:
    a head decoded before is there but for a loss, and then its children are read in a second
    round trip (a 24 h window's ~140 children were a third of its keys). A shard a head lists but that this
    found missing may have been written in between (and a cluster reads each server in turn), so it
    is read once more, and only then called lost. ``cache`` keeps decoded values by their bytes.

    ``also``: more keys read in that same round trip, after every key of the counts (so on one
    server after them: memcached answers a multi-get's keys in order), their values left in
    ``out.also`` undecoded; the children of top-level blocks are read in it as for ``only``. A
    one-id distinct read gets its sketch values this way, with the heads that are their evidence
    (:func:`tui.store.sketch_reads.read_distinct`)."""
    out = BlocksRead()
    heads: dict[Block, Head | None] = {}
    corrupt: set[Block] = set()
    prefetched: dict[str, bytes] = {}

    def decode(key: Hashable, raw: bytes, decoder: Callable[[bytes], T]) -> T:
        return cache.decode(key, raw, decoder) if cache is not None else decoder(raw)

    def seen(block: Block) -> bool:
        """Whether this reader decoded the block's head before (so it very likely is still there)."""
        return cache is not None and (layout.head_key(block), layout.shards) in cache

    def fetch(wanted: set[Block], more: Sequence[str] = ()) -> None:
        # Coarser first: a writer writes a child's head before its parent's, so a child this read
        # finds missing although its parent (read earlier) lists it was truly lost.
        ordered = sorted((b for b in wanted if b not in heads), key=lambda b: -b[0])
        keys = {layout.head_key(b): b for b in ordered}
        if not keys and not more:
            return
        fetched = get_many([*keys, *more])
        prefetched.update((k, fetched[k]) for k in more if k in fetched)
        for key, block in keys.items():
            raw = fetched.get(key)
            heads[block] = None
            if raw is None:
                continue
            try:
                heads[block] = decode((key, layout.shards), raw, partial(decode_head, shards=layout.shards, span=block[0]))
            except Corrupt as exc:
                report(key, str(exc))
                corrupt.add(block)

    first = {a for b in blocks for a in ancestors(b)} | set(blocks)
    one_shard: list[str] = []
    only_types = () if only is None else (only[0],) if isinstance(only[0], str) else only[0]
    if also or (only is not None and ids):  # a read of one round trip
        first |= {c for b in blocks if parent(b) is None and not seen(b) for c in children(b)}
    if only is not None and ids:
        one_shard = [layout.shard_key(b, etype, layout.shard(only[1])) for b in blocks for etype in only_types]
    fetch(first, [*one_shard, *also])
    if also:
        out.also = {k: prefetched[k] for k in also if k in prefetched}
    missing = [b for b in blocks if heads[b] is None and b not in corrupt]
    tops = [b for b in missing if parent(b) is None]
    if tops:
        fetch({c for b in tops for c in children(b)})
    wanted: dict[str, tuple[Block, str]] = {}
    only_shard = layout.shard(only[1]) if only is not None else 0
    for block in blocks:
        head = heads.get(block)
        if block in corrupt:
            out.gaps.append(block_gap(block, f"corrupt value {layout.head_key(block)}"))
            continue
        if head is None:
            why = lost_head(block, heads)
            if why:
                out.gaps.append(block_gap(block, f"lost: {layout.head_key(block)} is missing but {why}"))
            continue
        if head.restored:
            out.gaps.append(block_gap(block, "restored after a loss; other writers' counts may be missing"))
        out.totals[block] = head.totals
        out.shards[block] = head.shards
        if not ids:
            continue
        for etype, shards in head.shards.items():
            if only is not None:
                shards = [only_shard] if etype in only_types and only_shard in shards else []
            for k in shards:
                wanted[layout.shard_key(block, etype, k)] = (block, etype)
    values: Mapping[str, bytes] = {}
    if only is None:
        values = get_many(list(wanted)) if wanted else {}
    elif wanted:
        values = {k: prefetched[k] for k in wanted if k in prefetched}
        if len(values) < len(wanted):
            values = {**values, **get_many([k for k in wanted if k not in values])}
    sums: dict[tuple[Block, str], int] = {}
    for key, (block, etype) in wanted.items():
        raw = values.get(key)
        if raw is None:
            out.gaps.append(block_gap(block, f"lost: {key} is missing but the head lists it"))
            continue
        try:
            value = decode(key, raw, decode_shard)
        except Corrupt as exc:
            report(key, str(exc))
            out.gaps.append(block_gap(block, f"corrupt value {key} ({exc})"))
            continue
        if value.restored:
            out.gaps.append(block_gap(block, "restored after a loss; other writers' counts may be missing"))
        counts = value.counts if only is None else {t: value.counts[t] for t in (only[1],) if t in value.counts}
        into = out.counts.setdefault(block, {}).setdefault(etype, {})
        if into.keys().isdisjoint(counts):
            into.update(counts)  # the shards of a block hold different ids: a copy, at C speed
        else:
            merge_into(out.counts[block], {etype: counts})
        if only is None:  # an ``only`` read has one id of each shard: no sum to check
            sums[(block, etype)] = sums.get((block, etype), 0) + sum(value.counts.values())
    if only is None and ids:
        # Every type a head counts, also one whose shards none are written yet (a writer that died
        # before writing any of them): what the shards hold must add up to the head's total.
        gapped = {(g.first, g.last) for g in out.gaps}
        for block, totals in out.totals.items():
            gap = block_gap(block, "")
            for etype, expected in totals.items():
                total = sums.get((block, etype), 0)
                if total < expected and (gap.first, gap.last) not in gapped:
                    out.gaps.append(block_gap(block, f"not fully written: {etype} has {total:,} of the {expected:,} events its head counts"))
    return out


#: Why a block restored by a writer after a loss is incomplete.
RESTORED = "restored after a loss; other writers' counts may be missing"


def head_gaps(layout: Layout, block: Block, heads: Mapping[Block, Head | None], corrupt: set[Block]) -> list[Gap]:
    """The holes a block's head shows: corrupt, lost (a head still there says it held data) or
    restored. (The rules of :func:`read_blocks`, for readers that fetch keys their own way.)"""
    if block in corrupt:
        return [block_gap(block, f"corrupt value {layout.head_key(block)}")]
    head = heads.get(block)
    if head is None:
        why = lost_head(block, heads)
        return [block_gap(block, f"lost: {layout.head_key(block)} is missing but {why}")] if why else []
    return [block_gap(block, RESTORED)] if head.restored else []
