"""Events per second over the last few seconds, from the store's own per-bucket counts.

The type table, the tracking-id table and the sparkline labels all show this one rate, so they
agree with each other and move within a refresh of a change (``+``, a new writer), unlike the
rate of the last closed bucket, which is zero for a bucket's length after start and stale for as
long after a change.

Each refresh hands :meth:`RateMeter.observe` a reading of the recent buckets (bucket index -> key ->
count, summed over every writer). The rate of a key is what was added to those same buckets since
the reading about ``span`` seconds before, divided by the time between the two readings. Counts of
every writer arrive through the store, so the rate covers all of them; a bucket that closes or a
new one that opens between the readings is handled by comparing bucket by bucket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
G = TypeVar("G", bound=Hashable)

#: A reading: bucket index -> key -> events counted in that bucket so far.
Reading = Mapping[int, Mapping[K, int]]

RATE_SPAN_SECONDS = 5.0
TREND_LENGTH = 30  # rates kept per key for a trend sparkline: 30 refreshes, half a minute at 1/s


class RateMeter(Generic[K]):
    """Per-key events/s over the last ``span`` seconds, and the recent history of those rates."""

    def __init__(self, span: float = RATE_SPAN_SECONDS, trend_length: int = TREND_LENGTH) -> None:
        self.span = span
        self._readings: deque[tuple[float, Reading[K]]] = deque()
        self._rates: dict[K, float] = {}
        self._trend: deque[dict[K, float]] = deque(maxlen=trend_length)

    def observe(self, at: float, reading: Reading[K]) -> None:
        """Record the counts of the recent buckets read at wall time ``at`` (list every bucket read,
        empty ones included, so a bucket missing from an older reading is known to be new)."""
        if self._readings and at <= self._readings[-1][0]:
            return  # the same instant twice (a frozen clock, a second refresh): nothing elapsed
        self._readings.append((at, reading))
        while len(self._readings) > 2 and self._readings[1][0] <= at - self.span:
            self._readings.popleft()
        self._rates = self._measure()
        self._trend.append(self._rates)

    def _measure(self) -> dict[K, float]:
        if len(self._readings) < 2:
            return {}
        (then, old), (now, new) = self._readings[0], self._readings[-1]
        newest_old = max(old, default=None)
        added: dict[K, int] = {}
        for bucket, counts in new.items():
            if bucket not in old and (newest_old is not None and bucket < newest_old):
                continue  # not read back then: its counts may predate the older reading
            before = old.get(bucket, {})
            for key, count in counts.items():
                added[key] = added.get(key, 0) + max(0, count - before.get(key, 0))
        elapsed = now - then
        return {key: count / elapsed for key, count in added.items()}

    @property
    def ready(self) -> bool:
        """False until two readings are apart: no rate can be told yet."""
        return len(self._readings) >= 2

    @property
    def elapsed(self) -> float:
        """Seconds the current rates cover (``span``, or less just after start)."""
        return self._readings[-1][0] - self._readings[0][0] if self.ready else 0.0

    def rate_where(self, match: Callable[[K], bool]) -> float:
        """The summed rate of every key that ``match`` accepts (e.g. every id of one type)."""
        return sum(rate for key, rate in self._rates.items() if match(key))

    def trend_where(self, match: Callable[[K], bool]) -> list[float]:
        """The summed rate of the matching keys at each of the last readings, oldest first."""
        return [sum(rate for key, rate in rates.items() if match(key)) for rates in self._trend]

    def rates_by(self, group: Callable[[K], G | None]) -> dict[G, float]:
        """The summed rate per group of keys (None: left out), in one pass: a table of many rows
        asks once, not once a row over every key."""
        return _grouped(self._rates, group)

    def trends_by(self, group: Callable[[K], G | None]) -> list[dict[G, float]]:
        """:meth:`rates_by` at each of the last readings, oldest first."""
        return [_grouped(rates, group) for rates in self._trend]


def _grouped(rates: Mapping[K, float], group: Callable[[K], G | None]) -> dict[G, float]:
    out: dict[G, float] = {}
    for key, value in rates.items():
        name = group(key)
        if name is not None:
            out[name] = out.get(name, 0.0) + value
    return out
