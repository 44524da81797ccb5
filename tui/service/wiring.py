"""The one place that decides what ``serve`` and ``ingest`` hand events to and read counts from.

TODO(lead), once Store v2 lands: replace the body of :func:`build` so that

- ``sink`` is the real writer: it appends to ``spool`` (durable before ``accept`` returns), counts
  into its ledger, flushes to the store observing ``metrics.flush_seconds`` and counting
  ``metrics.store_errors``, saves its checkpoint (the flushed spool position) with
  ``state.save_checkpoint`` and calls ``spool.release(position)``; at start it replays
  ``spool.records(after=checkpoint)`` with ``state.writer_id`` as its identity;
- ``reader`` is Store v2's reader (answers from memcached, ``incomplete`` from the store), raising
  :class:`~tui.service.ports.ReadUnavailable` while the store is down;
- ``tick`` does the writer's periodic flush; ``close`` flushes what is left.

Until then, :class:`~tui.service.ports.SpoolSink` and :class:`~tui.service.ports.LocalCounts` are an
honest single-process service: counts are what this spool holds, replayed at start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tui.clock import Clock
from tui.service.config import retention_seconds
from tui.service.metrics import Metrics
from tui.service.ports import LocalCounts, Reader, Sink, SpoolSink
from tui.service.spool import Spool
from tui.service.state import StateDir
from tui.settings import Settings


@dataclass
class Service:
    """A built sink and reader, what to run periodically, and how to stop."""

    sink: Sink
    reader: Reader
    spool: Spool
    #: Called about once a second by the server (flushes, pruning).
    tick: Callable[[], None]
    #: Drain and close; called once, after the last request.
    close: Callable[[], None]


def build(settings: Settings, state: StateDir, clock: Clock, metrics: Metrics, spool_bytes: int) -> Service:
    """The sink and reader for one process over ``state`` (see the module's note for the lead)."""
    spool = Spool(state.spool_path, capacity_bytes=spool_bytes)
    counts = LocalCounts(clock, settings.bucket_seconds, retention_seconds(settings))
    for record in spool.records():
        counts.add(record.events)
    counts.prune(spool)
    return Service(SpoolSink(spool, clock, [counts.add]), counts, spool, lambda: counts.prune(spool), spool.close)
