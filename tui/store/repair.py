"""What a writer needs to repair the store: its absolute counts per key, and which keys lost its entry.

A writer keeps its own absolute counts per block while the block is in its window (the
:class:`~tui.window.Ledger`). :func:`verify` reads the heads of the blocks it wrote and a rotating
sample of its shard values; one that is gone, unreadable or no longer carries the writer's entry
means the store lost it, and the next flush checks it (for a head: every key of its block), where
:func:`tui.store.merge.plan` writes back the writer's absolute counts (marked restored).
"""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING

from tui.store.layout import Layout
from tui.store.merge import decode, key_of
from tui.store.writer_state import (
    Delta,
    Ident,
    WriterState,
    block_of,
    deltas_by_key,
    head_ident,
)
from tui.window import LEVELS, Block, Ledger

if TYPE_CHECKING:
    from tui.store.base import Store


def absolute_counts(ledger: Ledger, layout: Layout, ident: Ident, confirmed: Container[Ident]) -> Delta | None:
    """This writer's whole contribution to the value ``ident``, from its ledger (None: not held).
    A head lists only the shards the store ``confirmed`` (written before the head, as always)."""
    block = block_of(ident)
    counts = ledger.block(block)
    if counts is None:
        return None
    if ident[0] == "s":
        etype, shard = ident[3], ident[4]
        return {tid: n for tid, n in counts.get(etype, {}).items() if layout.shard(tid) == shard}
    head = dict(deltas_by_key({block: counts}, layout).get(head_ident(block), {}))
    span, index = block
    listed: dict[str, list[int]] = {}
    for etype, by_tid in counts.items():
        shards = {layout.shard(tid) for tid in by_tid}
        listed[etype] = sorted(k for k in shards if ("s", span, index, etype, k) in confirmed)
    head["s"] = {t: ks for t, ks in listed.items() if ks}
    level = LEVELS.index(span)
    if level:
        finer = LEVELS[level - 1]
        head["k"] = [j for j in range(span // finer) if ledger.block((finer, index * span // finer + j))]
    return head


#: Shard values verified per round besides every head: a bounded, rotating sample, so a writer's
#: verification costs the same at 100,000 ids as at 10 and every shard is looked at in turn.
VERIFY_SHARDS_PER_ROUND = 512


def verify(store: Store, layout: Layout, state: WriterState, cursor: int = 0) -> tuple[set[Ident], int]:
    """Keys to check on the next flush, and the next cursor of the rotating shard sample.

    A head gone, unreadable or without this writer's entry means the store lost (part of) that
    block: every key of the block this writer wrote is checked. A sampled shard likewise."""
    heads = [i for i in state.confirmed if i[0] == "h"]
    shards = sorted(i for i in state.confirmed if i[0] == "s")
    cursor = cursor % len(shards) if shards else 0
    sample = (shards[cursor:] + shards[:cursor])[:VERIFY_SHARDS_PER_ROUND]
    keys = {key_of(layout, i): i for i in (*heads, *sample)}
    if not keys:
        return set(), 0
    found = store.fetch("verifying what this writer wrote", list(keys))
    written = store.written(state.writer_id)
    damaged_blocks: set[Block] = set()
    damaged: set[Ident] = set()
    for key, ident in keys.items():
        raw = found.get(key)
        if raw is not None and written.mine(key, raw):
            continue  # the very bytes this writer stored: its entry is there
        value = decode(layout, ident, raw).value  # corrupt reads as None: rewritten, reported then
        if value is not None and state.writer_id in value.writers:
            continue
        if ident[0] == "h":
            damaged_blocks.add(block_of(ident))
        else:
            damaged.add(ident)
    damaged.update(i for i in state.confirmed if block_of(i) in damaged_blocks)
    return damaged, cursor + len(sample)
