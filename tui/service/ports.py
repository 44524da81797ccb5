"""The two interfaces the HTTP layer and ``ingest`` stand on, and the small in-process
implementations that make ``serve`` honest for one process until Store v2's writer and reader are
connected (see :mod:`tui.service.wiring`).

- A :class:`Sink` takes accepted events and returns only once they are durable.
- A :class:`Reader` answers the read API: every answer is a :class:`ReadAnswer`, which carries
  what every response must show (as-of time, window, bucket bound, ``incomplete``, lag).

:class:`SpoolSink` appends to the real :class:`~tui.service.spool.Spool` and then tells its
listeners (here :class:`LocalCounts`, which counts what the spool holds, replayed at start).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from tui import EVENT_TYPES
from tui.clock import Clock
from tui.ingest.decode import IngestEvent
from tui.service.spool import Spool
from tui.settings import SettingsError, check_window
from tui.window import bucket_of, window_range


class QueryError(ValueError):
    """A read parameter the reader cannot answer for (HTTP 400); names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class ReadUnavailable(Exception):
    """The counts cannot be read now (the store is unreachable); HTTP 503. ``str()`` says why."""


class ReadAnswer(NamedTuple):
    """One read: the data and the facts every answer carries."""

    as_of: float
    window_seconds: int
    bucket_seconds: int
    #: True when some counts of the window are known to be missing (Store v2's flag).
    incomplete: bool
    #: Now minus the newest counted event, or None when nothing is counted.
    lag_seconds: float | None
    data: Mapping[str, Any]
    #: The true "±" of the counts when it is more than one bucket (a window past the finest level kept).
    bound_seconds: int | None = None


class Sink(Protocol):
    """Where accepted events go. ``accept`` returns once they are durable, or raises
    :class:`~tui.service.spool.SpoolFull` (429) or :class:`~tui.service.spool.SpoolError` (503)."""

    async def accept(self, events: list[IngestEvent]) -> None: ...

    def depth(self) -> int:
        """Events accepted but not yet in the store."""
        ...

    def age(self) -> float:
        """Seconds the oldest of them has waited."""
        ...

    def ready(self) -> tuple[bool, str]:
        """Whether new events can be accepted, and why not."""
        ...


class Reader(Protocol):
    """The read API's needs. ``minutes`` is checked by the reader (it knows the buckets and the
    retention) and refused with :class:`QueryError`; a store failure is :class:`ReadUnavailable`."""

    async def summary(self, minutes: float) -> ReadAnswer: ...

    async def summary_for(self, etype: str, tracking_id: str, minutes: float) -> ReadAnswer: ...

    async def series(self, etype: str, tracking_id: str | None, minutes: float, step_seconds: int) -> ReadAnswer: ...

    def ready(self) -> tuple[bool, str]: ...


class SpoolSink:
    """A :class:`Sink` over the spool; ``listeners`` see each batch once it is durable."""

    def __init__(self, spool: Spool, clock: Clock, listeners: Sequence[Callable[[Sequence[IngestEvent]], None]] = ()) -> None:
        self.spool = spool
        self._clock = clock
        self._listeners = list(listeners)

    async def accept(self, events: list[IngestEvent]) -> None:
        await self.spool.append(events)
        for listener in self._listeners:
            listener(events)

    def depth(self) -> int:
        return self.spool.depth()

    def age(self) -> float:
        return self.spool.age(self._clock.time())

    def ready(self) -> tuple[bool, str]:
        if self.spool.broken is not None:
            return False, self.spool.broken
        if self.spool.full:
            return False, f"the spool is full ({self.spool.capacity_bytes:,} bytes)"
        return True, "spool accepting"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


class LocalCounts:
    """A :class:`Reader` over counts kept in this process: per bucket, per (type, tracking id).

    Honest for one ``serve`` process: it counts exactly what the spool made durable, and at start
    it replays the spool, so a restart answers the same. Buckets older than the retention are
    dropped; the spool drops its segments on the same rule (:meth:`prune`).
    """

    def __init__(self, clock: Clock, bucket_seconds: int, retention_seconds: int) -> None:
        self._clock = clock
        self.bucket_seconds = bucket_seconds
        self.retention_seconds = retention_seconds
        self._ms = bucket_seconds * 1000
        self._buckets: dict[int, Counter[tuple[str, str]]] = {}
        self._empty: Counter[tuple[str, str]] = Counter()
        self._newest_ms: int | None = None

    def add(self, events: Iterable[IngestEvent]) -> None:
        """Count ``events`` (a :class:`SpoolSink` listener)."""
        ms, buckets = self._ms, self._buckets
        newest = self._newest_ms
        for event in events:
            bucket = buckets.get(event[2] // ms)
            if bucket is None:
                bucket = buckets[event[2] // ms] = Counter()
            bucket[event[0], event[1]] += 1
            if newest is None or event[2] > newest:
                newest = event[2]
        self._newest_ms = newest

    def prune(self, spool: Spool | None = None) -> None:
        """Forget buckets that no window can read; delete spool segments no replay needs."""
        now = self._clock.time()
        oldest = bucket_of(int((now - self.retention_seconds) * 1000), self.bucket_seconds) - 1
        for index in [b for b in self._buckets if b < oldest]:
            del self._buckets[index]
        if spool is not None:
            spool.release_older_than(now - self.retention_seconds - self.bucket_seconds)

    def _window(self, minutes: float) -> tuple[float, range]:
        try:
            seconds = round(check_window(minutes, self.bucket_seconds, "minutes") * 60)
        except SettingsError as exc:
            raise QueryError("minutes", str(exc).partition(": ")[2]) from None
        if seconds > self.retention_seconds:
            raise QueryError("minutes", f"at most {self.retention_seconds / 60:g} are kept, got {minutes:g}")
        now = self._clock.time()
        return now, window_range(now, seconds, self.bucket_seconds)

    def _answer(self, now: float, buckets: range, data: Mapping[str, Any]) -> ReadAnswer:
        lag = None if self._newest_ms is None else max(0.0, now - self._newest_ms / 1000)
        return ReadAnswer(now, (len(buckets) - 1) * self.bucket_seconds, self.bucket_seconds, False, lag, data)

    async def summary(self, minutes: float) -> ReadAnswer:
        now, buckets = self._window(minutes)
        by_tid: dict[str, Counter[str]] = {t: Counter() for t in EVENT_TYPES}
        for index in buckets:
            for (etype, tid), count in self._buckets.get(index, self._empty).items():
                by_tid[etype][tid] += count
        summary = {
            t: {"totalEventsCaptured": sum(c.values()), "eventsCapturedByTrackingIds": dict(sorted(c.items()))}
            for t, c in by_tid.items()
        }
        return self._answer(now, buckets, {"summary": summary})

    async def summary_for(self, etype: str, tracking_id: str, minutes: float) -> ReadAnswer:
        now, buckets = self._window(minutes)
        count = sum(self._buckets.get(index, self._empty).get((etype, tracking_id), 0) for index in buckets)
        return self._answer(now, buckets, {"type": etype, "trackingId": tracking_id, "count": count})

    async def series(self, etype: str, tracking_id: str | None, minutes: float, step_seconds: int) -> ReadAnswer:
        if step_seconds % self.bucket_seconds:
            raise QueryError("step", f"must be a whole number of {self.bucket_seconds} s buckets, got {step_seconds} s")
        now, buckets = self._window(minutes)
        per_step = step_seconds // self.bucket_seconds
        points: dict[int, int] = {}
        for index in buckets:
            counts = self._buckets.get(index, self._empty)
            if tracking_id is None:
                value = sum(n for (t, _), n in counts.items() if t == etype)
            else:
                value = counts.get((etype, tracking_id), 0)
            points[index // per_step] = points.get(index // per_step, 0) + value
        data = {
            "type": etype,
            "trackingId": tracking_id,
            "stepSeconds": step_seconds,
            "points": [{"start": _iso(step * step_seconds), "count": n} for step, n in sorted(points.items())],
        }
        return self._answer(now, buckets, data)

    def ready(self) -> tuple[bool, str]:
        return True, "counting in this process"
