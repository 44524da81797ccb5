"""The detector in a reading process: which buckets to judge, when, and what to tell.

Every face that reads (the dashboard, ``--headless``, ``serve``) calls :meth:`AnomalyWatch.poll`
once per refresh, on its reading thread. A bucket is judged once it closed and the writers had
:data:`SETTLE_SECONDS` to flush it (they flush once a second), in order, each exactly once. On its
first poll the watch *primes* the detector from the single buckets the store still keeps (an hour by
default), so a restarted dashboard knows its baselines at once; it reads slices of
:data:`CATCH_UP_BUCKETS` for at most :data:`POLL_BUDGET_SECONDS` a poll, so priming 100,000 ids costs
a few refreshes, not one long stall.
Transitions of primed buckets go to the history, not to the webhook: they happened before this
process was there to tell them.

A bucket the store reports incomplete (lost, corrupt, restored values) is skipped, never judged as
zeros: a lost value must not read as a drop. Buckets before the prefix's first data are skipped as
well, so a fresh prefix does not learn an hour of zeros and then call its first traffic a spike.

Other threads (the dashboard's UI) read :meth:`status`: a snapshot replaced whole after each poll,
so reading it never waits for a bucket being judged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tui.anomaly.alerts import FIRING, Alert, SeriesKey
from tui.anomaly.detect import Detector
from tui.anomaly.settings import AnomalySettings
from tui.clock import Clock

#: Seconds after a bucket's end before it is judged: writers flush once a second.
SETTLE_SECONDS = 2.0
#: Buckets read and judged at a time (priming, or catching up after the store was away) ...
CATCH_UP_BUCKETS = 30
#: ... and slices are taken until a poll has spent this long: an hour of 1 s buckets at 10 ids, or
#: of an empty prefix, primes in a few polls, and 100,000 ids still never stall a refresh for long.
POLL_BUDGET_SECONDS = 0.25

#: Counts of single buckets by index, ``{bucket: {type: {id: count}}}``, and the indexes that could
#: not be read whole (incomplete or no longer kept). Raises StoreUnavailable.
ReadBuckets = Callable[[range], tuple[Mapping[int, Mapping[str, Mapping[str, int]]], set[int]]]


@dataclass(frozen=True)
class AnomalyStatus:
    """What the faces show: the active alerts, and how the detection itself is doing."""

    #: Pending and firing alerts, firing first, then the newest.
    alerts: tuple[Alert, ...] = ()
    #: Announced transitions (fired, resolved), oldest first.
    history: tuple[Alert, ...] = ()
    #: The newest bucket judged (None before the first), and the next one due.
    judged_through: int | None = None
    #: True until the buckets the store kept at start have all been read.
    priming: bool = True
    series: int = 0
    #: (type, id) pairs not tracked because ``max_series`` were kept: reported, never silent.
    untracked: int = 0
    #: Buckets not judged because the store could not read them whole.
    skipped: int = 0
    #: Milliseconds the last poll spent judging (reads excluded), and reading.
    judge_ms: float = 0.0
    read_ms: float = 0.0
    bucket_seconds: int = 0

    def flagged(self) -> dict[SeriesKey, Alert]:
        """The firing alert of each series that has one: what the tables colour and badge."""
        return {(a.type, a.id): a for a in self.alerts if a.state == FIRING}

    def to_json(self) -> dict[str, object]:
        """How detection is doing, the ``anomaly`` object of the headless line and the alerts
        routes; the alerts themselves go beside it, each as :meth:`Alert.to_json`."""
        return {
            "judgedThroughMs": None if self.judged_through is None else (self.judged_through + 1) * self.bucket_seconds * 1000,
            "priming": self.priming,
            "series": self.series,
            "untracked": self.untracked,
            "skippedBuckets": self.skipped,
        }


class AnomalyWatch:
    """Feeds one :class:`Detector` from the store, each closed bucket once, in order."""

    def __init__(
        self,
        settings: AnomalySettings,
        bucket_seconds: int,
        read: ReadBuckets,
        clock: Clock,
        kept_seconds: int,
        notify: Callable[[Alert], None] | None = None,
        budget_seconds: float = POLL_BUDGET_SECONDS,
    ) -> None:
        self.settings = settings
        self.bucket_seconds = bucket_seconds
        self.detector = Detector(settings, bucket_seconds)
        self._read = read
        self._clock = clock
        #: Buckets primed at the first poll: the baseline's span and the warm-up, as far as kept.
        self._prime = min(kept_seconds, max(settings.baseline_seconds, settings.warmup_seconds)) // bucket_seconds
        self._notify = notify
        self._budget = budget_seconds  # 0: one slice a poll
        self._next: int | None = None
        self._live_from: int | None = None
        self._seen_data = False
        self._skipped = 0
        self._lock = threading.Lock()  # one poll at a time (a face may poll from two threads)
        self._status = AnomalyStatus(bucket_seconds=bucket_seconds)

    def status(self) -> AnomalyStatus:
        """The snapshot of the last poll (any thread)."""
        return self._status

    def poll(self) -> list[Alert]:
        """Judge the buckets that closed since the last poll, a slice of :data:`CATCH_UP_BUCKETS` at
        a time until caught up or :data:`POLL_BUDGET_SECONDS` are spent; returns the transitions of
        live buckets, which also went to ``notify``. Raises StoreUnavailable; what was judged before
        it stays judged, and the rest is read next time."""
        live: list[Alert] = []
        with self._lock:
            last = int((self._clock.time() - SETTLE_SECONDS) // self.bucket_seconds) - 1
            if self._next is None:
                self._next, self._live_from = last - self._prime + 1, last + 1
            began = time.perf_counter()
            read_ms = judge_ms = 0.0
            try:
                while self._next <= last and (not read_ms or time.perf_counter() - began < self._budget):
                    due = range(self._next, min(last, self._next + CATCH_UP_BUCKETS - 1) + 1)
                    started = time.perf_counter()
                    counts, unknown = self._read(due)
                    read_ms += (time.perf_counter() - started) * 1000
                    started = time.perf_counter()
                    live.extend(self._judge(due, counts, unknown))
                    judge_ms += (time.perf_counter() - started) * 1000
                    self._next = due[-1] + 1
            finally:
                if read_ms:
                    self._snapshot(read_ms, judge_ms)
        if self._notify is not None:
            for alert in live:
                self._notify(alert)
        return live

    def _judge(self, due: range, counts: Mapping[int, Mapping[str, Mapping[str, int]]], unknown: set[int]) -> list[Alert]:
        """Each bucket of ``due`` to the detector, in order; the transitions of the live ones."""
        live: list[Alert] = []
        detector = self.detector
        for bucket in due:
            found = counts.get(bucket)
            self._seen_data = self._seen_data or bool(found)
            if bucket in unknown or not self._seen_data:
                detector.skip_bucket(bucket)
                self._skipped += bucket in unknown
                continue
            changed = detector.close_bucket(bucket, found or {})
            if bucket >= (self._live_from or 0):
                live.extend(changed)
        return live

    def _snapshot(self, read_ms: float, judge_ms: float) -> None:
        detector = self.detector
        self._status = AnomalyStatus(
            alerts=tuple(detector.alerts()), history=tuple(detector.history), judged_through=(self._next or 1) - 1,
            priming=(self._next or 0) < (self._live_from or 0), series=len(detector.series), untracked=detector.untracked,
            skipped=self._skipped, judge_ms=judge_ms, read_ms=read_ms, bucket_seconds=self.bucket_seconds,
        )
