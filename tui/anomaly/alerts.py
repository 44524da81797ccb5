"""The alert state machine of one series, as Prometheus runs an alerting rule, counted in buckets.

Each closed bucket, the detector tells a series' :class:`AlertTrack` whether that bucket deviated
and which way. The track moves ``inactive -> pending -> firing -> resolved -> inactive``:

* a deviation starts ``pending`` (``since`` is that bucket); it fires when it has held for
  ``for_buckets`` consecutive buckets in the same direction, at the bucket that completes them;
* a pending alert whose deviation stops goes back to inactive, without ever having fired;
* a firing alert stays firing through ``keep_firing_for_buckets`` buckets without the deviation
  (or with the opposite one) and resolves at the next such bucket, so a deviation that comes and
  goes keeps one alert instead of flapping;
* ``resolved`` lasts until the next bucket, then the series is inactive (or pending again).

Only the transitions to ``firing`` and ``resolved`` are announced (webhook, history).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

INACTIVE = "inactive"
PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"
SPIKE = "spike"
DROP = "drop"

#: (type, tracking id), with None as the id for the whole type.
SeriesKey = tuple[str, "str | None"]


@dataclass(frozen=True)
class Alert:
    """What one series' alert looks like after a bucket: for the dashboard, the JSON and the webhook."""

    type: str
    id: str | None
    direction: str
    state: str
    #: Bucket indices (epoch seconds // bucket_seconds): where the deviation began, fired, resolved.
    since: int
    fired_at: int | None
    resolved_at: int | None
    #: The count in the latest bucket judged, and what the baseline expected there.
    observed: float
    expected: float
    bucket_seconds: int
    #: "" normally; "relearned" when a change lasted so long that it became the baseline.
    reason: str = ""

    def at_ms(self, bucket: int | None) -> int | None:
        return None if bucket is None else bucket * self.bucket_seconds * 1000

    def to_json(self) -> dict[str, Any]:
        """The alert as the headless JSON, the API and the webhook carry it; times are bucket starts."""
        return {
            "type": self.type,
            "id": self.id,
            "direction": self.direction,
            "state": self.state,
            "since": _iso(self.at_ms(self.since)),
            "sinceMs": self.at_ms(self.since),
            "firedAtMs": self.at_ms(self.fired_at),
            "resolvedAtMs": self.at_ms(self.resolved_at),
            "observed": round(self.observed, 2),
            "expected": round(self.expected, 2),
            "bucketSeconds": self.bucket_seconds,
            "reason": self.reason,
        }


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


class AlertTrack:
    """One series' alert state. Slotted and mutable: the detector keeps one per series, 100,000s of them."""

    __slots__ = ("direction", "expected", "fired_at", "observed", "quiet", "resolved_at", "since", "state", "streak")

    def __init__(self) -> None:
        self.state = INACTIVE
        self.direction = SPIKE
        self.since = 0
        self.streak = 0
        self.quiet = 0
        self.fired_at: int | None = None
        self.resolved_at: int | None = None
        self.observed = 0.0
        self.expected = 0.0

    def step(self, direction: str | None, bucket: int, observed: float, expected: float, for_buckets: int, keep: int) -> str | None:
        """Judge one closed bucket; returns FIRING or RESOLVED when the alert just went there, else None."""
        state = self.state
        if state is FIRING:
            self.observed, self.expected = observed, expected
            if direction == self.direction:
                self.quiet = 0
                return None
            self.quiet += 1
            if self.quiet > keep:
                self.state, self.resolved_at = RESOLVED, bucket
                return RESOLVED
            return None
        if direction is None:
            if state is not INACTIVE:
                self.state = INACTIVE
            return None
        if state is PENDING and direction == self.direction:
            self.streak += 1
        else:  # a new deviation, or one that turned round while pending
            self.state, self.direction, self.since, self.streak = PENDING, direction, bucket, 1
            self.fired_at = self.resolved_at = None
        self.observed, self.expected = observed, expected
        if self.streak >= for_buckets:
            self.state, self.fired_at, self.quiet = FIRING, bucket, 0
            return FIRING
        return None

    def alert(self, key: SeriesKey, bucket_seconds: int, reason: str = "") -> Alert:
        return Alert(
            type=key[0], id=key[1], direction=self.direction, state=self.state, since=self.since,
            fired_at=self.fired_at, resolved_at=self.resolved_at, observed=self.observed,
            expected=self.expected, bucket_seconds=bucket_seconds, reason=reason,
        )
