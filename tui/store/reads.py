"""Reading blocks: heads first, then the shards they list, and every hole found on the way.

A read never returns a silently low number. Each part of the window that it could not read whole is
returned as a :class:`Gap` (buckets and why), and the view reports them as ``incomplete``:

* a head is missing while its parent's head lists it as holding data (lost: evicted or expired early);
* a head lists a shard that is missing;
* a value does not decode (corrupt; reported once, named by key);
* a value is marked restored: a writer wrote back its own counts after a loss, others' may be missing.

A block whose head and whose parent's head are both gone cannot be told from a block without
traffic by a reader alone; the writers' verification restores (and marks) such blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tui.store.codec import Corrupt, Head, decode_head, decode_shard
from tui.store.layout import Layout, child_offset, parent
from tui.window import Block, BucketCounts, Gap, merge_into


def block_gap(block: Block, why: str) -> Gap:
    span, index = block
    return Gap(span * index, span * index + span - 1, why)


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
    parents = {p for b in blocks if (p := parent(b)) is not None}
    head_keys = {layout.head_key(b): b for b in (*blocks, *parents)}
    fetched = get_many(list(head_keys))
    heads: dict[Block, Head | None] = {}
    for key, block in head_keys.items():
        raw = fetched.get(key)
        if raw is None:
            heads[block] = None
            continue
        try:
            heads[block] = decode_head(raw, layout.shards, block[0])
        except Corrupt as exc:
            report(key, str(exc))
            heads[block] = None
            if block in blocks:
                out.gaps.append(block_gap(block, f"corrupt value {key} ({exc})"))
    wanted: dict[str, tuple[Block, str]] = {}
    for block in blocks:
        head = heads.get(block)
        if head is None:
            up = parent(block)
            above = heads.get(up) if up is not None else None
            if layout.head_key(block) in fetched:
                continue  # corrupt: already a gap
            if above is not None and child_offset(block) in above.children:
                out.gaps.append(block_gap(block, f"lost: {layout.head_key(block)} is missing but its parent lists it"))
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
    return out
