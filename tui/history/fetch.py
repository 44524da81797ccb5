"""Reading what a query needs, and no more: heads alone, one id's shards, or every shard.

* No tracking-id filter and no grouping by id: the heads' per-type totals answer it (one multi-get
  of the heads, no shard at all), whatever the number of ids.
* A few ids named exactly: only the shard of each id in each block, so its cost does not grow with
  the ids a site has (:meth:`Store.read` with ``only``).
* A glob, or grouping by id: every shard the heads list.
"""

from __future__ import annotations

from collections.abc import Sequence

from tui import EVENT_TYPES
from tui.history.query import Query
from tui.store.base import Store
from tui.store.layout import Layout
from tui.store.reads import BlocksRead
from tui.window import Block, merge_into

#: The id under which a heads-only read files a type's total: such a read serves only queries that
#: neither filter nor group by tracking id, so it is never shown.
ALL_IDS = "*"
#: (type, id) pairs read one shard at a time at most; more read every shard in one pass.
MAX_EXACT_PAIRS = 4


def read_for(store: Store, layout: Layout, query: Query, blocks: Sequence[Block]) -> BlocksRead:
    """The counts of ``blocks`` that ``query`` can use (by type and tracking id), and the gaps."""
    if not blocks:
        return BlocksRead()
    if not query.tracking_ids and "tracking_id" not in query.group_by:
        found = store.read(layout, blocks, ids=False)
        found.counts = {block: {t: {ALL_IDS: n} for t, n in totals.items()} for block, totals in found.totals.items()}
        return found
    pairs = [(t, i) for t in (query.types or EVENT_TYPES) for i in query.exact_ids]
    if query.globs or not pairs or len(pairs) > MAX_EXACT_PAIRS:
        return store.read(layout, blocks)
    out = BlocksRead()
    for pair in pairs:
        part = store.read(layout, blocks, only=pair)
        for block, counts in part.counts.items():
            merge_into(out.counts.setdefault(block, {}), counts)
        out.gaps.extend(g for g in part.gaps if g not in out.gaps)
    return out
