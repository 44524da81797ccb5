"""The real :class:`~tui.service.ports.Sink` and :class:`~tui.service.ports.Reader` of ``serve`` and
``ingest``: accepted events go to the spool (durable), then to this process's Store v2 writer; reads
are answered from the store, so any number of ``serve`` processes give the same answers.

Exactly once across ``kill -9``: the writer stages its deltas (each with a sequence number) and,
before it writes them, saves a checkpoint: the spool position the deltas cover and its state (the
staged, unconfirmed deltas). A restart takes up that state, re-sends what is pending (the store skips
a sequence number it already applied) and replays the spool after the position. Events after the
last checkpoint were never staged, so they cannot be in the store yet. The spool is released
behind a position only once the store took the write that covers it. ``EVENTDASH_FAULT``
(:mod:`tui.service.faults`) kills the process at either step, for the tests that prove this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from tui import EVENT_TYPES
from tui.clock import Clock
from tui.distinct.batch import SIGNUPS
from tui.distinct.sketch import Estimate
from tui.events import iso_ms
from tui.pipeline import Reader, Writer
from tui.service.faults import Fault
from tui.history.source import HistorySource
from tui.service.ports import QueryError, ReadAnswer, ReadUnavailable, SpoolSink
from tui.service.spool import Position, Spool
from tui.service.state import StateDir
from tui.settings import SettingsError, check_window
from tui.store import StoreUnavailable
from tui.store.sketch_reads import DistinctRead
from tui.window import WindowView

T = TypeVar("T")


def _figure(estimate: Estimate | None) -> dict[str, int]:
    """A distinct count with its bounds; an id with no events in the window has none: 0."""
    return estimate.to_json() if estimate is not None else {"estimate": 0, "lower": 0, "upper": 0}


class WriterSink(SpoolSink):
    """Spool first (the 202 waits for it), then the writer's inbox. While the store is unreachable
    it stays ready (the spool keeps accepting until it is full) and its readiness text says so."""

    def __init__(self, spool: Spool, writer: Writer, clock: Clock) -> None:
        super().__init__(spool, clock, [writer.submit])
        self.writer = writer

    def ready(self) -> tuple[bool, str]:
        ready, why = super().ready()
        if ready and self.writer.status().store_error is not None:
            return True, "spool accepting; the store is unreachable, counts wait in the spool"
        return ready, why


def take_up(writer: Writer, spool: Spool, state: StateDir, fault: Fault | None = None) -> None:
    """Restore the writer from its last checkpoint and replay the spool after it; from now on save a
    checkpoint at every flush, and release the spool behind it once written (see the module's
    docstring)."""
    saved = state.load_checkpoint()
    after = None
    if isinstance(saved, Mapping) and "state" in saved:
        after = Position(*saved["position"])
        writer.restore(saved["state"], after)
    for record in spool.records(after=after):
        writer.submit(record.events, record.end)

    def checkpoint(position: Any) -> None:
        if position is None:
            return
        state.save_checkpoint({"position": position.to_json(), "state": writer.writer_state()})
        if fault is not None:
            fault.reached("after-stage")

    def release(position: Any) -> None:
        if position is None:
            return
        if fault is not None:
            fault.reached("after-write")
        spool.release(position)

    writer.on_staged = checkpoint
    writer.on_written = release


#: Beside a distinct-signups answer from a process without ``email_salt``.
NO_SALT_NOTE = (
    "this serve has no email_salt: e-mails it ingests are not hashed and count in no distinct signups; "
    "other writers of the prefix may have one"
)


class StoreReader:
    """Answers from the store through this process's reader (it shares the writer's layout and clock)."""

    def __init__(self, reader: Reader, retention_seconds: int) -> None:
        self.reader = reader
        self.retention_seconds = retention_seconds
        self.history = HistorySource(reader.store, reader.settings)  # for /api/v1/aggregates and reports
        #: Whether the last one-id read answered: only then is the next one read on the event loop.
        self._store_answering = True

    def _seconds(self, minutes: float) -> int:
        try:
            seconds = round(check_window(minutes, self.reader.settings.bucket_seconds, "minutes") * 60)
        except SettingsError as exc:
            raise QueryError("minutes", str(exc).partition(": ")[2]) from None
        if seconds > self.retention_seconds:
            raise QueryError("minutes", f"at most {self.retention_seconds / 60:g} are kept, got {minutes:g}")
        return seconds

    async def _read(self, read: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(read)
        except StoreUnavailable as exc:
            raise ReadUnavailable(str(exc)) from None

    async def _read_quick(self, read: Callable[[], T]) -> T:
        """A read of one memcached round trip and well under a millisecond of CPU: on the event loop
        itself while the store answers. Handing it to a thread cost more than the read (the loop
        waits for the GIL back at every hand-off, ~1.3 ms a read at 1,000 reads/s). After a failure
        the reads go to a thread (so an unreachable store, up to its timeout, cannot stall ingest)
        until one answers again."""
        if not self._store_answering:
            value = await self._read(read)
            self._store_answering = True
            return value
        try:
            return read()
        except StoreUnavailable as exc:
            self._store_answering = False
            raise ReadUnavailable(str(exc)) from None

    @staticmethod
    def _answer(view: WindowView, data: dict[str, Any]) -> ReadAnswer:
        """``lagSeconds``: now minus the end of the newest bucket holding events (from the heads)."""
        if view.incomplete:
            data = {**data, "incompleteParts": view.incomplete_json()}
        return ReadAnswer(view.as_of, view.window_seconds, view.bucket_seconds, bool(view.incomplete), view.lag_seconds, data, view.approximation_seconds)

    async def summary(self, minutes: float) -> ReadAnswer:
        seconds = self._seconds(minutes)
        view = await self._read(lambda: self.reader.read_view(series=True, window_seconds=seconds))
        return self._answer(view, {"summary": view.summary_json()})

    async def summary_for(self, etype: str, tracking_id: str, minutes: float) -> ReadAnswer:
        seconds = self._seconds(minutes)
        view = await self._read_quick(lambda: self.reader.read_one(etype, tracking_id, seconds))
        count = view.summary[etype].by_tracking_id.get(tracking_id, 0)
        return self._answer(view, {"type": etype, "trackingId": tracking_id, "count": count})

    async def series(self, etype: str, tracking_id: str | None, minutes: float, step_seconds: int) -> ReadAnswer:
        bucket = self.reader.settings.bucket_seconds
        if step_seconds % bucket:
            raise QueryError("step", f"must be a whole number of {bucket} s buckets, got {step_seconds} s")
        seconds = self._seconds(minutes)
        view = await self._read(lambda: self.reader.read_view(series=True, window_seconds=seconds))
        if tracking_id is None:
            per_bucket = dict(zip(view.buckets, view.series[etype]))
        else:
            per_bucket = await self._read(lambda: self.reader.read_id_series(etype, tracking_id, view.buckets))
        per_step = step_seconds // bucket
        points: dict[int, int] = {}
        for index in view.buckets:
            points[index // per_step] = points.get(index // per_step, 0) + per_bucket.get(index, 0)
        data = {
            "type": etype,
            "trackingId": tracking_id,
            "stepSeconds": step_seconds,
            "points": [{"start": iso_ms(step * step_seconds * 1000), "count": n} for step, n in sorted(points.items())],
        }
        return self._answer(view, data)

    async def distinct_for(self, etype: str, tracking_id: str, distinct: str, minutes: float) -> ReadAnswer:
        seconds = self._seconds(minutes)
        series = [SIGNUPS] if distinct == SIGNUPS else [etype]
        # One id's counts of one type, then its sketches: two or three round trips, on the loop.
        read, as_of = await self._read_quick(lambda: self._visitors([tracking_id], series, seconds))
        data = {"type": etype, "trackingId": tracking_id, distinct: _figure(read.by_id.get(tracking_id))}
        if distinct == SIGNUPS and not self.reader.settings.email_salt:
            # Not a lost part, but a reason the figure may be 0: say it rather than let it pass as exact.
            data["note"] = NO_SALT_NOTE
        return self._distinct_answer(read, as_of, seconds, data)

    async def live(self, tracking_id: str | None) -> ReadAnswer:
        seconds = self.reader.settings.live_seconds
        if tracking_id is None:  # every block's total sketch of each type: kilobytes, off the loop
            read, as_of = await self._read(lambda: self._visitors([], EVENT_TYPES, seconds))
            figure = read.total
        else:
            read, as_of = await self._read_quick(lambda: self._visitors([tracking_id], EVENT_TYPES, seconds))
            figure = read.by_id.get(tracking_id)
        return self._distinct_answer(read, as_of, seconds, {"trackingId": tracking_id, "visitors": _figure(figure)})

    def _visitors(self, ids: list[str], series: Sequence[str], seconds: int) -> tuple[DistinctRead, float]:
        as_of = self.reader.clock.time()
        return self.reader.read_visitors(ids, series, seconds, total=not ids, per_series=False), as_of

    def _distinct_answer(self, read: DistinctRead, as_of: float, seconds: int, data: dict[str, Any]) -> ReadAnswer:
        """What every distinct read answers: the figure with its bounds and, when a sketch the counts
        say must be there was lost, corrupt or restored, ``incomplete`` and the parts and why."""
        bucket = self.reader.settings.bucket_seconds
        if read.incomplete:
            data = {**data, "incompleteParts": [gap.to_json(bucket) for gap in read.incomplete]}
        return ReadAnswer(as_of, seconds, bucket, bool(read.incomplete), read.lag_seconds, data, self.reader.bound_seconds(seconds))

    def ready(self) -> tuple[bool, str]:
        health = self.reader.store.health()
        return (True, health.detail) if health.ok else (False, health.unreachable() or health.detail)
