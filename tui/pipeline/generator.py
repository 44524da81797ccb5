"""The generator, one of the writer's sources: it makes the events that are due at the configured
rate, which the pipeline makes durable (with a spool), writes to the events log and hands over; it
measures the rate it achieves and says when it falls behind.

It is stepped in the writer's thread (see :class:`tui.pipeline.Pipeline`); its controls (rate,
pause) may be called from any thread.

``--scenario`` shapes what it makes (:class:`tui.scenarios.ScenarioPlan`): the pacer still draws the
configured rate from the factory, and the plan thins or repeats those events by their offset from
the live start, so the traffic a scenario does not touch is the same as without it. ``--backfill``
makes the past before the live start (:meth:`Generator.backfill`): the same factory and plan, at
negative offsets, where no spike or drop applies and the wave keeps its phase.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from tui.clock import Clock
from tui.events import Event, EventFactory, Pacer, generated_ids
from tui.scenarios import Scenario, ScenarioPlan
from tui.settings import Settings

MAX_BATCH = 10_000  # events built per step at most, so stop and flush stay responsive
RATE_SAMPLE_SECONDS = 2.0  # measured rate: events over about this long
BEHIND_RATIO = 0.95  # measured below this share of the configured rate over a full sample: behind
BEHIND_BACKLOG_SECONDS = 0.25  # or more than this much of the rate's events due and not yet made


@dataclass(frozen=True, kw_only=True)
class GeneratorStatus:
    """An immutable reading of the generator, for the status line and the headless stderr."""

    configured_rate: float
    #: The rate the pacer draws at (the configured one, before the scenarios shape it).
    measured_rate: float
    #: Events made live, after the scenarios (a drop makes fewer, a spike more); not the backfill.
    generated: int
    paused: bool
    generating: bool
    #: The generator cannot keep up: ``measured_rate`` is well below ``configured_rate`` (see
    #: :data:`BEHIND_RATIO`), so a run makes fewer events than asked. Shown, never hidden.
    behind: bool


class EventsLogError(Exception):
    """The events log could not be written (full disk, closed pipe): the run must stop."""


class Generator:
    """Events at a rate, stamped evenly between steps, from a seeded factory."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        seed: int | None = None,
        events_log: TextIO | None = None,
        scenarios: Sequence[Scenario] = (),
    ) -> None:
        self.clock = clock
        ids = generated_ids(settings.generated_ids) if settings.generated_ids else settings.tracking_ids
        # The visitor pools are sized for the configured rate; a live rate change keeps them.
        self._factory = EventFactory(ids, seed, settings.zipf, settings.events_per_second, settings.email_salt)
        #: Spikes, drops and the wave; None when there are none (the events pass as made).
        self._plan = ScenarioPlan(scenarios, ids, seed) or None
        #: Wall ms of the live start, which scenario offsets count from (set again by :meth:`start`).
        self._start_ms = int(clock.time() * 1000)
        self._made = 0  # events made live, after the scenarios
        self._events_log = events_log
        self._rate = settings.events_per_second
        self._pacer = Pacer(self._rate, clock.monotonic())
        self._lock = threading.Lock()  # guards the pacer against the control methods
        self._last_wall_ms = int(clock.time() * 1000)
        self._samples: deque[tuple[float, int]] = deque()
        self._rate_since = clock.monotonic()  # when the rate last changed or the generator resumed
        self._backlog = 0  # events due but not yet made after the last step: the generator is behind

    # -- controls (any thread) -------------------------------------------------------------------

    def set_rate(self, rate: float) -> None:
        """Take up a rate already checked by the settings; takes effect at the next step."""
        with self._lock:
            self._rate = rate
            self._pacer.set_rate(rate, self.clock.monotonic())
            self._rate_since = self.clock.monotonic()

    def pause(self) -> None:
        with self._lock:
            self._pacer.pause(self.clock.monotonic())

    def resume(self) -> None:
        with self._lock:
            self._pacer.resume(self.clock.monotonic())
            self._rate_since = self.clock.monotonic()

    @property
    def paused(self) -> bool:
        return self._pacer.paused

    # -- the writer's thread ---------------------------------------------------------------------

    def start(self, started: float) -> None:
        """Count from the monotonic ``started`` on (a run of D seconds at R/s makes D x R events)."""
        with self._lock:
            paused = self._pacer.paused
            self._pacer = Pacer(self._rate, started)
            if paused:
                self._pacer.pause(started)
            # Live events are stamped from here on: not over the time a backfill took.
            self._start_ms = self._last_wall_ms = int(self.clock.time() * 1000)

    def backfill(self, seconds: float) -> Iterator[list[Event]]:
        """The ``seconds`` before now at the configured rate, in batches of at most
        :data:`MAX_BATCH`, stamped evenly in the past (the last before now), shaped by the wave but
        by no spike or drop (those count from the live start, which is later). Called before
        :meth:`start`, in the thread that then starts the pipeline.

        Without an events log the events are made without their documents
        (:meth:`EventFactory.counted`), which nothing else reads: an hour at 2,000 events/s is 7.2
        million of them."""
        end_ms = int(self.clock.time() * 1000)
        span_ms = int(seconds * 1000)
        count = math.floor(seconds * self._rate)
        first_ms = end_ms - span_ms
        make = self._factory.make
        for offset in range(0, count, MAX_BATCH):
            stamps = [first_ms + (span_ms * i) // count for i in range(offset, min(count, offset + MAX_BATCH))]
            batch = [make(ts) for ts in stamps] if self._events_log is not None else self._factory.counted(stamps)
            # Spikes and drops start at the live start or later: only a wave shapes the past.
            yield list(self._plan.apply(batch, end_ms)) if self._plan is not None and self._plan.waves else batch

    def make(self, now: float) -> tuple[list[Event], bool]:
        """The events due by the monotonic ``now`` (at most :data:`MAX_BATCH`), not yet logged (the
        caller logs them with :meth:`log`, after the spool made them durable if there is one); and
        whether more are due (then the caller steps again at once)."""
        with self._lock:
            due = self._pacer.due(now)
            count = min(due, MAX_BATCH)
            self._pacer.taken(count)
            self._backlog = due - count
        events = self._emit(count) if count else []
        self._sample(now)
        return events, due > count

    def seconds_until_next(self) -> float:
        with self._lock:
            return self._pacer.seconds_until_next(self.clock.monotonic())

    def due(self, end: float) -> int:
        """Events due by the monotonic ``end`` and not yet made."""
        return self._pacer.due(end)

    def flush_log(self) -> None:
        """Push the events log to its file; raises EventsLogError (the counts still go to the store)."""
        if self._events_log is not None:
            try:
                self._events_log.flush()
            except OSError as exc:
                raise EventsLogError(f"events log: {exc.strerror or exc}") from exc

    def log(self, events: list[Event], flush: bool = False) -> None:
        """Append ``events`` to the events log, if any; ``flush`` pushes them to the file now (with a
        spool, once per batch, so that a ``kill -9`` loses no event that the spool kept)."""
        if self._events_log is None or not events:
            return
        dumps = json.dumps
        try:
            self._events_log.write("".join(dumps(e.doc, separators=(",", ":")) + "\n" for e in events))
            if flush:
                self._events_log.flush()
        except OSError as exc:
            raise EventsLogError(f"events log {getattr(self._events_log, 'name', '')}: {exc.strerror or exc}") from exc

    def _emit(self, count: int) -> list[Event]:
        """Build ``count`` events stamped evenly since the last batch."""
        end_ms = int(self.clock.time() * 1000)
        start_ms = min(self._last_wall_ms, end_ms)
        span = end_ms - start_ms
        make = self._factory.make
        events: list[Event] = [make(start_ms + (span * (i + 1)) // count) for i in range(count)]
        self._last_wall_ms = end_ms
        if self._plan is not None:
            events = list(self._plan.apply(events, self._start_ms))
        with self._lock:
            self._made += len(events)
        return events

    def _sample(self, now: float) -> None:
        samples = self._samples
        samples.append((now, self._pacer.emitted))
        while len(samples) > 2 and samples[1][0] <= now - RATE_SAMPLE_SECONDS:
            samples.popleft()

    # -- status (any thread) ---------------------------------------------------------------------

    def _short_of_rate(self, samples: list[tuple[float, int]], rate: float, since: float, paused: bool) -> bool:
        """Made well under the rate over a whole sample taken since the rate last changed (right
        after ``+`` the old rate is still in the sample, which is not being behind)."""
        recent = [s for s in samples if s[0] >= since]
        if paused or len(recent) < 2:
            return False
        span = recent[-1][0] - recent[0][0]
        return span >= RATE_SAMPLE_SECONDS * 0.9 and (recent[-1][1] - recent[0][1]) / span < BEHIND_RATIO * rate

    def status(self) -> GeneratorStatus:
        with self._lock:
            samples = list(self._samples)
            rate = self._rate
            paused = self._pacer.paused
            generated = self._made
            backlog = 0 if paused else self._backlog
            since = self._rate_since
        measured = 0.0
        if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
            measured = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        behind = backlog > max(1.0, rate * BEHIND_BACKLOG_SECONDS) or self._short_of_rate(samples, rate, since, paused)
        return GeneratorStatus(configured_rate=rate, measured_rate=measured, generated=generated, paused=paused, generating=True, behind=behind)
