"""The engine under both faces (headless and dashboard): generate, count, flush, read, publish.

The writer side runs in one worker thread: it asks the :class:`~tui.events.Pacer` how many events
are due, builds them, appends them to the events log, counts them into the :class:`~tui.window.Ledger`
and, once a second or when a bucket closes, stages the deltas since the last flush in its
:class:`~tui.store.writer_state.WriterState` and merges them into the store (exactly once, see
:mod:`tui.store.merge`). When the store is unreachable, deltas stay pending and are written on a
later try, with backoff. The writer repairs what the store lost: when the store's generation changes
(restart, ring change), and every :data:`VERIFY_SECONDS` for the blocks it wrote, it checks that its
entries are still there and writes back its absolute counts where not (while the block is in its
window). The reader side (:meth:`Engine.read_view`, :meth:`Engine.publish`) may run on any thread.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from tui.clock import Clock, SystemClock
from tui.events import Event, EventFactory, Pacer, generated_ids
from tui.settings import Settings, SettingsError
from tui.shutdown import describe_crash
from tui.store import Store, StoreUnavailable, prefix_settings
from tui.store.layout import Layout
from tui.store.publishing import summary_documents
from tui.store.reads import BlocksRead
from tui.store.repair import absolute_counts, verify
from tui.store.writer_state import WriterState, deltas_by_key
from tui.window import (
    BucketCounts,
    Ledger,
    WindowView,
    bucket_of,
    key_ttl,
    plan_window,
    summarize,
    window_range,
)

MAX_BATCH = 10_000  # events built per step at most, so stop and flush stay responsive
TICK_SECONDS = 0.05  # events are made in batches at most this far apart: 20 wake-ups a second
MAX_BACKOFF_SECONDS = 0.5  # a returning server is written to within half a second
RATE_SAMPLE_SECONDS = 2.0  # measured rate: events over about this long
BEHIND_RATIO = 0.95  # measured below this share of the configured rate over a full sample: behind
BEHIND_BACKLOG_SECONDS = 0.25  # or more than this much of the rate's events due and not yet made
VERIFY_SECONDS = 5.0  # how often a writer checks that the blocks it wrote still carry its entry
MAX_SERIES_BUCKETS = 8_640  # the per-bucket series covers at most the newest day of 10 s buckets


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
    unflushed_events: int  # counted here, not yet in the store's single buckets (Engine.buffered_events)
    restores: int  # times the store lost its data and this writer wrote its buckets back
    #: Events counted under "(other)" because the type already had max_tracking_ids distinct ids
    #: in the window (or the id was not on the allow-list): in the totals, never dropped silently.
    other_events: int = 0
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
        #: Short (8 characters): it is recorded in every value this writer touches.
        self.writer_id = writer_id or secrets.token_urlsafe(6)
        #: What people see (``--writer-name``); ``writer_id`` stays the unique key in the store.
        self.writer_name = writer_name or default_writer_name()
        self.flush_interval = flush_interval
        ids = generated_ids(settings.generated_ids) if settings.generated_ids else settings.tracking_ids
        self._factory = EventFactory(ids, seed, settings.zipf)
        self._events_log = events_log
        self._pacer = Pacer(settings.events_per_second, self.clock.monotonic())
        allowed = frozenset(settings.tracking_ids) if settings.allow_only_listed_ids else None
        self._ledger = Ledger(settings.bucket_seconds, settings.max_tracking_ids, allowed)
        self._state = WriterState(self.writer_id)
        self._layout: Layout | None = None
        self._next_verify = self.clock.monotonic() + VERIFY_SECONDS
        self._verify_cursor = 0  # where the rotating sample of shard values to verify goes on
        #: Events whose deltas outlived the store's retention before the store took them (an outage
        #: longer than the retention): counted in unwritten_events, never silently dropped.
        self._expired_unwritten = 0
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
        #: Events handed in by another thread (``serve``, ``ingest``), each batch with where it ends
        #: in the spool; the writer thread drains them into its ledger at each flush.
        self._inbox: queue.SimpleQueue[tuple[Sequence[tuple[str, str, int]], Any]] = queue.SimpleQueue()
        self._inbox_position: Any = None  # the spool position of the last batch drained
        #: Called in the writer thread after a flush staged its deltas and before it writes them, with
        #: the spool position they cover: ``serve`` saves its checkpoint there (see tui.service.writer).
        self.on_staged: Callable[[Any], None] | None = None
        self._unflushed = 0  # buffered_events() after the last flush; the writer's state is its thread's alone
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
        except (EventsLogError, SettingsError) as exc:  # a full disk; the prefix now set up otherwise
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

    def submit(self, events: Sequence[tuple[str, str, int]], position: Any = None) -> None:
        """Hand in durable events from any thread (``(type, tracking_id, ts_ms, ...)`` each); they
        are counted at the writer's next flush. ``position`` (where they end in the spool) is passed
        to :attr:`on_staged` once a flush has staged them."""
        self._inbox.put((events, position))

    def _drain(self) -> None:
        while True:
            try:
                events, position = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._ledger.record(events)
            if position is not None:
                self._inbox_position = position

    def restore(self, plain: Mapping[str, Any]) -> None:
        """Take up the writer state a previous run of this writer saved (its pending deltas and their
        sequence numbers): re-sending them is idempotent, so nothing is lost or counted twice."""
        state = WriterState.from_plain(plain)
        if state.writer_id != self.writer_id:
            raise ValueError(f"saved writer state is writer {state.writer_id}'s, not {self.writer_id}'s")
        self._state = state

    def _sample(self, now: float) -> None:
        samples = self._samples
        samples.append((now, self._pacer.emitted))
        while len(samples) > 2 and samples[1][0] <= now - RATE_SAMPLE_SECONDS:
            samples.popleft()

    def layout(self, action: str = "reading the prefix's metadata") -> Layout:
        """The prefix's layout, agreed with its meta key on first use (PrefixConflict if it differs);
        ``action`` names what the caller was doing, for the message if the store is unreachable."""
        if self._layout is None:
            self._layout = self.store.open_prefix(prefix_settings(self.settings), action)
        return self._layout

    def flush(self, everything: bool = False) -> bool:
        """Merge the deltas since the last flush into the store: single buckets at once, coarser
        blocks once closed, a slice at a time (all with ``everything``, as at exit). On failure
        they stay pending (backoff)."""
        mono = self.clock.monotonic()
        now = self.clock.time()
        settings = self.settings
        oldest = window_range(now, settings.window_seconds, settings.bucket_seconds).start
        self._drain()
        self._ledger.prune(oldest)  # repairable while in this writer's window
        try:
            generation = self.store.generation()
            if self._generation is not None and generation != self._generation:
                self._layout = None  # the meta key may be gone with the rest
                self._state.check.update(self._state.confirmed)  # verify all we wrote; restore what is lost
                self._restores += 1
            self._generation = generation
            layout = self.layout("writing buckets")
            self._expired_unwritten += self._state.forget(lambda b: layout.expires_at(b) > now, self._ledger.holds)
            if mono >= self._next_verify:
                self._next_verify = mono + VERIFY_SECONDS
                damaged, self._verify_cursor = verify(self.store, layout, self._state, self._verify_cursor)
                self._state.check.update(damaged)
            self._state.stage(deltas_by_key(self._ledger.take_deltas(), layout))
            if self.on_staged is not None:
                self.on_staged(self._inbox_position)
            started = self.clock.monotonic()
            self.store.write(layout, self._state, lambda ident: absolute_counts(self._ledger, layout, ident, self._state.confirmed), now, everything)
        except StoreUnavailable as exc:
            self._unflushed = self.buffered_events()
            self._set_store_error(str(exc))
            self._backoff = min(MAX_BACKOFF_SECONDS, max(0.1, self._backoff * 2))
            self._next_flush = mono + self._backoff
            return False
        self._unflushed = self.buffered_events()
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
                if self.flush(everything=True):
                    return True
            except Exception as exc:  # noqa: BLE001 - stopping ends with a one-line message, not a traceback
                self.fatal = self.fatal or describe_crash("the last flush", exc)
                return False
            if self.clock.monotonic() >= deadline:
                return False
            time.sleep(min(self._backoff, 0.2))  # a pause between retries, not a synchronization

    def buffered_events(self) -> int:
        """Events counted here that are not yet in the store's single buckets: 0 right after a
        successful flush, growing while the store is unreachable (what the status line shows)."""
        return self._state.unwritten_events(span=1) + self._ledger.unstaged_events() + self._expired_unwritten

    def unwritten_events(self) -> int:
        """Exactly how many counted events the store has not confirmed: buffered during an outage,
        or lost for good once they expired unwritten (0 after a successful flush). Call it from the
        writer's thread, or after :meth:`stop`; other threads read :attr:`EngineStatus.unflushed_events`."""
        return self._state.unwritten_events() + self._ledger.unstaged_events() + self._expired_unwritten

    def writer_state(self) -> dict[str, Any]:
        """The writer's state as plain data (what a spool would persist)."""
        return self._state.to_plain()

    # -- reader side (any thread) ------------------------------------------------------------------

    def read_view(self, series: bool = False, window_seconds: int | None = None, ids: bool = True) -> WindowView:
        """Read the current window from the store and summarize it. Raises StoreUnavailable.

        The counts by id come from the fewest kept blocks that tile the window; ``series=True`` also
        reads the heads of the single buckets (per-type totals only: small, fast at any number of
        ids) for the dashboard's per-bucket sparklines. Parts that could not be read whole are in
        ``view.incomplete``; the old edge's rounding, if any, is in ``view.bound_seconds``.
        ``ids=False`` skips the counts by id (the view's summary is then empty): the series alone
        costs the same at 10 and at 100,000 ids.
        """
        settings = self.settings
        seconds = settings.window_seconds if window_seconds is None else window_seconds
        layout = self.layout("reading buckets")
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
        return summarize(now, seconds, settings.bucket_seconds, found.counts, series_totals=totals, incomplete=gaps, rounded=rounded)

    def read_one(self, etype: str, tracking_id: str, window_seconds: int) -> WindowView:
        """One id's count of one type over a window: the heads and that id's one shard per block,
        so the cost does not grow with the number of ids. Raises StoreUnavailable."""
        layout = self.layout("reading buckets")
        now = self.clock.time()
        buckets = window_range(now, window_seconds, self.settings.bucket_seconds)
        blocks, rounded = plan_window(buckets, layout.usable(now))
        found = self.store.read(layout, blocks, only=(etype, tracking_id))
        return summarize(now, window_seconds, self.settings.bucket_seconds, found.counts, incomplete=sorted(found.gaps, key=lambda g: (g.first, g.why)), rounded=rounded)

    def read_id_series(self, etype: str, tracking_id: str, buckets: range) -> dict[int, int]:
        """One id's count per single bucket (those still kept): its heads and one shard each."""
        layout = self.layout("reading buckets")
        usable = layout.usable(self.clock.time())
        found = self.store.read(layout, [(1, b) for b in buckets if usable((1, b))], only=(etype, tracking_id))
        return {index: counts.get(etype, {}).get(tracking_id, 0) for (_, index), counts in found.counts.items()}

    def read_buckets(self, buckets: range) -> dict[int, BucketCounts]:
        """Every writer's counts by id in these single buckets (the dashboard's 5 s rates compare
        the last few). Raises StoreUnavailable."""
        found = self.store.read(self.layout("reading buckets"), [(1, b) for b in buckets])
        return {index: counts for (_, index), counts in found.counts.items()}

    def publish(self, view: WindowView) -> bool:
        """Store the per-type and per-shard summary keys (only if fresher than what is there).

        Only a process whose window is the prefix's published window publishes (returns False
        otherwise), so two dashboards with different windows never flip the shared keys. Raises
        StoreUnavailable."""
        layout = self.layout()
        meta = self.store.meta
        if meta is None or meta.window_minutes != view.window_minutes:
            return False
        documents = summary_documents(view, layout)
        self.store.publish(documents, key_ttl(view.window_seconds, view.bucket_seconds))
        return True

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
            unflushed_events=self._unflushed,
            restores=self._restores,
            other_events=self._ledger.other_events,
            behind=backlog > max(1.0, rate * BEHIND_BACKLOG_SECONDS) or self._short_of_rate(samples, rate, since),
        )


def default_writer_name() -> str:
    """``host-pid``: readable, and unique among the processes of one host."""
    return f"{socket.gethostname()}-{os.getpid()}"
