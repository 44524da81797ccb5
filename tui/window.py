"""The sliding window: epoch-aligned buckets, a writer's own counts, and the summary built from them.

Buckets are ``B`` seconds long, aligned to the Unix epoch and start-inclusive: an event stamped
``t`` ms lands in bucket ``t // (B * 1000)``, as in Flink's and Kafka Streams' hopping windows.

The window for "the last W seconds" at time ``now`` is the current, still-filling bucket plus the
``W / B`` buckets before it. It therefore holds every event of the last W seconds and none older
than W + B seconds: the reported count ``r`` always satisfies
``count(last W - B s) <= count(last W s) <= r <= count(last W + B s)``. Within that, it is exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import floordiv, itemgetter
from typing import TYPE_CHECKING

from tui import EVENT_TYPES
from tui.events import iso_ms

if TYPE_CHECKING:
    from tui.store.sketch_reads import DistinctRead

#: Counts of one bucket or block: event type -> tracking id -> events.
BucketCounts = dict[str, dict[str, int]]
#: A block of ``span`` consecutive buckets, aligned to the epoch: ``(span, bucket // span)``.
#: Span 1 is a single bucket. Writers keep every level; readers sum the fewest blocks that tile the
#: window, so a 24 h window reads about 45 values instead of 8,641 (see :func:`cover`).
Block = tuple[int, int]
LEVELS: tuple[int, ...] = (1, 6, 60, 360)  # with 10 s buckets: 10 s, 1 min, 10 min, 1 h


def bucket_of(ts_ms: int, bucket_seconds: int) -> int:
    """The index of the epoch-aligned bucket that holds an event stamped ``ts_ms``."""
    return ts_ms // (bucket_seconds * 1000)


def window_range(now: float, window_seconds: int, bucket_seconds: int) -> range:
    """Bucket indexes of the window at wall time ``now``: ``W / B`` full buckets and the current one."""
    current = bucket_of(int(now * 1000), bucket_seconds)
    return range(current - window_seconds // bucket_seconds, current + 1)


def cover(buckets: range) -> list[Block]:
    """The fewest aligned blocks that tile ``buckets`` exactly, largest first where they fit."""
    return plan_window(buckets, lambda block: True)[0]


def plan_window(buckets: range, usable: Callable[[Block], bool]) -> tuple[list[Block], int]:
    """The fewest aligned blocks that ``usable`` accepts (e.g. still kept) and that tile ``buckets``.

    Where the window's old edge is older than the finest level's retention, no usable block starts at
    that bucket: the edge moves forward to the next bucket a usable block starts at. Returns the blocks
    and how many buckets the old edge lost (0 normally); the view widens its "±" by that much.
    Retention never shorter at a coarser level (checked in the settings and the meta decoder) means
    such holes only ever occur at the old edge.
    """
    blocks: list[Block] = []
    index = buckets.start
    rounded = 0
    while index < buckets.stop:
        span = next(
            (s for s in reversed(LEVELS) if index % s == 0 and index + s <= buckets.stop and usable((s, index // s))),
            None,
        )
        if span is None:
            index += 1
            rounded += 1
            continue
        blocks.append((span, index // span))
        index += span
    return blocks, rounded


def key_ttl(window_seconds: int, bucket_seconds: int) -> int:
    """Seconds a bucket must outlive its last write: a bucket is last written as it closes and is
    read until it leaves the window ``W`` seconds later; one more bucket and a minute spare cover
    late flushes and a clock that is a little off between hosts."""
    return window_seconds + 2 * bucket_seconds + 60


def window_label(window_minutes: float, bucket_seconds: int) -> str:
    """How every view names the window and its approximation, e.g. ``last 5 min ±10 s``."""
    return f"last {window_minutes:g} min ±{bucket_seconds} s"


def merge_into(total: BucketCounts, part: Mapping[str, Mapping[str, int]]) -> None:
    """Add ``part`` into ``total`` in place."""
    for etype, by_tid in part.items():
        merge_counts(total.setdefault(etype, {}), by_tid)


def merge_counts(into: dict[str, int], counts: Mapping[str, int]) -> None:
    """Add ``counts`` into ``into`` in place (a plain copy, at C speed, while ``into`` is empty)."""
    if not into:
        into.update(counts)
        return
    get = into.get
    for tid, count in counts.items():
        into[tid] = get(tid, 0) + count


@dataclass(frozen=True)
class Gap:
    """Buckets ``first … last`` (inclusive) of the window that could not be read whole, and why:
    the view then says ``incomplete`` instead of printing a silently low number."""

    first: int
    last: int
    why: str

    def to_json(self, bucket_seconds: int) -> dict[str, object]:
        ms = bucket_seconds * 1000
        return {"buckets": [self.first, self.last], "from": iso_ms(self.first * ms), "to": iso_ms((self.last + 1) * ms), "why": self.why}


#: Visitors' gaps listed in one answer: sketch values evicted one by one can leave thousands of gaps
#: (one per value, or per id a restored value lacks), which every line or key would repeat.
MAX_VISITOR_GAPS = 20


def listed_gaps(gaps: Sequence[Gap], bucket_seconds: int) -> list[dict[str, object]]:
    """The first :data:`MAX_VISITOR_GAPS` gaps, and one more that spans the rest and says how many."""
    listed = [gap.to_json(bucket_seconds) for gap in gaps[:MAX_VISITOR_GAPS]]
    rest = gaps[MAX_VISITOR_GAPS:]
    if rest:
        first, last = min(g.first for g in rest), max(g.last for g in rest)
        listed.append(Gap(first, last, f"and {len(rest):,} more parts whose sketches were lost, corrupt or restored").to_json(bucket_seconds))
    return listed


@dataclass(frozen=True)
class TypeSummary:
    """The brief's per-type summary."""

    total: int
    by_tracking_id: Mapping[str, int]

    def to_json(self) -> dict[str, object]:
        return {"totalEventsCaptured": self.total, "eventsCapturedByTrackingIds": dict(self.by_tracking_id)}


@dataclass(frozen=True)
class WindowView:
    """An immutable reading of the window: the summary and the per-bucket series behind it."""

    as_of: float
    window_seconds: int
    bucket_seconds: int
    buckets: range
    #: event type -> events per bucket, oldest first, one entry per bucket of ``buckets``.
    series: Mapping[str, Sequence[int]]
    summary: Mapping[str, TypeSummary]
    types: Sequence[str] = field(default=EVENT_TYPES)
    #: Parts of the window that could not be read whole (lost, corrupt, restored): never hidden.
    incomplete: tuple[Gap, ...] = ()
    #: The "±" of every count: one bucket, more where the old edge had to round to a coarser level
    #: because the finest level is no longer kept that far back.
    bound_seconds: int = 0
    #: Distinct visitors of the same window (per type, per id), when the read asked for them.
    visitors: DistinctRead | None = None

    @property
    def approximation_seconds(self) -> int:
        return self.bound_seconds or self.bucket_seconds

    @property
    def label(self) -> str:
        """``last 5 min ±10 s``, with the true bound: what every face prints."""
        return window_label(self.window_minutes, self.approximation_seconds)

    def incomplete_json(self) -> list[dict[str, object]]:
        return [gap.to_json(self.bucket_seconds) for gap in self.incomplete]

    @property
    def window_minutes(self) -> float | int:
        """Minutes, as an int when whole, so JSON shows ``5`` rather than ``5.0``."""
        minutes = self.window_seconds / 60
        return int(minutes) if minutes.is_integer() else minutes

    @property
    def total(self) -> int:
        return sum(s.total for s in self.summary.values())

    def last_full_bucket_rate(self, etype: str) -> float:
        """Events/s of ``etype`` over the last closed bucket (the one before the current)."""
        values = self.series.get(etype, ())
        return values[-2] / self.bucket_seconds if len(values) >= 2 else 0.0

    def summary_json(self) -> dict[str, dict[str, object]]:
        return {t: self.summary[t].to_json() for t in self.types}

    @property
    def lag_seconds(self) -> float | None:
        """Now minus the end of the newest bucket holding events (from the series); None when the
        window holds none. What the read API and the dashboard's ingest panel call the lag."""
        # From the newest bucket back: with traffic the first one looked at holds events (a read of
        # one id asks this on every request; summing all ~180 buckets was 8 % of its time).
        newest = next(
            (self.buckets[i] for i in reversed(range(len(self.buckets))) if sum(self.series[t][i] for t in self.types)),
            None,
        )
        return None if newest is None else max(0.0, self.as_of - (newest + 1) * self.bucket_seconds)


def summarize(
    now: float,
    window_seconds: int,
    bucket_seconds: int,
    counts: Mapping[Block, Mapping[str, Mapping[str, int]]],
    types: Sequence[str] = EVENT_TYPES,
    *,
    series_totals: Mapping[int, Mapping[str, int]] | None = None,
    incomplete: Sequence[Gap] = (),
    rounded: int = 0,
) -> WindowView:
    """Build the view of the window at ``now`` from blocks that tile it (the counts by id) and,
    if given, per-type totals per single bucket (``series_totals``, from the heads) for the series;
    without them the series come from single-bucket blocks among ``counts``. ``rounded``: buckets the
    old edge lost to a coarser level (see :func:`tui.store.layout.plan_window`)."""
    buckets = window_range(now, window_seconds, bucket_seconds)
    series: dict[str, list[int]] = {t: [0] * len(buckets) for t in types}
    by_tid: dict[str, Counter[str]] = {t: Counter() for t in types}
    for (span, index), block in counts.items():
        first = span * index
        if not block or first < buckets.start or first + span > buckets.stop:
            continue
        for etype, tids in block.items():
            if etype not in by_tid:
                continue
            by_tid[etype].update(tids)
            if span == 1 and series_totals is None:
                series[etype][first - buckets.start] = sum(tids.values())
    for bucket, totals in (series_totals or {}).items():
        if bucket in buckets:
            for etype, n in totals.items():
                if etype in series:
                    series[etype][bucket - buckets.start] = n
    summary = {
        t: TypeSummary(sum(by_tid[t].values()), {k: by_tid[t][k] for k in sorted(k for k, v in by_tid[t].items() if v)})
        for t in types
    }
    bound = bucket_seconds * (1 + rounded)
    series_view = {t: tuple(v) for t, v in series.items()}
    return WindowView(now, window_seconds, bucket_seconds, buckets, series_view, summary, tuple(types), tuple(incomplete), bound)


OTHER_ID = "(other)"  # ids past the cap (or not on the allow-list) are counted under this one


_AT_0, _AT_1, _AT_2 = itemgetter(0), itemgetter(1), itemgetter(2)
#: ``(bucket, type, tracking_id)``: what one count of a :class:`Ledger` is kept under.
BucketKey = tuple[int, str, str]


def bucket_keys(events: Sequence[tuple[str, str, int]], bucket_ms: int) -> Iterator[BucketKey]:
    """The ``(bucket, type, tracking_id)`` of each ``(type, tracking_id, ts_ms, ...)`` event.

    ``map``/``zip`` of item getters: no Python code runs per event (a generator expression cost a
    third more), which is most of what counting an event costs."""
    return zip(map(floordiv, map(_AT_2, events), repeat(bucket_ms)), map(_AT_0, events), map(_AT_1, events))


class Ledger:
    """One writer's own counts per block of every level, kept while the block can still be repaired.

    Events are counted into a flat ``Counter`` (one C-level update per batch, the hot path) and folded
    into per-block counts when the writer flushes. Two things come out of a fold: the *absolute*
    counts per block (what the writer writes back if the store lost a block) and the *deltas* since
    the last :meth:`take_deltas` (what it merges into the shared values). Memory is bounded by
    types x tracking ids x blocks in the window, whatever the rate or run time, and the number of
    distinct ids per type by ``max_ids``: later ids count under :data:`OTHER_ID`, and
    :attr:`other_events` says how many events did.
    """

    def __init__(self, bucket_seconds: int, max_ids: int = 200_000, allowed: frozenset[str] | None = None) -> None:
        self.bucket_seconds = bucket_seconds
        self._ms = bucket_seconds * 1000
        self._pending: Counter[BucketKey] = Counter()
        self._blocks: dict[Block, BucketCounts] = {}
        self._deltas: dict[Block, BucketCounts] = {}
        self._max_ids = max_ids
        self._allowed = allowed
        self._ids: dict[str, set[str]] = {}
        self.other_events = 0

    def record(self, events: Sequence[tuple[str, str, int]]) -> None:
        """Count events given as ``(type, tracking_id, ts_ms)`` (an :class:`~tui.events.Event` is one)."""
        self.count(bucket_keys(events, self._ms))

    def count(self, keys: Iterable[BucketKey]) -> None:
        """Count one event per ``(bucket, type, tracking_id)`` of :func:`bucket_keys` (a writer that
        also hashes visitors makes the keys once for both)."""
        self._pending.update(keys)

    def _admit(self, etype: str, tid: str, count: int) -> str:
        """The id to count under: itself while the type's distinct ids fit (and it is allowed)."""
        held = self._ids.setdefault(etype, set())
        if tid in held:
            return tid
        if (self._allowed is None or tid in self._allowed) and len(held) < self._max_ids:
            held.add(tid)
            return tid
        self.other_events += count
        return OTHER_ID

    def counted_as(self, etype: str, tid: str) -> str:
        """The id that events of ``tid`` were counted under after the last fold: itself, or
        :data:`OTHER_ID` past ``max_ids`` (distinct visitors follow the counts, id for id)."""
        return tid if tid in self._ids.get(etype, ()) else OTHER_ID

    def _fold(self) -> None:
        # Per (bucket, type) first, then each group into its block of every level: one dict merge per
        # group and level instead of a chain of lookups per id (a flush at 100,000 ids folds thousands).
        grouped: dict[tuple[int, str], dict[str, int]] = {}
        for (bucket, etype, tid), count in self._pending.items():
            tid = self._admit(etype, tid, count)
            counts = grouped.setdefault((bucket, etype), {})
            counts[tid] = counts.get(tid, 0) + count
        for (bucket, etype), counts in grouped.items():
            for span in LEVELS:
                block = (span, bucket // span)
                for table in (self._blocks, self._deltas):
                    merge_counts(table.setdefault(block, {}).setdefault(etype, {}), counts)
        self._pending.clear()

    def take_deltas(self) -> dict[Block, BucketCounts]:
        """Counts added per block since the last call; the caller stages them for the store."""
        self._fold()
        deltas, self._deltas = self._deltas, {}
        return deltas

    def unstaged_events(self) -> int:
        """Events recorded but not yet handed out by :meth:`take_deltas`."""
        return sum(self._pending.values()) + sum(sum(c.values()) for (span, _), b in self._deltas.items() if span == 1 for c in b.values())

    def block(self, block: Block) -> BucketCounts | None:
        """This writer's absolute counts of ``block``, or None if not held (never written or pruned)."""
        return self._blocks.get(block)

    def holds(self, block: Block) -> bool:
        return block in self._blocks

    def prune(self, oldest: int) -> None:
        """Forget blocks that end before bucket ``oldest``: no window of this writer reads them again,
        so they are no longer repaired. (Deltas not yet taken stay: they must still be written.)"""
        self._fold()
        dropped = [b for b in self._blocks if (b[1] + 1) * b[0] <= oldest]
        for block in dropped:
            del self._blocks[block]
        if dropped and any(len(ids) >= self._max_ids for ids in self._ids.values()):
            self._ids = {}
            for (span, _), counts in self._blocks.items():
                if span == 1:
                    for etype, by_tid in counts.items():
                        self._ids.setdefault(etype, set()).update(t for t in by_tid if t != OTHER_ID)

    def bucket_count(self) -> int:
        """Single buckets held (blocks of larger spans come on top, about a fifth more)."""
        return sum(1 for span, _ in self._blocks if span == 1)

    def totals(self) -> BucketCounts:
        """Everything this writer still holds, summed over its single buckets."""
        self._fold()
        total: BucketCounts = {}
        for (span, _), counts in self._blocks.items():
            if span == 1:
                merge_into(total, counts)
        return total
