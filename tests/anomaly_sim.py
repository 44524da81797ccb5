"""A seeded, fake-clock traffic simulation for the anomaly detector: per-bucket counts, no real time.

Shared by tests/test_anomaly.py (CI scale) and bench/anomaly.py (full scale). The traffic is what
``--scenario zipf --scenario diurnal:<season> --scenario spike:… --scenario drop:…`` gives the
generator, shaped by :mod:`tui.scenarios` itself: each id's share of the traffic is its weight in
:func:`tui.events.zipf_cdf` (the generator's draw, which the ``zipf`` scenario sets), and its rate in each bucket is that
share times :meth:`tui.scenarios.ScenarioPlan.multiplier` (the ``diurnal`` wave, and the x5 spikes
and drops to zero injected as :class:`tui.scenarios.Window` scenarios on random ids). Counts are
Poisson draws of those rates from a seeded RNG, which is what drawing each event's id by Zipf gives
(a Poisson stream split by id), without making every event: 50 hours of 1,000 ids are 200 million
events. The figures are those the issue asks for: the share of injected anomalies flagged in time,
false alerts per hour per 1,000 series, and flapping.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tui.anomaly.alerts import DROP, FIRING, RESOLVED, SPIKE, Alert
from tui.anomaly.settings import AnomalySettings
from tui.events import zipf_cdf
from tui.scenarios import DEFAULT_ZIPF_EXPONENT, Diurnal, ScenarioPlan, Window

TYPE = "signup"


class Judge(Protocol):
    def close_bucket(self, bucket: int, counts: dict[str, dict[str, int]]) -> list[Alert]: ...


@dataclass(frozen=True)
class Sim:
    series: int = 1000
    hours: float = 6.0
    bucket_seconds: int = 10
    #: The compressed day: the diurnal wave's period and the detector's season.
    season_seconds: int = 86_400
    #: Events per bucket of the largest id at the wave's mean; the others get their Zipf share of
    #: the traffic (weight 1 / rank ** zipf, the ``zipf`` scenario's default exponent).
    top: float = 2000.0
    zipf: float = DEFAULT_ZIPF_EXPONENT
    injections: int = 100
    anomaly_buckets: int = 12
    spike_factor: float = 5.0
    seed: int = 1

    @property
    def buckets(self) -> int:
        return round(self.hours * 3600 / self.bucket_seconds)


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: inversion below 30, a rounded normal above (ample for counting thresholds)."""
    if lam <= 0:
        return 0
    if lam >= 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    u = rng.random()
    p = cdf = math.exp(-lam)
    k = 0
    while u > cdf and k < 200:
        k += 1
        p *= lam / k
        cdf += p
    return k


@dataclass
class Injection:
    window: Window
    first: int  # first bucket of the anomaly
    fired_at: int | None = None


@dataclass
class Result:
    sim: Sim
    injected: list[Injection]
    detected_in_time: int
    late_or_missed: list[Injection]
    false_alerts: int
    false_keys: list[Any]
    alertable_series: int
    flaps: int
    type_alerts: int
    seconds_per_bucket: list[float] = field(default_factory=list)

    @property
    def series_hours(self) -> float:
        return self.sim.series * self.sim.hours

    @property
    def detection_rate(self) -> float:
        return self.detected_in_time / max(1, len(self.injected))

    @property
    def false_per_hour_per_1000(self) -> float:
        return self.false_alerts / (self.series_hours / 1000)

    @property
    def false_per_hour_per_1000_alertable(self) -> float:
        return self.false_alerts / max(1e-9, self.alertable_series * self.sim.hours / 1000)


def ids(n: int) -> list[str]:
    return [f"INF-{rank:06d}" for rank in range(n)]


def zipf_rates(sim: Sim) -> list[float]:
    """Events per bucket of each id at the wave's mean: its share of the traffic in the ``zipf``
    scenario's draw (:func:`~tui.events.zipf_cdf`), scaled so that the largest id makes ``sim.top``."""
    cumulative = zipf_cdf(sim.series, sim.zipf)
    shares = [b - a for a, b in zip([0.0, *cumulative], cumulative)]
    return [sim.top * share / shares[0] for share in shares]


def run(sim: Sim, settings: AnomalySettings, make: Callable[[AnomalySettings, int], Judge]) -> Result:
    """Simulate ``sim`` and judge it with the detector ``make`` builds; all seeded, no real time."""
    rng = random.Random(sim.seed)
    names = ids(sim.series)
    base = zipf_rates(sim)
    wave = Diurnal(sim.season_seconds)
    start_bucket = 1_700_000_000 // sim.bucket_seconds  # the fake clock's epoch, aligned
    warm = settings.buckets(settings.warmup_seconds, sim.bucket_seconds)
    injected = _inject(sim, settings, rng, names, base, wave, warm)
    # The run's scenarios, as --scenario would give them; ``steady`` is the same wave alone: the
    # factor of every id that no spike or drop targets at that moment (asked once per bucket,
    # rather than once per id with every injected window looked at).
    plan = ScenarioPlan([wave, *(i.window for i in injected)], names)
    steady = ScenarioPlan([wave], names)
    detector = make(settings, sim.bucket_seconds)
    # Series whose counts can reach the floor by chance: an expected count at the wave's peak of at
    # least min_count / k. The rest can never alert, so the stricter figure counts only these.
    alertable = sum(1 for b in base if b * 1.5 >= settings.min_count / settings.k)
    windows_by_id: dict[str, list[Injection]] = {}
    for inj in injected:
        windows_by_id.setdefault(inj.window.id or "", []).append(inj)
    grace = settings.for_buckets + settings.keep_firing_for_buckets + 4
    false_keys: list[Any] = []
    flaps = type_alerts = 0
    resolved_at: dict[Any, int] = {}
    timings: list[float] = []
    for step in range(sim.buckets):
        middle = (step + 0.5) * sim.bucket_seconds  # windows start and end on bucket edges
        background = steady.multiplier(middle, TYPE, "")
        targeted = {w.id for w in plan.windows if w.start <= middle < w.end}
        every = None in targeted  # a window over every id
        counts: dict[str, int] = {}
        for rank, name in enumerate(names):
            factor = plan.multiplier(middle, TYPE, name) if every or name in targeted else background
            c = poisson(rng, base[rank] * factor)
            if c:
                counts[name] = c
        bucket = start_bucket + step
        began = time.perf_counter()
        changes = detector.close_bucket(bucket, {TYPE: counts})
        timings.append(time.perf_counter() - began)
        for alert in changes:
            key = (alert.type, alert.id)
            if alert.state == RESOLVED:
                resolved_at[key] = bucket
                continue
            if alert.state != FIRING:
                continue
            if alert.id is None:  # no scenario targets the whole type: a false alert too
                type_alerts += 1
                false_keys.append((None, alert.direction, bucket - start_bucket))
                continue
            if bucket - resolved_at.get(key, -10**9) <= settings.for_buckets + 1:
                flaps += 1  # fired again right after resolving: what keep_firing_for is to prevent
            match = [
                i for i in windows_by_id.get(alert.id, [])
                if start_bucket + i.first <= alert.since <= start_bucket + i.first + sim.anomaly_buckets + grace
            ]
            if match:
                for inj in match:
                    if inj.fired_at is None:
                        inj.fired_at = bucket - start_bucket
            else:
                false_keys.append((alert.id, alert.direction, bucket - start_bucket))
    on_time = [i for i in injected if i.fired_at is not None and i.fired_at <= i.first + settings.for_buckets - 1 + 2]
    return Result(
        sim=sim, injected=injected, detected_in_time=len(on_time),
        late_or_missed=[i for i in injected if i not in on_time], false_alerts=len(false_keys),
        false_keys=false_keys, alertable_series=alertable, flaps=flaps, type_alerts=type_alerts,
        seconds_per_bucket=timings,
    )


def _inject(
    sim: Sim, settings: AnomalySettings, rng: random.Random, names: list[str], base: list[float], wave: Diurnal, warm: int
) -> list[Injection]:
    """Spikes and drops, half each, on random ids large enough to be judged at that time of day (an
    expected count of at least twice ``min_count``), never two on one id within an hour of each other."""
    spacing = round(3600 / sim.bucket_seconds)
    last_on: dict[int, int] = {}
    out: list[Injection] = []
    tries = 0
    while len(out) < sim.injections and tries < 100 * sim.injections:
        tries += 1
        first = rng.randrange(warm + 30, sim.buckets - sim.anomaly_buckets - 30)
        elapsed = first * sim.bucket_seconds
        rank = rng.randrange(sim.series)
        expected = base[rank] * min(wave.factor(elapsed), wave.factor(elapsed + sim.anomaly_buckets * sim.bucket_seconds))
        if expected < 2 * settings.min_count or abs(first - last_on.get(rank, -10**9)) < spacing:
            continue
        last_on[rank] = first
        kind = SPIKE if len(out) % 2 == 0 else DROP
        end = elapsed + sim.anomaly_buckets * sim.bucket_seconds
        factor = sim.spike_factor if kind == SPIKE else 0.0
        out.append(Injection(Window(kind, TYPE, names[rank], factor, elapsed, end), first))
    return out
