"""Anomaly detection figures: detection, false alerts, flapping and CPU, seeded, on a fake clock.

    python bench/anomaly.py            # about 2 minutes on 2 cores
    python bench/anomaly.py --quick    # smaller runs, about 20 s

Simulated per-bucket counts (tests/anomaly_sim.py): Zipf ids, a daily wave, x5 spikes and drops to
zero injected on random ids. Each row runs the production detector; one row runs a rolling exact
median of the last hour (a sorted window per series) with the same rule and state machine, the
baseline that the EWMA was chosen over. The CPU rows time Detector.close_bucket for 100,000 series.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import gc
import random
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from tests.anomaly_sim import Sim, run
from tui.anomaly.alerts import DROP, FIRING, PENDING, SPIKE, Alert, AlertTrack
from tui.anomaly.detect import Detector
from tui.anomaly.settings import AnomalySettings


class MedianSeries(AlertTrack):
    __slots__ = ("ring", "window")

    def __init__(self) -> None:
        super().__init__()
        self.ring: deque[int] = deque()
        self.window: list[int] = []


class MedianDetector:
    """The alternative: an exact rolling median of the last ``baseline_seconds``, every series
    visited every bucket (a zero must enter each window), no season. Same rule, same alerts."""

    def __init__(self, settings: AnomalySettings, bucket_seconds: int) -> None:
        self.s = settings
        self.span = settings.buckets(settings.baseline_seconds, bucket_seconds)
        self.warm = settings.buckets(settings.warmup_seconds, bucket_seconds)
        self.bucket_seconds = bucket_seconds
        self.series: dict[tuple[str, str | None], MedianSeries] = {}

    def close_bucket(self, bucket: int, counts: dict[str, dict[str, int]]) -> list[Alert]:
        out: list[Alert] = []
        s = self.s
        for etype, per_id in counts.items():
            for tid in per_id:
                self.series.setdefault((etype, tid), MedianSeries())
        for key, series in self.series.items():
            count = counts.get(key[0], {}).get(key[1] or "", 0)
            window = series.window
            direction = None
            expected = window[len(window) // 2] if window else 0.0
            if len(window) >= self.warm:
                if count >= s.min_count and count > s.k * expected:
                    direction = SPIKE
                elif expected >= s.min_count and count * s.k < expected:
                    direction = DROP
            changed = series.step(direction, bucket, count, expected, s.for_buckets, s.keep_firing_for_buckets)
            if changed:
                out.append(series.alert(key, self.bucket_seconds))
            if series.state is PENDING or series.state is FIRING:
                continue
            series.ring.append(count)
            bisect.insort(window, count)
            if len(series.ring) > self.span:
                del window[bisect.bisect_left(window, series.ring.popleft())]
        return out


def scenario_row(name: str, sim: Sim, settings: AnomalySettings, make=Detector) -> dict:
    gc.collect()
    began = time.process_time()
    r = run(sim, settings, make)
    return {
        "run": name,
        "series x hours": f"{sim.series} x {sim.hours:g} h",
        "bucket": f"{sim.bucket_seconds} s",
        "injected": len(r.injected),
        "in time": f"{100 * r.detection_rate:.1f} %",
        "false /h/1000": f"{r.false_per_hour_per_1000:.2f}",
        "false /h/1000 alertable": f"{r.false_per_hour_per_1000_alertable:.2f}",
        "flaps": r.flaps,
        "close ms (1000 series)": f"{1000 * statistics.median(r.seconds_per_bucket):.2f}",
        "cpu s": f"{time.process_time() - began:.1f}",
    }


def cpu_row(name: str, series: int, present: float, buckets: int, seed: int = 1) -> dict:
    """close_bucket over ``series`` (type, id) series: ``present`` of them have events in each bucket
    (1.0: every one, the worst case; Zipf traffic has far fewer), the rest are lazy."""
    rng = random.Random(seed)
    ids = [f"INF-{i:06d}" for i in range(series)]
    rates = [max(1, int(2000 / (i + 1))) for i in range(series)]
    process = psutil.Process()
    rss = process.memory_info().rss
    d = Detector(AnomalySettings(), 10)
    d.close_bucket(0, {"signup": {tid: rates[i] for i, tid in enumerate(ids)}})  # every series exists
    times = []
    for b in range(1, buckets + 1):
        counts = {"signup": {tid: rates[i] for i, tid in enumerate(ids) if i < 1000 or rng.random() < present}}
        began = time.perf_counter()
        d.close_bucket(b, counts)
        times.append(time.perf_counter() - began)
    times.sort()
    return {
        "run": name,
        "series": f"{len(d.series):,}",
        "present per bucket": f"{100 * present:g} %",
        "close median ms": f"{1000 * statistics.median(times):.0f}",
        "close p99 ms": f"{1000 * times[int(0.99 * (len(times) - 1))]:.0f}",
        "per refresh at 10 s buckets, 1 s refresh (ms)": f"{100 * statistics.median(times):.1f}",
        "RSS MB": f"{(process.memory_info().rss - rss) / 2**20:.0f}",
    }


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about 20 s)")
    args = parser.parse_args()
    quick = args.quick
    day = AnomalySettings()
    rows = [
        scenario_row("real day, season from day 2", Sim(series=300 if quick else 1000, hours=50, injections=200, seed=1), day),
        scenario_row(
            "compressed 2 h day (stress)", Sim(series=1000, hours=2 if quick else 6, season_seconds=7200, injections=100, seed=2),
            dataclasses.replace(day, season_seconds=7200),
        ),
        scenario_row("first 6 h, EWMA", Sim(series=300 if quick else 1000, hours=6, injections=100, seed=3), day),
        scenario_row("first 6 h, rolling median", Sim(series=300 if quick else 1000, hours=6, injections=100, seed=3), day, MedianDetector),
    ]
    print(table(rows))
    print()
    cpu = [
        cpu_row("100,000 series, Zipf-like: 10 % present", 100_000, 0.10, 10 if quick else 30),
        cpu_row("100,000 series, all present (worst case)", 100_000, 1.0, 5 if quick else 15),
    ]
    print(table(cpu))


if __name__ == "__main__":
    main()
