"""What a writer needs to repair the store: its absolute counts per key, and which keys lost its entry.

A writer keeps its own absolute counts per block while the block is in its window (the
:class:`~tui.window.Ledger`). :func:`verify` reads the heads of the blocks it wrote; a head that is
gone, unreadable or no longer carries the writer's entry means the store lost (part of) that block,
and every key of it that the writer wrote is checked on the next flush, where
:func:`tui.store.merge.plan` writes back the writer's absolute counts (marked restored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.store.codec import Corrupt, decode_head
from tui.store.layout import Layout
from tui.store.writer_state import (
    Delta,
    Ident,
    WriterState,
    block_of,
    deltas_by_key,
    head_ident,
)
from tui.window import LEVELS, Ledger

if TYPE_CHECKING:
    from tui.store.base import Store


def absolute_counts(ledger: Ledger, layout: Layout, ident: Ident) -> Delta | None:
    """This writer's whole contribution to the value ``ident``, from its ledger (None: not held)."""
    block = block_of(ident)
    counts = ledger.block(block)
    if counts is None:
        return None
    if ident[0] == "s":
        etype, shard = ident[3], ident[4]
        return {tid: n for tid, n in counts.get(etype, {}).items() if layout.shard(tid) == shard}
    head = dict(deltas_by_key({block: counts}, layout).get(head_ident(block), {}))
    span, index = block
    level = LEVELS.index(span)
    if level:
        finer = LEVELS[level - 1]
        head["k"] = [j for j in range(span // finer) if ledger.block((finer, index * span // finer + j))]
    return head


def verify(store: Store, layout: Layout, state: WriterState) -> set[Ident]:
    """Keys to check: every key this writer wrote in a block whose head lost the writer's entry."""
    heads = [i for i in state.confirmed if i[0] == "h"]
    if not heads:
        return set()
    keys = {layout.head_key(block_of(i)): i for i in heads}
    found = store.fetch("verifying heads", list(keys))
    damaged = set()
    for key, ident in keys.items():
        raw = found.get(key)
        try:
            if raw is not None and state.writer_id in decode_head(raw, layout.shards, ident[1]).writers:
                continue
        except Corrupt:
            pass  # reported and repaired by the flush that rewrites it
        damaged.add(block_of(ident))
    return {i for i in state.confirmed if block_of(i) in damaged}
