"""The reader: window reads from the store, their summaries, and publishing the summary keys.

It reads what every writer of the prefix wrote (not only this process's writer), so it may run on any
thread and in a process with no writer at all (``summary``, ``serve``'s read API). It shares the
prefix's :class:`~tui.pipeline.prefix.PrefixLayout` with this process's writer, if any.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from tui import EVENT_TYPES
from tui.clock import Clock, SystemClock
from tui.pipeline.prefix import PrefixLayout
from tui.settings import Settings
from tui.store import Store
from tui.store.layout import Layout
from tui.store.publishing import summary_documents
from tui.store.reads import BlocksRead
from tui.store.sketch_reads import DistinctRead, sketch_keys
from tui.window import (
    Block,
    BucketCounts,
    WindowView,
    key_ttl,
    plan_window,
    summarize,
    window_range,
)

MAX_SERIES_BUCKETS = 8_640  # the per-bucket series covers at most the newest day of 10 s buckets
#: A window read gives the distinct visitors of at most this many ids (the busiest), so its cost
#: does not grow with 100,000 ids; the per-type totals cover every id. One id: :meth:`Reader.read_visitors`.
MAX_VISITOR_IDS = 1_000


class Reader:
    """Reads and publishes the window of ``settings`` (its window changes with ``set_window``)."""

    def __init__(self, settings: Settings, store: Store, prefix: PrefixLayout | None = None, clock: Clock | None = None) -> None:
        #: The pipeline keeps them current (``set_window``): the next read uses the new window.
        self.settings = settings
        self.store = store
        self.prefix = prefix or PrefixLayout(store, settings)
        self.clock = clock or SystemClock()
        #: What ``refresh_if_changed`` saw before its last refresh (see there).
        self._refreshed: tuple[object, ...] | None = None
        #: The last plan ``_plan`` made, by what it depends on (one entry: reads ask for the same).
        self._plans: tuple[tuple[object, ...], tuple[list[Block], int]] | None = None

    def layout(self) -> Layout:
        """The prefix's layout (agreed with its meta key on first use)."""
        return self.prefix.get("reading buckets")

    def read_view(self, series: bool = False, window_seconds: int | None = None, ids: bool = True, visitors: bool = False) -> WindowView:
        """Read the current window from the store and summarize it. Raises StoreUnavailable.

        The counts by id come from the fewest kept blocks that tile the window; ``series=True`` also
        reads the heads of the single buckets (per-type totals only: small, fast at any number of
        ids) for the dashboard's per-bucket sparklines. Parts that could not be read whole are in
        ``view.incomplete``; the old edge's rounding, if any, is in ``view.bound_seconds``.
        ``ids=False`` skips the counts by id (the view's summary is then empty): the series alone
        costs the same at 10 and at 100,000 ids. ``visitors``: also the distinct visitors per type
        and of the :data:`MAX_VISITOR_IDS` busiest ids (``view.visitors``), read after the counts.
        """
        settings = self.settings
        seconds = settings.window_seconds if window_seconds is None else window_seconds
        layout = self.layout()
        now = self.clock.time()
        buckets = window_range(now, seconds, settings.bucket_seconds)
        blocks, rounded = plan_window(buckets, layout.usable(now))
        found = self.store.read(layout, blocks) if ids else BlocksRead()
        gaps = list(found.gaps)
        totals = None
        if series:
            usable = layout.usable(now)
            singles = [(1, i) for i in buckets[-MAX_SERIES_BUCKETS:] if usable((1, i))]
            heads = self.store.read(layout, singles, ids=False)
            totals = {index: t for (_, index), t in heads.totals.items()}
            gaps.extend(g for g in heads.gaps if g not in gaps)
        gaps.sort(key=lambda g: (g.first, g.why))
        view = summarize(now, seconds, settings.bucket_seconds, found.counts, series_totals=totals, incomplete=gaps, rounded=rounded)
        if visitors and ids:
            busiest: Counter[str] = Counter()
            for summary in view.summary.values():
                busiest.update(summary.by_tracking_id)
            chosen = [tid for tid, _ in busiest.most_common(MAX_VISITOR_IDS)]
            read = self.store.read_visitors(layout, blocks, EVENT_TYPES, chosen, found)
            view = dataclasses.replace(view, visitors=dataclasses.replace(read, omitted=len(busiest) - len(chosen)))
        return view

    def read_visitors(
        self, tracking_ids: Sequence[str], series: Sequence[str] = EVENT_TYPES, window_seconds: int | None = None, total: bool = True,
        per_series: bool = True,
    ) -> DistinctRead:
        """Distinct visitors of ``tracking_ids`` (each, and of the union of ``series``) over a window
        (the settings' by default), with the total over every id unless ``total=False`` (it reads
        each block's total sketch, kilobytes once dense), in one round trip: the blocks' heads (the
        evidence of which sketch values must be there) and after them the sketch values of those
        ids' shards. Its cost grows with the ids asked for, not with the prefix's.
        ``per_series=False`` leaves ``by_series`` and ``series_totals`` empty: the figures over the
        united series alone cost half the unions. Raises StoreUnavailable."""
        layout = self.layout()
        now = self.clock.time()
        blocks, _ = self._plan(layout, now, self.settings.window_seconds if window_seconds is None else window_seconds)
        ids = list(tracking_ids)
        total = total or not ids
        keys = sketch_keys(layout, blocks, series, ids, total)
        found = self.store.read(layout, blocks, ids=False, also=list(keys.values()))
        read = self.store.read_visitors(layout, blocks, series, ids, found, total=total, per_series=per_series, keys=keys)
        # A block whose head could not be read whole (lost, corrupt, restored) gave no evidence of
        # which sketches must be there: a sketch lost with it would go unnoticed, so the figure may
        # be low there too.
        unsure = [g for g in found.gaps if g not in read.incomplete]
        if unsure:
            read = dataclasses.replace(read, incomplete=tuple(sorted((*read.incomplete, *unsure), key=lambda g: (g.first, g.why))))
        return dataclasses.replace(read, lag_seconds=self._lag(found, now))

    def _lag(self, found: BlocksRead, now: float) -> float | None:
        """Now minus the end of the newest single bucket the heads say holds events (of any id)."""
        newest = max((index for (span, index), totals in found.totals.items() if span == 1 and any(totals.values())), default=None)
        return None if newest is None else max(0.0, now - (newest + 1) * self.settings.bucket_seconds)

    def bound_seconds(self, window_seconds: int) -> int:
        """The "±" of a read of ``window_seconds`` now: one bucket, more where the window's old edge
        is older than the finest level kept (what ``WindowView.approximation_seconds`` says)."""
        _, rounded = self._plan(self.layout(), self.clock.time(), window_seconds)
        return self.settings.bucket_seconds * (1 + rounded)

    def read_one(self, etype: str, tracking_id: str, window_seconds: int) -> WindowView:
        """One id's count of one type over a window: the heads and that id's one shard per block,
        so the cost does not grow with the number of ids. Raises StoreUnavailable."""
        layout = self.layout()
        now = self.clock.time()
        blocks, rounded = self._plan(layout, now, window_seconds)
        found = self.store.read(layout, blocks, only=(etype, tracking_id))
        # The heads' totals of the single buckets give the series, so the view's lag is the prefix's
        # (newest bucket holding any event), not this id's: how fresh the counting is.
        heads = {index: totals for (span, index), totals in found.totals.items() if span == 1}
        return summarize(
            now, window_seconds, self.settings.bucket_seconds, found.counts,
            series_totals=heads, incomplete=sorted(found.gaps, key=lambda g: (g.first, g.why)), rounded=rounded,
        )

    def _plan(self, layout: Layout, now: float, window_seconds: int) -> tuple[list[Block], int]:
        """``plan_window`` of the window at ``now``, kept for the rest of that whole second.

        One-id reads come hundreds a second and planning was a tenth of each. The plan is the same
        throughout a second: the buckets change at multiples of the (whole-second) bucket length,
        and whether a block is usable compares whole seconds (its end, expiry and margins) with
        ``now``, so it can only change when ``int(now)`` does."""
        key = (layout, window_seconds, self.settings.bucket_seconds, int(now))
        kept = self._plans
        if kept is not None and kept[0] == key:
            return kept[1]
        plan = plan_window(window_range(now, window_seconds, self.settings.bucket_seconds), layout.usable(now))
        self._plans = (key, plan)
        return plan

    def read_id_series(self, etype: str, tracking_id: str, buckets: range) -> dict[int, int]:
        """One id's count per single bucket (those still kept): its heads and one shard each."""
        layout = self.layout()
        usable = layout.usable(self.clock.time())
        found = self.store.read(layout, [(1, b) for b in buckets if usable((1, b))], only=(etype, tracking_id))
        return {index: counts.get(etype, {}).get(tracking_id, 0) for (_, index), counts in found.counts.items()}

    def read_closed_buckets(self, buckets: range) -> tuple[dict[int, BucketCounts], set[int]]:
        """Every writer's counts by id in these single buckets, and the buckets that could not be
        read whole (a gap) or are no longer kept: what the anomaly detector judges, or must not.
        Raises StoreUnavailable."""
        layout = self.layout()
        usable = layout.usable(self.clock.time())
        kept = [b for b in buckets if usable((1, b))]
        found = self.store.read(layout, [(1, b) for b in kept])
        unknown = set(buckets) - set(kept)
        for gap in found.gaps:
            unknown.update(range(gap.first, gap.last + 1))
        return {index: counts for (_, index), counts in found.counts.items()}, unknown

    def read_buckets(self, buckets: range) -> dict[int, BucketCounts]:
        """Every writer's counts by id in these single buckets (the dashboard's 5 s rates compare
        the last few). Raises StoreUnavailable."""
        found = self.store.read(self.layout(), [(1, b) for b in buckets])
        return {index: counts for (_, index), counts in found.counts.items()}

    def publish(self, view: WindowView) -> bool:
        """Store the per-type and per-shard summary keys (only if fresher than what is there).

        Only a process whose window is the prefix's published window publishes (returns False
        otherwise), so two dashboards with different windows never flip the shared keys. Raises
        StoreUnavailable."""
        layout = self.prefix.get()
        meta = self.store.meta
        if meta is None or meta.window_minutes != view.window_minutes:
            return False
        documents = summary_documents(view, layout)
        self.store.publish(documents, key_ttl(view.window_seconds, view.bucket_seconds))
        return True

    def refresh(self, series: bool = False, visitors: bool = True) -> WindowView:
        """What every refresh does: read the window, then publish it to the summary keys. With
        ``visitors`` (the default: every publisher's keys carry the same fields, so they do not
        flap between refreshes with and without) the view and the keys carry the distinct visitors
        per type and of the busiest :data:`MAX_VISITOR_IDS` ids, so what it costs is bounded
        whatever the ids; the dashboard shows them."""
        view = self.read_view(series, visitors=visitors)
        self.publish(view)
        return view

    def refresh_if_changed(self) -> bool:
        """``refresh`` unless nothing it would read changed since the last one that this made: the
        same blocks tile the window (it moves every bucket) and their heads hold the same totals and
        holes. The heads alone are a few small values (decoded once), while a refresh at 100,000 ids
        reads and re-encodes every shard; ``serve`` calls this once a second even when idle.

        The keys published last stay true (they say which ``asOf`` they are as of); what is skipped
        is only advancing that ``asOf`` within the bucket. A change that lands between this check
        and the refresh is in the refresh and, the check being older, refreshed again next time.
        Returns whether it refreshed. Raises StoreUnavailable."""
        layout = self.layout()
        now = self.clock.time()
        buckets = window_range(now, self.settings.window_seconds, self.settings.bucket_seconds)
        blocks, _ = plan_window(buckets, layout.usable(now))
        heads = self.store.read(layout, blocks, ids=False)
        mark = (buckets, blocks, heads.totals, heads.gaps)
        if mark == self._refreshed:
            return False
        self.refresh()
        self._refreshed = mark
        return True
