"""The two interfaces the HTTP layer and ``ingest`` stand on, and the small in-process
implementations that make ``serve`` honest for one process until Store v2's writer and reader are
connected (see :mod:`tui.service.wiring`).

- A :class:`Sink` takes accepted events and returns only once they are durable.
- A :class:`Reader` answers the read API: every answer is a :class:`ReadAnswer`, which carries
  what every response must show (as-of time, window, bucket bound, ``incomplete``, lag).

:class:`SpoolSink` appends to the real :class:`~tui.service.spool.Spool` and then tells its
listeners (the Store v2 writer in :mod:`tui.service.store_ports`; an in-process count in the HTTP
layer's tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from tui.clock import Clock
from tui.ingest.decode import IngestEvent
from tui.service.spool import Position, Spool


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

    async def distinct_for(self, etype: str, tracking_id: str, distinct: str, minutes: float) -> ReadAnswer:
        """One id's distinct ``visitors`` of ``etype`` (or, for ``signup``, its distinct ``signups``)
        over the window: ``data[distinct]`` is ``{"estimate", "lower", "upper"}``."""
        ...

    async def live(self, tracking_id: str | None) -> ReadAnswer:
        """Distinct visitors over the last ``live_minutes``, every type united: of one id, or of
        every id without one; ``data["visitors"]`` is ``{"estimate", "lower", "upper"}``."""
        ...

    def ready(self) -> tuple[bool, str]: ...


class SpoolSink:
    """A :class:`Sink` over the spool; ``listeners`` see each batch once it is durable."""

    def __init__(self, spool: Spool, clock: Clock, listeners: Sequence[Callable[[Sequence[IngestEvent], Position], None]] = ()) -> None:
        self.spool = spool
        self._clock = clock
        self._listeners = list(listeners)

    async def accept(self, events: list[IngestEvent]) -> None:
        await asyncio.wrap_future(self.spool.submit(events, lambda end: self._hand_over(events, end)))

    def _hand_over(self, events: Sequence[IngestEvent], end: Position) -> None:
        """In the spool's commit thread, in spool order (see :meth:`Spool.submit`)."""
        for listener in self._listeners:
            listener(events, end)

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
