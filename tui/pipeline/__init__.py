"""The data's path through one process, stage by stage:

- sources hand events to the writer: the generator (:mod:`tui.pipeline.generator`), ``serve``'s HTTP
  ingest and ``ingest``'s NDJSON (:mod:`tui.service`, through :meth:`Writer.submit`);
- the writer (:mod:`tui.pipeline.writer`) owns the ledger, the writer state and the flushes;
- with a state directory, the generator's batches pass through the spool first
  (:attr:`Pipeline.spool_generated`, set by :func:`tui.service.wiring.spool_generator`);
- the reader (:mod:`tui.pipeline.reader`) reads windows, summarizes and publishes them;
- both share the prefix's layout (:mod:`tui.pipeline.prefix`).

:class:`Pipeline` builds them from the settings and a store, runs the writer's thread (stepping the
generator, if any, in it) and gives the faces (dashboard, headless, ``serve``) one status.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from tui.anomaly.watch import AnomalyWatch
from tui.anomaly.webhook import WebhookSender, sender_for
from tui.clock import Clock, SystemClock
from tui.events import Event
from tui.pipeline.generator import MAX_BATCH, EventsLogError, Generator, GeneratorStatus
from tui.pipeline.prefix import PrefixLayout
from tui.pipeline.reader import Reader
from tui.pipeline.writer import Writer, WriterStatus
from tui.scenarios import Scenario
from tui.settings import Settings, SettingsError
from tui.shutdown import describe_crash
from tui.store import Store

TICK_SECONDS = 0.05  # events are made in batches at most this far apart: 20 wake-ups a second
#: A backfill flushes after this many events: an hour at 2,000/s held whole until one last flush
#: took about a gigabyte (measured when the writer still collected the distinct items of its 7.2
#: million events; it now holds a sketch per bucket, type and id, still an hour of them at once).
BACKFILL_FLUSH_EVENTS = 500_000


class SpoolingError(Exception):
    """The generated events could not be made durable (the spool is full or failing): the run stops
    rather than count events it could lose."""


@dataclass(frozen=True, kw_only=True)
class PipelineStatus(WriterStatus, GeneratorStatus):
    """The generator's and the writer's readings together, as the faces show them."""

    #: This process writes counts: its generator runs, or another source hands its writer events.
    writing: bool


class Pipeline:
    """Generator (optional), writer and reader over one store, for one process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        events_log: TextIO | None = None,
        generate: bool = True,
        flush_interval: float = 1.0,
        writer_id: str | None = None,
        writer_name: str | None = None,
        scenarios: Sequence[Scenario] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.prefix = PrefixLayout(store, settings)
        self.generator = Generator(settings, self.clock, seed, events_log, scenarios) if generate else None
        self.writer = Writer(
            settings, store, self.prefix, clock=self.clock, flush_interval=flush_interval, writer_id=writer_id, writer_name=writer_name
        )
        self.reader = Reader(settings, store, self.prefix, self.clock)
        #: Spikes and drops (None when ``anomaly.enabled`` is off): each face that reads calls
        #: ``anomalies.poll()`` once per refresh; what fires or resolves goes to the webhook, if any.
        self.webhook: WebhookSender | None = sender_for(settings.anomaly)
        self.anomalies = (
            AnomalyWatch(
                settings.anomaly, settings.bucket_seconds, self.reader.read_closed_buckets, self.clock,
                kept_seconds=settings.retention_seconds[0], notify=self.webhook.send if self.webhook is not None else None,
            )
            if settings.anomaly.enabled else None
        )
        self._lock = threading.Lock()  # serializes the settings changes
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Why the writer thread died (None while it runs): a process that can no longer count must
        #: stop, so :attr:`on_fatal` is called with the one-line reason and the caller ends the run.
        self.fatal: str | None = None
        self.on_fatal: Callable[[str], None] | None = None
        self.missed_events = 0  # due by the end of the run but never made (set by stop)
        #: Another source (the spool of ``serve``'s HTTP ingest) hands this writer events.
        self.accepts_events = False
        #: With a state directory: makes a generated batch durable in the spool (group commit) and
        #: hands it to the writer; returns once it is durable. None: counted straight away.
        self.spool_generated: Callable[[Sequence[Event]], None] | None = None

    # -- controls (any thread) -------------------------------------------------------------------

    def set_rate(self, rate: float) -> None:
        """Change the rate (checked like the settings file); takes effect at the next step."""
        with self._lock:
            self.settings = self.settings.with_rate(rate)
            if self.generator is not None:
                self.generator.set_rate(self.settings.events_per_second)
        self._wake.set()

    def set_window(self, minutes: float) -> None:
        """Change the window (checked like the settings file); the next read uses it, and the writer
        keeps (and repairs) the buckets of the new window."""
        with self._lock:
            self.settings = self.settings.with_window(minutes)
            self.prefix.settings = self.writer.settings = self.reader.settings = self.settings

    def pause(self) -> None:
        if self.generator is not None:
            self.generator.pause()

    def resume(self) -> None:
        if self.generator is not None:
            self.generator.resume()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self.generator is not None and self.generator.paused

    # -- before the start --------------------------------------------------------------------------

    def holds_data(self, seconds: float) -> bool:
        """Whether the store holds counts in the single buckets of the last ``seconds`` (then a
        default backfill would only double what is there). Raises StoreUnavailable."""
        now = self.clock.time()
        now_bucket = int(now // self.settings.bucket_seconds)
        first = now_bucket - max(1, math.ceil(seconds / self.settings.bucket_seconds))
        layout = self.reader.layout()
        usable = layout.usable(now)
        # the heads' per-type totals say it: not the shards by id (an hour of them at 100,000 ids)
        heads = self.store.read(layout, [(1, b) for b in range(first, now_bucket + 1) if usable((1, b))], ids=False)
        return any(any(totals.values()) for totals in heads.totals.values())

    def backfill(self, seconds: float) -> int:
        """Generate the ``seconds`` before now (:meth:`Generator.backfill`), count them as any
        generated batch (the spool, the events log, the writer) and flush; returns how many events.
        Call it before :meth:`start`: the live run then begins where the past ends. If the store is
        away, the counts stay pending in the writer like any other (the run goes on)."""
        assert self.generator is not None and self._thread is None
        made = flushed = 0
        for batch in self.generator.backfill(seconds):
            self._hand_over(batch)
            made += len(batch)
            if made - flushed >= BACKFILL_FLUSH_EVENTS:  # the past goes out as it is made, not all held at once
                self.writer.flush(everything=True)
                flushed = made
        self.writer.flush(everything=True)
        return made

    # -- the writer's thread ---------------------------------------------------------------------

    def start(self) -> float:
        """Run the writer's thread until :meth:`stop`; returns the monotonic start, from which the
        generator counts (so a run of D seconds at R/s makes exactly D x R events)."""
        started = self.clock.monotonic()
        if self.generator is not None:
            self.generator.start(started)
        self._thread = threading.Thread(target=self._run, name="eventdash-writer", daemon=True)
        self._thread.start()
        return started

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                wait = self.step()
                if wait > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
        except (EventsLogError, SpoolingError, SettingsError) as exc:  # a full disk; the prefix now set up otherwise
            self.fatal = f"the writer stopped: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure ends counting: say so, never go on silently
            self.fatal = describe_crash("the writer", exc)
        if self.fatal is not None and self.on_fatal is not None:
            self.on_fatal(self.fatal)

    def step(self, until: float | None = None) -> float:
        """Generate what is due (up to the monotonic time ``until``, default now) and flush if it is
        time; returns how long the caller may wait."""
        now = self.clock.monotonic() if until is None else min(until, self.clock.monotonic())
        behind = False
        if self.generator is not None:
            events, behind = self.generator.make(now)
            if events:
                self._hand_over(events)
        self.writer.tick(now)
        if behind:
            return 0.0
        until_event = self.generator.seconds_until_next() if self.generator is not None else self.writer.flush_interval
        return max(TICK_SECONDS, min(until_event, self.writer.seconds_until_flush()))

    def _hand_over(self, events: list[Event]) -> None:
        """Count a generated batch. With a spool: durable first, then logged and flushed, so that
        every logged event survives a ``kill -9`` (README, "The generator with a state directory")."""
        assert self.generator is not None
        if self.spool_generated is None:
            self.generator.log(events)
            self.writer.ingest(events)
            return
        self.spool_generated(events)
        self.generator.log(events, flush=True)

    def stop(self, at: float | None = None, flush_timeout: float = 5.0) -> bool:
        """Stop generating (after the events due by the monotonic time ``at``, default now), then
        flush everything, retrying for up to ``flush_timeout`` seconds.

        Returns False if the store never took the last counts (they are reported, not silently lost).
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        generator = self.generator
        if generator is not None:
            end = at if at is not None else self.clock.monotonic()
            if not generator.paused:
                # Due by the end but more than one last batch: the generator was behind. Reported, not made.
                due = generator.due(end)
                self.missed_events = due if due > MAX_BATCH else 0
            if self.fatal is None and generator.due(end) <= MAX_BATCH:  # the last tick's events, not a backlog
                try:
                    self.step(until=end)
                except (EventsLogError, SpoolingError) as exc:
                    self.fatal = f"the writer stopped: {exc}"
            generator.pause()  # stopped for good: a second stop only retries the flush
            try:
                generator.flush_log()
            except EventsLogError as exc:  # e.g. a full disk: the counts still go to the store below
                self.fatal = self.fatal or f"the writer stopped: {exc}"
        if self.webhook is not None:
            self.webhook.close()  # what it could not deliver in time is in its status, not waited for
        try:
            return self.writer.flush_all(flush_timeout)
        except Exception as exc:  # noqa: BLE001 - stopping ends with a one-line message, not a traceback
            self.fatal = self.fatal or describe_crash("the last flush", exc)
            return False

    # -- status (any thread) ---------------------------------------------------------------------

    def status(self) -> PipelineStatus:
        if self.generator is not None:
            made = self.generator.status()
        else:
            rate = self.settings.events_per_second
            made = GeneratorStatus(configured_rate=rate, measured_rate=0.0, generated=0, paused=False, generating=False, behind=False)
        writing = self.generator is not None or self.accepts_events
        return PipelineStatus(**vars(made), **vars(self.writer.status()), writing=writing)


__all__ = ["EventsLogError", "Generator", "Pipeline", "PipelineStatus", "PrefixLayout", "Reader", "SpoolingError", "Writer"]
