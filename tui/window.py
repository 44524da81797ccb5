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

#: Counts of one bucket: event type -> tracking id -> events.
BucketCounts = dict[str, dict[str, int]]


def bucket_of(ts_ms: int, bucket_seconds: int) -> int:
    """The index of the epoch-aligned bucket that holds an event stamped ``ts_ms``."""
    return ts_ms // (bucket_seconds * 1000)


def window_range(now: float, window_seconds: int, bucket_seconds: int) -> range:
    """Bucket indexes of the window at wall time ``now``: ``W / B`` full buckets and the current one."""
    current = bucket_of(int(now * 1000), bucket_seconds)
    return range(current - window_seconds // bucket_seconds, current + 1)


def key_ttl(window_seconds: int, bucket_seconds: int) -> int:
    """Seconds a bucket must outlive its last write: a bucket is last written as it closes and is
    read until it leaves the window ``W`` seconds later; one more bucket and a minute spare cover
    late flushes and a clock that is a little off between hosts."""
    return window_seconds + 2 * bucket_seconds + 60


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
    counts: Mapping[int, Mapping[str, Mapping[str, int]]],
    types: Sequence[str] = EVENT_TYPES,
) -> WindowView:
    """Build the view of the window at ``now`` from per-bucket counts (buckets outside are ignored)."""
    buckets = window_range(now, window_seconds, bucket_seconds)
    series: dict[str, list[int]] = {t: [0] * len(buckets) for t in types}
    by_tid: dict[str, Counter[str]] = {t: Counter() for t in types}
    for position, index in enumerate(buckets):
        bucket = counts.get(index)
        if not bucket:
            continue
        for etype, tids in bucket.items():
            if etype not in by_tid:
                continue
            by_tid[etype].update(tids)
            series[etype][position] = sum(tids.values())
    summary = {
        t: TypeSummary(sum(by_tid[t].values()), dict(sorted((k, v) for k, v in by_tid[t].items() if v)))
        for t in types
    }
    return WindowView(now, window_seconds, bucket_seconds, buckets, {t: tuple(v) for t, v in series.items()}, summary, tuple(types))


class Ledger:
    """One writer's own counts per bucket, kept while the bucket can still be in a window.

    Events are counted into a flat ``Counter`` (one C-level update per batch, the hot path) and folded
    into per-bucket counts when the writer flushes. The store receives each writer's *absolute* counts
    per bucket, never increments, so a flush can be retried or repeated (after a timeout, a server
    restart, a node coming back) without ever counting an event twice. Memory is bounded by
    types x tracking ids x buckets kept, whatever the rate or run time.
    """

    def __init__(self, bucket_seconds: int) -> None:
        self.bucket_seconds = bucket_seconds
        self._ms = bucket_seconds * 1000
        self._pending: Counter[tuple[int, str, str]] = Counter()
        self._buckets: dict[int, BucketCounts] = {}
        self._dirty: set[int] = set()

    def record(self, events: Iterable[tuple[str, str, int]]) -> None:
        """Count events given as ``(type, tracking_id, ts_ms)`` (an :class:`~tui.events.Event` is one)."""
        ms = self._ms
        self._pending.update((e[2] // ms, e[0], e[1]) for e in events)

    def record_counts(self, bucket: int, etype: str, tid: str, count: int) -> None:
        """Count ``count`` events of one series at once (used by benchmarks and restores)."""
        self._pending[(bucket, etype, tid)] += count

    def _fold(self) -> None:
        for (bucket, etype, tid), count in self._pending.items():
            by_tid = self._buckets.setdefault(bucket, {}).setdefault(etype, {})
            by_tid[tid] = by_tid.get(tid, 0) + count
            self._dirty.add(bucket)
        self._pending.clear()

    def take_dirty(self) -> dict[int, BucketCounts]:
        """Copies of the buckets changed since the last call; the caller writes them and, if that
        fails, hands the indexes back to :meth:`mark_dirty`."""
        self._fold()
        taken = {b: {t: dict(c) for t, c in self._buckets[b].items()} for b in sorted(self._dirty)}
        self._dirty.clear()
        return taken

    def mark_dirty(self, buckets: Iterable[int] | None = None) -> None:
        """Write these buckets (default: every bucket still held) again at the next flush."""
        self._dirty.update(self._buckets if buckets is None else (b for b in buckets if b in self._buckets))

    def prune(self, oldest: int) -> None:
        """Forget buckets before ``oldest``; they can no longer be in any window."""
        self._fold()
        for bucket in [b for b in self._buckets if b < oldest]:
            del self._buckets[bucket]
            self._dirty.discard(bucket)

    @property
    def pending_events(self) -> int:
        """Events counted but not yet handed to a flush."""
        return sum(self._pending.values())

    def bucket_count(self) -> int:
        return len(self._buckets)

    def totals(self) -> BucketCounts:
        """Everything this writer still holds, summed over buckets."""
        self._fold()
        total: BucketCounts = {}
        for counts in self._buckets.values():
            merge_into(total, counts)
        return total
