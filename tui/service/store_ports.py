"""The real :class:`~tui.service.ports.Sink` and :class:`~tui.service.ports.Reader` of ``serve`` and
``ingest``: accepted events go to the spool (durable), then to this process's Store v2 writer; reads
are answered from the store, so any number of ``serve`` processes give the same answers.

Exactly once across ``kill -9``: the writer stages its deltas (each with a sequence number) and,
before it writes them, saves a checkpoint: the spool position the deltas cover and its state (the
staged, unconfirmed deltas). A restart takes up that state, re-sends what is pending (the store skips
a sequence number it already applied) and replays the spool after the position. Events after the
last checkpoint were never staged, so they cannot be in the store yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tui.clock import Clock
from tui.engine import Engine
from tui.events import iso_ms
from tui.history.source import HistorySource
from tui.service.ports import QueryError, ReadAnswer, ReadUnavailable, SpoolSink
from tui.service.spool import Position, Spool
from tui.service.state import StateDir
from tui.settings import SettingsError, check_window
from tui.store import StoreUnavailable
from tui.window import WindowView

T = TypeVar("T")


class WriterSink(SpoolSink):
    """Spool first (the 202 waits for it), then the writer's inbox. While the store is unreachable
    it stays ready (the spool keeps accepting until it is full) and its readiness text says so."""

    def __init__(self, spool: Spool, engine: Engine, clock: Clock) -> None:
        super().__init__(spool, clock, [engine.submit])
        self.engine = engine

    def ready(self) -> tuple[bool, str]:
        ready, why = super().ready()
        if ready and self.engine.status().store_error is not None:
            return True, "spool accepting; the store is unreachable, counts wait in the spool"
        return ready, why


def take_up(engine: Engine, spool: Spool, state: StateDir) -> None:
    """Restore the writer from its last checkpoint and replay the spool after it; from now on save a
    checkpoint at every flush and release the spool behind it (see the module's docstring)."""
    saved = state.load_checkpoint()
    after = None
    if isinstance(saved, Mapping) and "state" in saved:
        engine.restore(saved["state"])
        after = Position(*saved["position"])
    for record in spool.records(after=after):
        engine.submit(record.events, record.end)

    def checkpoint(position: Any) -> None:
        if position is None:
            return
        state.save_checkpoint({"position": position.to_json(), "state": engine.writer_state()})
        spool.release(position)

    engine.on_staged = checkpoint


class StoreReader:
    """Answers from the store through a read-only use of the writer's engine (its layout and clock)."""

    def __init__(self, engine: Engine, retention_seconds: int) -> None:
        self.engine = engine
        self.retention_seconds = retention_seconds
        self.history = HistorySource(engine.store, engine.settings)  # for /api/v1/aggregates and reports

    def _seconds(self, minutes: float) -> int:
        try:
            seconds = round(check_window(minutes, self.engine.settings.bucket_seconds, "minutes") * 60)
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

    @staticmethod
    def _answer(view: WindowView, data: dict[str, Any], lag: bool = True) -> ReadAnswer:
        """``lagSeconds``: now minus the end of the newest bucket holding events (from the heads)."""
        newest = None
        if lag:
            totals = [sum(view.series[t][i] for t in view.types) for i in range(len(view.buckets))]
            newest = max((view.buckets[i] for i, total in enumerate(totals) if total), default=None)
        seconds = None if newest is None else max(0.0, view.as_of - (newest + 1) * view.bucket_seconds)
        if view.incomplete:
            data = {**data, "incompleteParts": view.incomplete_json()}
        return ReadAnswer(view.as_of, view.window_seconds, view.bucket_seconds, bool(view.incomplete), seconds, data, view.approximation_seconds)

    async def summary(self, minutes: float) -> ReadAnswer:
        seconds = self._seconds(minutes)
        view = await self._read(lambda: self.engine.read_view(series=True, window_seconds=seconds))
        return self._answer(view, {"summary": view.summary_json()})

    async def summary_for(self, etype: str, tracking_id: str, minutes: float) -> ReadAnswer:
        seconds = self._seconds(minutes)
        view = await self._read(lambda: self.engine.read_one(etype, tracking_id, seconds))
        count = view.summary[etype].by_tracking_id.get(tracking_id, 0)
        return self._answer(view, {"type": etype, "trackingId": tracking_id, "count": count}, lag=False)

    async def series(self, etype: str, tracking_id: str | None, minutes: float, step_seconds: int) -> ReadAnswer:
        bucket = self.engine.settings.bucket_seconds
        if step_seconds % bucket:
            raise QueryError("step", f"must be a whole number of {bucket} s buckets, got {step_seconds} s")
        seconds = self._seconds(minutes)
        view = await self._read(lambda: self.engine.read_view(series=True, window_seconds=seconds))
        if tracking_id is None:
            per_bucket = dict(zip(view.buckets, view.series[etype]))
        else:
            per_bucket = await self._read(lambda: self.engine.read_id_series(etype, tracking_id, view.buckets))
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

    def ready(self) -> tuple[bool, str]:
        health = self.engine.store.health()
        return (True, health.detail) if health.ok else (False, health.unreachable() or health.detail)
