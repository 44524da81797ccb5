"""Running a query: read the planned blocks, sum them per step and group, fill empty steps with 0.

Every step of every group is a row, a step without events included (count 0), so a chart or a CSV
never has a hole that could be read as "no data". A part of the range the store could not read
whole (a value evicted, corrupt or restored) marks the rows of its steps ``incomplete`` and is listed
with why, as every other read of Store v2 does: never a silently low number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product

from tui import EVENT_TYPES
from tui.events import iso_ms
from tui.history.fetch import read_for
from tui.history.plan import StepPlan, plan_steps
from tui.history.query import Namer, Query, QueryError, flag_name
from tui.store.base import Store
from tui.store.layout import Layout
from tui.window import Gap

Group = tuple[str, ...]
#: Blocks read per round trip at most: 1,000 heads (a few hundred KB) keep one multi-get short.
CHUNK_BLOCKS = 1_000
#: Rows in one answer at most: more cannot be printed, sent or charted usefully (and are held in memory).
MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class Row:
    """One step of one group: its start (epoch ms), the group's values in the query's ``group_by``
    order, the events counted, and whether part of the step could not be read."""

    start_ms: int
    group: Group
    count: int
    incomplete: bool = False

    @property
    def start_iso(self) -> str:
        return iso_ms(self.start_ms)


@dataclass(frozen=True)
class QueryResult:
    """The rows of a query, oldest step first, groups sorted within a step, and the gaps found."""

    query: Query
    rows: tuple[Row, ...]
    #: Parts of the range that could not be read whole, each with why (buckets, as in Store v2).
    incomplete: tuple[Gap, ...]
    bucket_seconds: int
    #: The time the query was answered at (s): "now" for its relative times.
    as_of: float

    @property
    def columns(self) -> tuple[str, ...]:
        return self.query.columns


def base_groups(query: Query) -> set[Group]:
    """Groups shown even where they have no events: every type (the query's or all) and every
    tracking id named exactly. A glob names no id, so only ids with events show up for it."""
    types = list(query.types or EVENT_TYPES)
    ids = list(query.exact_ids)
    if query.group_by == ():
        return {()}
    if query.group_by == ("type",):
        return {(t,) for t in types}
    if query.group_by == ("tracking_id",):
        return {(i,) for i in ids}
    return set(product(types, ids))


def group_of(query: Query, etype: str, tracking_id: str) -> Group:
    if query.group_by == ():
        return ()
    if query.group_by == ("type",):
        return (etype,)
    if query.group_by == ("tracking_id",):
        return (tracking_id,)
    return (etype, tracking_id)


def sum_steps(query: Query, plans: Iterable[StepPlan], counts: Mapping[tuple[int, int], Mapping[str, Mapping[str, int]]]) -> dict[int, dict[Group, int]]:
    """Per step, per group: the counts of the step's blocks that pass the query's filters."""
    sums: dict[int, dict[Group, int]] = {}
    for plan in plans:
        into: dict[Group, int] = defaultdict(int)
        for block in plan.blocks:
            for etype, by_tid in counts.get(block, {}).items():
                if not query.wants_type(etype):
                    continue
                for tid, n in by_tid.items():
                    if n and query.wants_id(tid):
                        into[group_of(query, etype, tid)] += n
        sums[plan.start_ms] = into
    return sums


def run_query(
    store: Store,
    layout: Layout,
    query: Query,
    now: float,
    name: Namer = flag_name,
    typed_from: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> QueryResult:
    """Answer ``query`` from ``store`` at ``now``. Raises :class:`~tui.history.query.QueryError` for
    a step finer than is kept at the range's old edge or an answer of more than :data:`MAX_ROWS`
    rows, and :class:`~tui.store.base.StoreUnavailable` if the store cannot be read.

    The steps are read in chunks of about :data:`CHUNK_BLOCKS` blocks (one multi-get of heads and one
    of shards each; a one-id day is one chunk), and ``progress`` hears the fraction done after each."""
    plans = plan_steps(query, layout, now, name, typed_from)
    sums: dict[int, dict[Group, int]] = {}
    gaps: list[Gap] = []
    seen = base_groups(query)
    chunks = list(_chunks(plans))
    for done, chunk in enumerate(chunks, 1):
        found = read_for(store, layout, query, [b for p in chunk for b in p.blocks])
        part = sum_steps(query, chunk, found.counts)
        sums.update(part)
        seen.update(*(s.keys() for s in part.values()))
        if len(seen) * len(plans) > MAX_ROWS:  # said as soon as it is known, before reading the rest
            raise QueryError(
                "group_by", f"{name('group_by')}: the answer would be at least {len(seen):,} groups x {len(plans):,} steps; "
                f"at most {MAX_ROWS:,} rows (filter the ids, or use a coarser step or a shorter range)",
            )
        gaps.extend(g for g in found.gaps if g not in gaps)
        if progress is not None:
            progress(done / len(chunks))
    groups = sorted(seen)
    rows: list[Row] = []
    for plan in plans:
        hole = any(g.first <= plan.last and plan.first <= g.last for g in gaps)
        step = sums[plan.start_ms]
        rows.extend(Row(plan.start_ms, group, step.get(group, 0), hole) for group in groups)
    return QueryResult(query, tuple(rows), tuple(gaps), layout.bucket_seconds, now)


def _chunks(plans: Sequence[StepPlan]) -> Iterator[list[StepPlan]]:
    """Consecutive steps holding about :data:`CHUNK_BLOCKS` blocks each (every step in one chunk)."""
    chunk: list[StepPlan] = []
    blocks = 0
    for plan in plans:
        chunk.append(plan)
        blocks += len(plan.blocks)
        if blocks >= CHUNK_BLOCKS:
            yield chunk
            chunk, blocks = [], 0
    if chunk or not plans:
        yield chunk
