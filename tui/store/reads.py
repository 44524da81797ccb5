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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tui.store.codec import Corrupt, Head, decode_head, decode_shard
from tui.store.layout import Layout, child_offset, parent
from tui.window import LEVELS, Block, BucketCounts, Gap, merge_into


def block_gap(block: Block, why: str) -> Gap:
    span, index = block
    return Gap(span * index, span * index + span - 1, why)


def ancestors(block: Block) -> list[Block]:
    out = []
    up = parent(block)
    while up is not None:
        out.append(up)
        up = parent(up)
    return out


def children(block: Block) -> list[Block]:
    span, index = block
    finer = LEVELS[LEVELS.index(span) - 1] if span != LEVELS[0] else None
    return [] if finer is None else [(finer, index * span // finer + j) for j in range(span // finer)]


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
    gaps: list[Gap] = field(default_factory=list)


def read_blocks(
    get_many: Callable[[list[str]], Mapping[str, bytes]],
    layout: Layout,
    blocks: Sequence[Block],
    report: Callable[[str, str], None],
    ids: bool = True,
    only: tuple[str, str] | None = None,
) -> BlocksRead:
    """Read ``blocks``: heads (and their parents' heads, to tell lost from empty), then, if ``ids``,
    the shards the heads list (only the shard of ``only = (type, tracking_id)`` when given)."""
    out = BlocksRead()
    heads: dict[Block, Head | None] = {}
    corrupt: set[Block] = set()

    def fetch(wanted: set[Block]) -> None:
        # Coarser first: a writer writes a child's head before its parent's, so a child this read
        # finds missing although its parent (read earlier) lists it was truly lost.
        ordered = sorted((b for b in wanted if b not in heads), key=lambda b: -b[0])
        keys = {layout.head_key(b): b for b in ordered}
        fetched = get_many(list(keys))
        for key, block in keys.items():
            raw = fetched.get(key)
            heads[block] = None
            if raw is None:
                continue
            try:
                heads[block] = decode_head(raw, layout.shards, block[0])
            except Corrupt as exc:
                report(key, str(exc))
                corrupt.add(block)

    fetch({a for b in blocks for a in ancestors(b)} | set(blocks))
    missing = [b for b in blocks if heads[b] is None and b not in corrupt]
    tops = [b for b in missing if parent(b) is None]
    if tops:
        fetch({c for b in tops for c in children(b)})
    wanted: dict[str, tuple[Block, str]] = {}
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
        if not ids:
            continue
        for etype, shards in head.shards.items():
            if only is not None:
                shard = layout.shard(only[1])
                shards = [shard] if etype == only[0] and shard in shards else []
            for k in shards:
                wanted[layout.shard_key(block, etype, k)] = (block, etype)
    if not wanted:
        return out
    values = get_many(list(wanted))
    sums: dict[tuple[Block, str], int] = {}
    for key, (block, etype) in wanted.items():
        raw = values.get(key)
        if raw is None:
            out.gaps.append(block_gap(block, f"lost: {key} is missing but the head lists it"))
            continue
        try:
            value = decode_shard(raw)
        except Corrupt as exc:
            report(key, str(exc))
            out.gaps.append(block_gap(block, f"corrupt value {key} ({exc})"))
            continue
        if value.restored:
            out.gaps.append(block_gap(block, "restored after a loss; other writers' counts may be missing"))
        counts = value.counts if only is None else {t: n for t, n in value.counts.items() if t == only[1]}
        merge_into(out.counts.setdefault(block, {}), {etype: counts})
        sums[(block, etype)] = sums.get((block, etype), 0) + sum(value.counts.values())
    if only is None:
        gapped = {(g.first, g.last) for g in out.gaps}
        for (block, etype), total in sums.items():
            expected = out.totals[block].get(etype, 0)
            if total < expected and (block_gap(block, "").first, block_gap(block, "").last) not in gapped:
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
