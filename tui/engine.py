"""The engine under both faces (headless and dashboard): generate, count, flush, read, publish.

The writer side runs in one worker thread: it asks the :class:`~tui.events.Pacer` how many events
are due, builds them, appends them to the events log, counts them into the :class:`~tui.window.Ledger`
and, once a second or when a bucket closes, writes the ledger's changed buckets to the store. When
the store is unreachable, buckets stay dirty (bounded by the window) and are written on a later try,
with backoff; when the store has lost its data (new generation), every bucket still held is written
again. The reader side (:meth:`Engine.read_view`, :meth:`Engine.publish`) may run on any thread.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from tui.clock import Clock, SystemClock
from tui.events import Event, EventFactory, Pacer, iso_ms
from tui.settings import Settings
from tui.shutdown import describe_crash
from tui.store import Store, StoreUnavailable
from tui.window import Ledger, WindowView, bucket_of, cover, key_ttl, summarize, window_range

MAX_BATCH = 10_000  # events built per step at most, so stop and flush stay responsive
TICK_SECONDS = 0.05  # events are made in batches at most this far apart: 20 wake-ups a second
MAX_BACKOFF_SECONDS = 0.5  # a returning server is written to within half a second
RATE_SAMPLE_SECONDS = 2.0  # measured rate: events over about this long
BEHIND_RATIO = 0.95  # measured below this share of the configured rate over a full sample: behind
BEHIND_BACKLOG_SECONDS = 0.25  # or more than this much of the rate's events due and not yet made


@dataclass(frozen=True)
class EngineStatus:
    """An immutable reading of the writer side, for the status line and the headless stderr."""

    configured_rate: float
    measured_rate: float
    generated: int
    paused: bool
    generating: bool
    last_flush_at: float | None  # wall time of the last successful flush
    last_flush_ms: float | None
    store_error: str | None  # why the last flush failed, while it keeps failing
    unflushed_buckets: int
    unflushed_events: int  # counted here, not yet confirmed by the store (see Engine.unflushed_events)
    restores: int  # times the store lost its data and this writer wrote its buckets back
    #: The generator cannot keep up: ``measured_rate`` is well below ``configured_rate`` (see
    #: :data:`BEHIND_RATIO`), so a run makes fewer events than asked. Shown, never hidden.
    behind: bool = False


class EventsLogError(Exception):
    """The events log could not be written (full disk, closed pipe): the run must stop."""


class Engine:
    """Generator, ledger and store, for one process. See the module docstring."""

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
        on_store_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.generate = generate
        self.writer_id = writer_id or secrets.token_hex(6)
        #: What people see (``--writer-name``); ``writer_id`` stays the unique key in the store.
        self.writer_name = writer_name or default_writer_name()
        self.flush_interval = flush_interval
        self._factory = EventFactory(settings.tracking_ids, seed)
        self._events_log = events_log
        self._pacer = Pacer(settings.events_per_second, self.clock.monotonic())
        self._ledger = Ledger(settings.bucket_seconds)
        self._lock = threading.Lock()  # guards the pacer and settings against the control methods
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_wall_ms = int(self.clock.time() * 1000)
        self._next_flush = self.clock.monotonic() + flush_interval / 2  # off-beat with a 1 s reader
        self._flushed_bucket = bucket_of(self._last_wall_ms, settings.bucket_seconds)
        self._backoff = 0.0
        self._generation: str | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._last_flush_at: float | None = None
        self._last_flush_ms: float | None = None
        self._store_error: str | None = None
        self._restores = 0
        #: Called from the writer thread when a flush starts failing or succeeds again, so a caller
        #: can report an outage at once rather than at its next refresh.
        self.on_store_change = on_store_change
        #: Why the writer thread died (None while it runs): a process that can no longer count must
        #: stop, so :attr:`on_fatal` is called with the one-line reason and the caller ends the run.
        self.fatal: str | None = None
        self.on_fatal: Callable[[str], None] | None = None
        self.missed_events = 0  # due by the end of the run but never made (set by stop)
        self._unflushed = 0  # Ledger.unconfirmed() after the last flush; the ledger is the writer's alone
        self._rate_since = self.clock.monotonic()  # when the rate last changed or the generator resumed
        self._backlog = 0  # events due but not yet made after the last step: the generator is behind

    # -- controls (any thread) -------------------------------------------------------------------

    def set_rate(self, rate: float) -> None:
        """Change the rate (checked like the settings file); takes effect at the next step."""
        with self._lock:
            self.settings = self.settings.with_rate(rate)
            self._pacer.set_rate(self.settings.events_per_second, self.clock.monotonic())
            self._rate_since = self.clock.monotonic()
        self._wake.set()

    def set_window(self, minutes: float) -> None:
        """Change the window (checked like the settings file); the next read uses it."""
        with self._lock:
            self.settings = self.settings.with_window(minutes)

    def pause(self) -> None:
        with self._lock:
            self._pacer.pause(self.clock.monotonic())

    def resume(self) -> None:
        with self._lock:
            self._pacer.resume(self.clock.monotonic())
            self._rate_since = self.clock.monotonic()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._pacer.paused

    # -- writer side (the worker thread) ---------------------------------------------------------

    def start(self) -> float:
        """Run the writer side in a daemon thread until :meth:`stop`; returns the monotonic start,
        from which the pacer counts (so a run of D seconds at R/s makes exactly D x R events)."""
        started = self.clock.monotonic()
        with self._lock:
            paused = self._pacer.paused
            self._pacer = Pacer(self.settings.events_per_second, started)
            if paused:
                self._pacer.pause(started)
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
        except EventsLogError as exc:
            self.fatal = f"the writer stopped: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure ends counting: say so, never go on silently
            self.fatal = describe_crash("the writer", exc)
        if self.fatal is not None:
            if self.on_fatal is not None:
                self.on_fatal(self.fatal)

    def step(self, until: float | None = None) -> float:
        """Generate what is due (up to the monotonic time ``until``, default now) and flush if it is
        time; returns how long the caller may wait."""
        now = self.clock.monotonic() if until is None else min(until, self.clock.monotonic())
        behind = False
        if self.generate:
            with self._lock:
                due = self._pacer.due(now)
                count = min(due, MAX_BATCH)
                self._pacer.taken(count)
                behind = due > count
                self._backlog = due - count
            if count:
                self._emit(count)
            self._sample(now)
        wall_bucket = bucket_of(int(self.clock.time() * 1000), self.settings.bucket_seconds)
        bucket_closed = wall_bucket != self._flushed_bucket and self._store_error is None
        if now >= self._next_flush or bucket_closed:
            self.flush()
        if behind:
            return 0.0
        with self._lock:
            until_event = self._pacer.seconds_until_next(self.clock.monotonic()) if self.generate else self.flush_interval
        return max(TICK_SECONDS, min(until_event, max(0.0, self._next_flush - self.clock.monotonic())))

    def _emit(self, count: int) -> None:
        """Build ``count`` events stamped evenly since the last batch, log them, count them."""
        end_ms = int(self.clock.time() * 1000)
        start_ms = min(self._last_wall_ms, end_ms)
        span = end_ms - start_ms
        make = self._factory.make
        events: list[Event] = [make(start_ms + (span * (i + 1)) // count) for i in range(count)]
        self._last_wall_ms = end_ms
        if self._events_log is not None:
            dumps = json.dumps
            try:
                self._events_log.write("".join(dumps(e.doc, separators=(",", ":")) + "\n" for e in events))
            except OSError as exc:
                raise EventsLogError(f"events log {getattr(self._events_log, 'name', '')}: {exc.strerror or exc}") from exc
        self._ledger.record(events)

    def ingest(self, events: Iterable[Event]) -> None:
        """Count events that come from elsewhere (a feed, a benchmark); call from the writer's thread."""
        self._ledger.record(events)

    def _sample(self, now: float) -> None:
        samples = self._samples
        samples.append((now, self._pacer.emitted))
        while len(samples) > 2 and samples[1][0] <= now - RATE_SAMPLE_SECONDS:
            samples.popleft()

    def flush(self) -> bool:
        """Write the changed buckets to the store. On failure keep them for the next try (backoff)."""
        mono = self.clock.monotonic()
        now = self.clock.time()
        settings = self.settings
        taken = {}
        # Forget what left the window first, so a long outage cannot grow the buffer.
        self._ledger.prune(window_range(now, settings.window_seconds, settings.bucket_seconds).start)
        try:
            generation = self.store.generation()
            if self._generation is not None and generation != self._generation:
                self._ledger.mark_dirty()  # the store lost data or servers: write back all we hold
                self._restores += 1
            self._generation = generation
            taken = self._ledger.take_dirty()
            started = self.clock.monotonic()
            ttl = key_ttl(settings.window_seconds, settings.bucket_seconds)
            self.store.write_buckets(self.writer_id, taken, settings.bucket_seconds, ttl)
            self._ledger.confirm(taken)
        except StoreUnavailable as exc:
            self._ledger.mark_dirty(taken)
            self._unflushed = self._ledger.unconfirmed()
            self._set_store_error(str(exc))
            self._backoff = min(MAX_BACKOFF_SECONDS, max(0.1, self._backoff * 2))
            self._next_flush = mono + self._backoff
            return False
        self._unflushed = self._ledger.unconfirmed()
        self._last_flush_ms = (self.clock.monotonic() - started) * 1000
        self._last_flush_at = now
        self._set_store_error(None)
        self._backoff = 0.0
        self._next_flush = mono + self.flush_interval
        self._flushed_bucket = bucket_of(int(now * 1000), settings.bucket_seconds)
        return True

    def _set_store_error(self, error: str | None) -> None:
        """Record why flushing fails (None: it works); tell ``on_store_change`` when that flips."""
        if (error is None) != (self._store_error is None) and self.on_store_change is not None:
            self.on_store_change()
        self._store_error = error

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
        end = at if at is not None else self.clock.monotonic()
        if self.generate and not self._pacer.paused:
            # Due by the end but more than one last batch: the generator was behind. Reported, not made.
            due = self._pacer.due(end)
            self.missed_events = due if due > MAX_BATCH else 0
        if self.generate and self.fatal is None and self._pacer.due(end) <= MAX_BATCH:  # the last tick's events, not a backlog
            try:
                self.step(until=end)
            except EventsLogError as exc:
                self.fatal = f"the writer stopped: {exc}"
        self.pause()  # stopped for good: a second stop only retries the flush
        if self._events_log is not None:
            try:
                self._events_log.flush()
            except OSError as exc:  # e.g. a full disk: the counts still go to the store below
                self.fatal = self.fatal or f"the writer stopped: events log: {exc.strerror or exc}"
        deadline = self.clock.monotonic() + flush_timeout
        while True:
            try:
                if self.flush():
                    return True
            except Exception as exc:  # noqa: BLE001 - stopping ends with a one-line message, not a traceback
                self.fatal = self.fatal or describe_crash("the last flush", exc)
                return False
            if self.clock.monotonic() >= deadline:
                return False
            time.sleep(min(self._backoff, 0.2))  # a pause between retries, not a synchronization

    def unflushed_events(self) -> int:
        """Events counted here that the store has not confirmed: buffered during an outage, or lost
        for good once they left the window unwritten. Exact: a bucket counts as written only when
        the store confirmed this writer's absolute count for it. As of the last flush attempt (the
        ledger belongs to the writer thread; :meth:`stop` ends with one)."""
        return self._unflushed

    # -- reader side (any thread) ------------------------------------------------------------------

    def read_view(self, series: bool = False) -> WindowView:
        """Read the current window from the store and summarize it. Raises StoreUnavailable.

        By default it reads the few blocks that tile the window (fast at any N); ``series=True``
        reads every bucket instead, for the dashboard's per-bucket sparklines.
        """
        settings = self.settings
        now = self.clock.time()
        buckets = window_range(now, settings.window_seconds, settings.bucket_seconds)
        blocks = [(1, i) for i in buckets] if series else cover(buckets)
        counts = self.store.read_buckets(blocks, settings.bucket_seconds)
        return summarize(now, settings.window_seconds, settings.bucket_seconds, counts)

    def publish(self, view: WindowView) -> None:
        """Store the per-type summary keys (only if fresher than what is there). Raises StoreUnavailable."""
        self.store.publish_summaries(summary_documents(view), key_ttl(view.window_seconds, view.bucket_seconds))

    def refresh(self, series: bool = False) -> WindowView:
        """What every refresh does: read the window, then publish it to the summary keys."""
        view = self.read_view(series)
        self.publish(view)
        return view

    def _short_of_rate(self, samples: list[tuple[float, int]], rate: float, since: float) -> bool:
        """Made well under the rate over a whole sample taken since the rate last changed (right
        after ``+`` the old rate is still in the sample, which is not being behind)."""
        recent = [s for s in samples if s[0] >= since]
        if not self.generate or self._pacer.paused or len(recent) < 2:
            return False
        span = recent[-1][0] - recent[0][0]
        return span >= RATE_SAMPLE_SECONDS * 0.9 and (recent[-1][1] - recent[0][1]) / span < BEHIND_RATIO * rate

    def status(self) -> EngineStatus:
        with self._lock:
            samples = list(self._samples)
            rate = self.settings.events_per_second
            paused = self._pacer.paused
            generated = self._pacer.emitted
            backlog = self._backlog if self.generate and not paused else 0
            since = self._rate_since
        measured = 0.0
        if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
            measured = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        return EngineStatus(
            configured_rate=rate,
            measured_rate=measured,
            generated=generated,
            paused=paused,
            generating=self.generate,
            last_flush_at=self._last_flush_at,
            last_flush_ms=self._last_flush_ms,
            store_error=self._store_error,
            unflushed_buckets=self._ledger.bucket_count() if self._store_error else 0,
            unflushed_events=self._unflushed,
            restores=self._restores,
            behind=backlog > max(1.0, rate * BEHIND_BACKLOG_SECONDS) or self._short_of_rate(samples, rate, since),
        )


def default_writer_name() -> str:
    """``host-pid``: readable, and unique among the processes of one host."""
    return f"{socket.gethostname()}-{os.getpid()}"


def summary_documents(view: WindowView) -> dict[str, dict[str, Any]]:
    """Each type's summary key value: the brief's two fields, plus when and over what window."""
    as_of_ms = int(view.as_of * 1000)
    return {
        etype: {
            **summary,
            "windowMinutes": view.window_minutes,
            "bucketSeconds": view.bucket_seconds,
            "asOf": iso_ms(as_of_ms),
            "asOfMs": as_of_ms,
        }
        for etype, summary in view.summary_json().items()
    }
