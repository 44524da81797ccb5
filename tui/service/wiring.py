"""The one place that decides what ``serve``, ``ingest`` and the generator with ``--state-dir``
hand events to and read counts from: the spool, then this process's Store v2 writer
(:mod:`tui.service.store_ports`), and reads from the store. ``tick`` reports the writer's flushes
to the metrics and polls the anomaly watch (:mod:`tui.service.anomalies`); ``close`` stops the
writer with a last flush (what it could not write stays in the spool for the next start).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tui.clock import Clock
from tui.events import Event
from tui.ingest.decode import IngestEvent
from tui.pipeline import Pipeline, SpoolingError
from tui.service.anomalies import AlertSource, AnomalyPoller
from tui.service.config import retention_seconds
from tui.service.faults import Fault, fault_from_env
from tui.service.metrics import Metrics
from tui.service.publisher import Publisher
from tui.service.ports import Reader, Sink
from tui.service.spool import Spool, SpoolError, SpoolFull
from tui.service.state import StateDir
from tui.service.store_ports import StoreReader, WriterSink, take_up
from tui.settings import Settings, SettingsError
from tui.store import open_store


@dataclass(frozen=True)
class Spooled:
    """The spool that feeds a pipeline's writer, the sink the HTTP layer accepts into, the read
    API over the pipeline's reader, and its alerts."""

    spool: Spool
    sink: WriterSink
    reader: StoreReader
    alerts: AlertSource


def open_spool(pipeline: Pipeline, state: StateDir, spool_bytes: int) -> tuple[Spool, Fault | None]:
    """Open the spool over ``state`` in front of ``pipeline``'s writer: the writer takes up its
    checkpoint and the spool after it is replayed (call before the pipeline starts). Also the
    ``EVENTDASH_FAULT`` the tests ask for (None outside tests)."""
    fault = fault_from_env(os.environ)  # tests only; a malformed value is a usage error
    spool = Spool(state.spool_path, capacity_bytes=spool_bytes)
    take_up(pipeline.writer, spool, state, fault)
    return spool, fault


def spool_generator(pipeline: Pipeline, state: StateDir, spool_bytes: int) -> Spool:
    """The generator's batches go through the spool in ``state`` (group commit) before they are
    counted, with the same checkpoints as ``serve``'s (:func:`open_spool`). The caller closes the
    spool after the pipeline's last flush."""
    spool, fault = open_spool(pipeline, state, spool_bytes)
    generate_into(pipeline, spool, state, fault)
    return spool


def as_spooled(events: Sequence[Event]) -> list[IngestEvent]:
    """What the spool keeps of generated events: what is counted, and who for the distinct counts
    (no session id: nothing counts by it). The documents go to the events log."""
    return [IngestEvent(e.type, e.tracking_id, e.ts_ms, e.visitor_id, None, e.email_hash) for e in events]


def generate_into(pipeline: Pipeline, spool: Spool, state: StateDir, fault: Fault | None = None) -> None:
    """Route the generator's batches through ``spool``, which may be a server's too (``--listen
    --generate``): the spool hands every record to the writer in spool order, whichever thread
    appended it, so one checkpoint position covers both sources."""
    writer = pipeline.writer

    def durable(events: Sequence[Event]) -> None:
        spooled = as_spooled(events)
        try:
            spool.submit(spooled, lambda end: writer.submit(spooled, end)).result()
        except (SpoolFull, SpoolError) as exc:
            raise SpoolingError(f"--state-dir {state.path}: {exc}") from None
        if fault is not None:
            fault.reached("after-spool")

    pipeline.spool_generated = durable


def spool_into(pipeline: Pipeline, state: StateDir, clock: Clock, spool_bytes: int) -> Spooled:
    """:func:`open_spool`, and the sink that ``serve``'s HTTP ingest accepts into."""
    spool, _ = open_spool(pipeline, state, spool_bytes)
    pipeline.accepts_events = True
    reader = StoreReader(pipeline.reader, retention_seconds(pipeline.settings))
    return Spooled(spool, WriterSink(spool, pipeline.writer, clock), reader, AlertSource.of(pipeline))


@dataclass
class Service:
    """A built sink and reader, what to run periodically, and how to stop."""

    sink: Sink
    reader: Reader
    spool: Spool
    alerts: AlertSource
    #: Called about once a second by the server (flushes, the anomaly watch's poll).
    tick: Callable[[], None]
    #: Drain and close; called once, after the last request.
    close: Callable[[], None]


def build(settings: Settings, state: StateDir, clock: Clock, metrics: Metrics, spool_bytes: int) -> Service:
    """The sink and reader for one process over ``state``: the writer takes up its checkpoint and
    replays the spool after it before the first request is answered."""
    opened = open_store(settings, clock, chosen_by=settings.origin_of("backend"))
    print(f"eventdash: {opened.reason}", file=sys.stderr, flush=True)
    pipeline = Pipeline(settings, opened.store, clock=clock, generate=False, writer_id=state.writer_id)
    try:
        spooled = spool_into(pipeline, state, clock, spool_bytes)
    except SettingsError:
        opened.store.close()
        raise
    spool = spooled.spool
    pipeline.start()
    seen: dict[str, Any] = {"flush_at": None, "error": None}
    # The per-type summary keys, as the dashboard and headless keep them fresh, off the event loop
    # and (with memcached) out of this process's GIL.
    publisher = Publisher(settings, pipeline.reader)
    # Spikes and drops: judged as each bucket closes, in a thread (the poll reads the store).
    poller = AnomalyPoller(spooled.alerts)

    def tick() -> None:
        publisher.tick()
        poller.tick()
        status = pipeline.status()
        if status.last_flush_at != seen["flush_at"] and status.last_flush_ms is not None:
            seen["flush_at"] = status.last_flush_at
            metrics.flush_seconds.observe(status.last_flush_ms / 1000)
        if status.store_error is not None and status.store_error != seen["error"]:
            metrics.store_errors.labels("store").inc()
        seen["error"] = status.store_error
        if pipeline.fatal is not None and not seen.get("fatal"):
            seen["fatal"] = True  # the writer can no longer count: say so and stop like SIGTERM
            print(f"eventdash: error: {pipeline.fatal}; stopping", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

    def close() -> None:
        publisher.close()
        poller.close()  # before the store closes under a poll
        try:
            if not pipeline.stop():
                print(
                    f"eventdash: {pipeline.writer.unwritten_events():,} accepted events are not in the store yet "
                    f"({pipeline.status().store_error}); they stay in the spool and are written at the next start",
                    file=sys.stderr, flush=True,
                )
        finally:
            spool.close()
            opened.store.close()

    return Service(spooled.sink, spooled.reader, spool, spooled.alerts, tick, close)
