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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tui import EVENT_TYPES

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
    blocks: list[Block] = []
    index = buckets.start
    while index < buckets.stop:
        span = next(s for s in reversed(LEVELS) if index % s == 0 and index + s <= buckets.stop)
        blocks.append((span, index // span))
        index += span
    return blocks


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
        into = total.setdefault(etype, {})
        for tid, count in by_tid.items():
            into[tid] = into.get(tid, 0) + count


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


def summarize(
    now: float,
    window_seconds: int,
    bucket_seconds: int,
    counts: Mapping[Block, Mapping[str, Mapping[str, int]]],
    types: Sequence[str] = EVENT_TYPES,
) -> WindowView:
    """Build the view of the window at ``now`` from blocks that tile it: either every single bucket
    (then the per-bucket series is filled in) or the :func:`cover` of the window (series stay zero)."""
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
            if span == 1:
                series[etype][first - buckets.start] = sum(tids.values())
    summary = {
        t: TypeSummary(sum(by_tid[t].values()), dict(sorted((k, v) for k, v in by_tid[t].items() if v)))
        for t in types
    }
    return WindowView(now, window_seconds, bucket_seconds, buckets, {t: tuple(v) for t, v in series.items()}, summary, tuple(types))


class Ledger:
    """One writer's own counts per block of every level, kept while the block can still be read.

    Events are counted into a flat ``Counter`` (one C-level update per batch, the hot path) and folded
    into per-block counts when the writer flushes. The store receives each writer's *absolute* counts
    per block, never increments, so a flush can be retried or repeated (after a timeout, a server
    restart, a node coming back) without ever counting an event twice. Memory is bounded by
    types x tracking ids x blocks in the window, whatever the rate or run time.
    """

    def __init__(self, bucket_seconds: int) -> None:
        self.bucket_seconds = bucket_seconds
        self._ms = bucket_seconds * 1000
        self._pending: Counter[tuple[int, str, str]] = Counter()
        self._blocks: dict[Block, BucketCounts] = {}
        self._dirty: set[Block] = set()
        #: Events per single bucket that the store has confirmed (the last successful write of it).
        self._confirmed: dict[int, int] = {}
        #: Events that left the window before the store ever confirmed them: lost for good.
        self.expired_unwritten = 0

    def record(self, events: Iterable[tuple[str, str, int]]) -> None:
        """Count events given as ``(type, tracking_id, ts_ms)`` (an :class:`~tui.events.Event` is one)."""
        ms = self._ms
        self._pending.update((e[2] // ms, e[0], e[1]) for e in events)

    def _fold(self) -> None:
        for (bucket, etype, tid), count in self._pending.items():
            for span in LEVELS:
                block = (span, bucket // span)
                by_tid = self._blocks.setdefault(block, {}).setdefault(etype, {})
                by_tid[tid] = by_tid.get(tid, 0) + count
                self._dirty.add(block)
        self._pending.clear()

    def take_dirty(self) -> dict[Block, BucketCounts]:
        """Copies of the blocks changed since the last call; the caller writes them and, if that
        fails, hands them back to :meth:`mark_dirty`."""
        self._fold()
        taken = {b: {t: dict(c) for t, c in self._blocks[b].items()} for b in sorted(self._dirty)}
        self._dirty.clear()
        return taken

    def mark_dirty(self, blocks: Iterable[Block] | None = None) -> None:
        """Write these blocks again at the next flush. Without ``blocks``: the store lost its data,
        so every block still held is written back and nothing counts as confirmed any more."""
        if blocks is None:
            self._confirmed.clear()
        self._dirty.update(self._blocks if blocks is None else (b for b in blocks if b in self._blocks))

    def confirm(self, written: Mapping[Block, BucketCounts]) -> None:
        """The store took these blocks (absolute counts): remember how many events each bucket holds."""
        for (span, index), counts in written.items():
            if span == 1:
                self._confirmed[index] = sum(sum(c.values()) for c in counts.values())

    def unconfirmed(self) -> int:
        """Events counted here that the store has not confirmed, still in the window or already lost."""
        self._fold()
        held = sum(
            max(0, sum(sum(c.values()) for c in counts.values()) - self._confirmed.get(index, 0))
            for (span, index), counts in self._blocks.items()
            if span == 1
        )
        return held + self.expired_unwritten

    def prune(self, oldest: int) -> None:
        """Forget blocks that end before bucket ``oldest``: no window can read them again. Counts
        the store never confirmed are added to :attr:`expired_unwritten`, so a loss stays visible."""
        self._fold()
        for block in [b for b in self._blocks if (b[1] + 1) * b[0] <= oldest]:
            span, index = block
            if span == 1:
                total = sum(sum(c.values()) for c in self._blocks[block].values())
                self.expired_unwritten += max(0, total - self._confirmed.pop(index, 0))
            del self._blocks[block]
            self._dirty.discard(block)

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
