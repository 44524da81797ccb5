"""Anomaly detection over per-bucket counts: a baseline per series, judged at every bucket close.

A series is one event type (id None) or one (type, tracking id). At each closed bucket the reader
calls :meth:`Detector.close_bucket` with that bucket's counts, ``{type: {tracking_id: count}}``,
the shape the store already keeps; the detector judges every series against two baselines:

* **recent**: an exponentially weighted mean of the series' counts with a span of
  ``baseline_seconds`` (a cumulative mean while it is younger than that). It is robust because the
  buckets of a deviation are left out of it while it is pending (learned only if it clears without
  firing) and for as long as it fires, so an anomaly never teaches the baseline that it is normal,
  not even in the buckets before it fires (learned, two buckets of a x5 spike lifted a baseline of
  30 buckets enough that the third no longer passed k); a change that lasts ``relearn_after_seconds`` is taken as the new
  normal and its alert resolves as "relearned";
* **seasonal**, once a whole season (a day) of the series has been seen: the mean count per bucket
  in the same slot (hour of the day) on previous days, averaged over up to a week. A deviation must
  then hold against both, so a daily rush or a nightly lull that happens every day is not flagged.
  It learns every bucket as it was, anomalies included (one anomalous hour weighs half on the next
  day, a seventh after a week): otherwise a change that repeats daily and fired once would be kept
  out of it and fire every day.

The cost is incremental and sparse. A series costs O(1) per bucket in which it has events (no ring
of counts, no sort); a series too quiet to drop below its floor is not touched while it has no
events: the zeros it missed are applied in closed form when it next appears. Only the series that
could alert on a zero (baseline at least ``min_count``, or an alert under way) are visited every
bucket. ``bench/anomaly.py`` measures it: README "Anomalies".
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Mapping

from tui.anomaly.alerts import (
    DROP,
    FIRING,
    INACTIVE,
    PENDING,
    RESOLVED,
    SPIKE,
    Alert,
    AlertTrack,
    SeriesKey,
)
from tui.anomaly.settings import SEASON_SLOTS, AnomalySettings

#: A full sweep that forgets quiet series runs once per this many buckets.
SWEEP_EVERY = 64
#: Previous days averaged into the seasonal slot, at most (the last one weighs 1/7 from then on).
SEASON_DAYS = 7
#: Announced transitions kept for the alert history.
HISTORY = 1000


class Series(AlertTrack):
    """A series' baseline and alert state. Slotted: a reader may hold 100,000s."""

    __slots__ = (
        "fire_n",
        "fire_sum",
        "first_slot",
        "held",
        "key",
        "last",
        "level",
        "n",
        "pinned",
        "profile",
        "skips",
        "slot_abs",
        "slot_n",
        "slot_sum",
        "watched",
    )

    def __init__(self, key: SeriesKey, bucket: int, slot: int, skips: int, pinned: bool) -> None:
        super().__init__()
        self.key = key
        self.level = 0.0
        self.n = 0
        self.last = bucket - 1
        self.skips = skips
        self.watched = False
        self.pinned = pinned
        self.slot_abs = slot
        self.slot_sum = 0.0
        self.slot_n = 0
        self.first_slot = slot
        self.profile: array[float] | None = None
        self.fire_sum = 0.0
        self.fire_n = 0
        #: Counts of the buckets of a pending deviation, learned only if it clears without firing.
        self.held: list[int] | None = None


class Detector:
    """Judges every series at each bucket close; :meth:`alerts` is what the reader shows each refresh."""

    def __init__(self, settings: AnomalySettings, bucket_seconds: int) -> None:
        self.settings = settings
        self.bucket_seconds = bucket_seconds
        buckets = lambda seconds: settings.buckets(seconds, bucket_seconds)
        span = buckets(settings.baseline_seconds)
        self._alpha = 2.0 / (span + 1)
        self._cumulative_until = math.ceil(1 / self._alpha)
        self._warm = buckets(settings.warmup_seconds) if settings.warmup_seconds else 1  # a first bucket has nothing to be judged by
        self._relearn = buckets(settings.relearn_after_seconds)
        self._slot_seconds = settings.season_seconds // SEASON_SLOTS
        self.series: dict[SeriesKey, Series] = {}
        self._watch: set[Series] = set()
        self._active: dict[SeriesKey, Series] = {}
        self._last: int | None = None
        self._skips = 0
        self._closed = 0
        #: Announced transitions, newest last: the dashboard's alert history.
        self.history: deque[Alert] = deque(maxlen=HISTORY)
        #: (type, id) pairs refused in the last bucket because ``max_series`` were kept.
        self.untracked = 0

    # ----------------------------------------------------------------------------------------------
    # What the reader calls.

    def close_bucket(self, bucket: int, counts: Mapping[str, Mapping[str, int]]) -> list[Alert]:
        """Judge closed bucket ``bucket`` (epoch seconds // bucket_seconds) with its counts.

        Buckets must come in increasing order; buckets jumped over are unknown, not zero (as
        :meth:`skip_bucket`), so a reader that was stopped does not see a drop. Returns the alerts
        that fired or resolved at this bucket, for a webhook.
        """
        self._advance_to(bucket)
        out: list[Alert] = []
        seen = self.series
        observe = self._observe
        untracked = 0
        for etype, per_id in counts.items():
            total = 0
            for tid, count in per_id.items():
                total += count
                s = seen.get((etype, tid))
                if s is None:
                    s = self._new((etype, tid), bucket, pinned=False)
                    if s is None:
                        untracked += 1
                        continue
                observe(s, count, bucket, out)
            s = seen.get((etype, None)) or self._new((etype, None), bucket, pinned=True)
            if s is not None:
                observe(s, total, bucket, out)
        for s in [s for s in self._watch if s.last != bucket]:
            observe(s, 0, bucket, out)
        self.untracked = untracked
        self._closed += 1
        if self._closed % SWEEP_EVERY == 0:
            self._sweep(bucket)
        return out

    def skip_bucket(self, bucket: int) -> None:
        """A bucket whose counts are unknown (the store reported it incomplete): judged by nobody,
        learned by nobody; pending alerts neither advance nor clear."""
        self._advance_to(bucket)
        self._skips += 1

    def alerts(self) -> list[Alert]:
        """The pending and firing alerts, firing first, then the newest; cheap: O(active alerts)."""
        now = [s.alert(key, self.bucket_seconds) for key, s in self._active.items()]
        return sorted(now, key=lambda a: (a.state != FIRING, -a.since, a.type, a.id or ""))

    def history_of(self, key: SeriesKey) -> list[Alert]:
        """The announced transitions of one series, oldest first: the dashboard's alert history."""
        return [a for a in self.history if (a.type, a.id) == key]

    # ----------------------------------------------------------------------------------------------
    # One series, one bucket.

    def _advance_to(self, bucket: int) -> None:
        if self._last is not None:
            if bucket <= self._last:
                raise ValueError(f"bucket {bucket} is not after the last one closed ({self._last})")
            self._skips += bucket - self._last - 1
        self._last = bucket

    def _new(self, key: SeriesKey, bucket: int, pinned: bool) -> Series | None:
        if len(self.series) >= self.settings.max_series and not pinned:
            return None
        s = Series(key, bucket, bucket * self.bucket_seconds // self._slot_seconds, self._skips, pinned)
        self.series[key] = s
        if pinned:
            s.watched = True
            self._watch.add(s)
        return s

    def _observe(self, s: Series, count: int, bucket: int, out: list[Alert]) -> None:
        settings = self.settings
        gap = bucket - s.last - 1 - (self._skips - s.skips)
        if gap > 0:
            self._fill_zeros(s, gap)
        slot = bucket * self.bucket_seconds // self._slot_seconds
        if slot != s.slot_abs:
            self._roll_slot(s, slot, bucket)
        s.last, s.skips = bucket, self._skips
        level, k, floor = s.level, settings.k, settings.min_count
        expected = level
        direction = None
        if s.n >= self._warm:
            if count >= floor and count > k * level:
                direction = SPIKE
            elif level >= floor and count * k < level:
                direction = DROP
            profile = s.profile
            if direction is not None and profile is not None and slot > s.first_slot + SEASON_SLOTS:
                usual = profile[slot % SEASON_SLOTS]
                if direction is SPIKE:
                    direction = direction if count > k * usual else None
                    expected = max(level, usual)
                else:
                    direction = direction if usual >= floor and count * k < usual else None
                    expected = min(level, usual)
        state = s.state
        if direction is not None or state is PENDING or state is FIRING:
            changed = s.step(direction, bucket, count, expected, settings.for_buckets, settings.keep_firing_for_buckets)
            self._after_step(s, changed, count, bucket, out)
            state = s.state
        elif state is RESOLVED:
            s.state = state = INACTIVE
        if state is PENDING:  # held out until it clears: learned, it would lift the baseline under a spike
            s.held = [*(s.held or ()), count]
        elif state is FIRING:  # a firing anomaly, and the buckets that led to it, stay out of the baseline
            s.held = None
        else:
            held, s.held = s.held or (), None
            for learned in (*held, count):
                self._learn(s, learned)
        s.slot_sum += count  # the seasonal one learns every day as it was, so a daily change is learned
        s.slot_n += 1
        keep = s.pinned or state is PENDING or state is FIRING or s.level >= floor
        if keep is not s.watched:
            s.watched = keep
            (self._watch.add if keep else self._watch.discard)(s)

    def _learn(self, s: Series, count: int) -> None:
        """One bucket into the recent baseline: a cumulative mean while young, then the EWMA."""
        n = s.n + 1
        s.n = n
        level = s.level  # as the step left it: relearning sets it
        s.level = level + (count - level) * (1.0 / n if n < self._cumulative_until else self._alpha)

    def _after_step(self, s: Series, changed: str | None, count: int, bucket: int, out: list[Alert]) -> None:
        if s.state is FIRING:
            self._active[s.key] = s
            s.fire_sum += count
            s.fire_n += 1
            if changed is None and bucket - (s.fired_at or bucket) >= self._relearn:
                s.level = s.fire_sum / s.fire_n  # a change this long is the new normal
                s.state, s.resolved_at, changed = RESOLVED, bucket, RESOLVED
                self._announce(s, out, "relearned")
                return
        elif s.state is PENDING:
            self._active[s.key] = s
        else:
            self._active.pop(s.key, None)
        if changed is FIRING:
            s.fire_sum, s.fire_n = float(count), 1
        if changed is not None:
            self._announce(s, out, "")

    def _announce(self, s: Series, out: list[Alert], reason: str) -> None:
        if s.state is RESOLVED:
            self._active.pop(s.key, None)
        alert = s.alert(s.key, self.bucket_seconds, reason)
        out.append(alert)
        self.history.append(alert)

    def _fill_zeros(self, s: Series, gap: int) -> None:
        """Apply ``gap`` buckets of zero in closed form: what ``gap`` calls of the update would do."""
        s.level = self._decayed(s.level, s.n, gap)
        s.n += gap

    def _decayed(self, level: float, n: int, gap: int) -> float:
        """``level`` after ``gap`` zeros: the cumulative mean's part, then the exponential one."""
        cumulative = min(gap, max(0, self._cumulative_until - 1 - n))
        if cumulative:
            level *= n / (n + cumulative) if n else 0.0
        if gap > cumulative:
            level *= (1.0 - self._alpha) ** (gap - cumulative)
        return level

    def _first_bucket(self, slot: int) -> int:
        return -(-slot * self._slot_seconds // self.bucket_seconds)

    def _roll_slot(self, s: Series, slot: int, bucket: int) -> None:
        """Close the series' slots up to ``slot``: each one's mean count per bucket (zeros for the
        buckets it had no events in) goes into that hour's seasonal average."""
        zeros = self._first_bucket(s.slot_abs + 1) - (s.last + 1)
        self._finish_slot(s, s.slot_abs, s.slot_sum, s.slot_n + max(0, zeros))
        for empty in range(max(s.slot_abs + 1, slot - SEASON_SLOTS), slot):
            self._finish_slot(s, empty, 0.0, 1)
        s.slot_abs = slot
        s.slot_sum = 0.0
        s.slot_n = max(0, bucket - max(self._first_bucket(slot), s.last + 1))

    def _finish_slot(self, s: Series, slot: int, total: float, buckets: int) -> None:
        if buckets <= 0:
            return
        if s.profile is None:
            s.profile = array("f", bytes(4 * SEASON_SLOTS))
        days = (slot - s.first_slot) // SEASON_SLOTS
        weight = 1.0 / min(days + 1, SEASON_DAYS)
        index = slot % SEASON_SLOTS
        s.profile[index] += (total / buckets - s.profile[index]) * weight

    def _sweep(self, bucket: int) -> None:
        """Forget (type, id) series whose baseline has decayed below ``id_floor``: memory stays
        bounded by the ids that had traffic in the last hours, not by every id ever seen."""
        floor = self.settings.id_floor
        skips = self._skips
        gone = [
            key for key, s in self.series.items()
            if not s.watched and s.n >= self._warm
            and self._decayed(s.level, s.n, bucket - s.last - (skips - s.skips)) < floor
        ]
        for key in gone:
            del self.series[key]
