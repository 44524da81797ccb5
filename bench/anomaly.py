"""Anomaly detection figures: detection, false alerts, flapping and CPU, over seeded runs on a fake clock.

    python bench/anomaly.py            # 3 seeds of 1,000 series: about 75 s on 2 cores
    python bench/anomaly.py --small    # one seed of 300 series, about 11 s
    python bench/anomaly.py --smoke    # seconds: checks the bench runs

Per-bucket counts of traffic shaped by tui.scenarios (tests/anomaly_sim.py): ids weighted by the
``zipf`` scenario, the ``diurnal`` wave, x5 spikes and drops to zero injected as spike and drop
scenarios on random ids, Poisson counts from a seeded RNG; buckets are numbers, no time passes.
Each row runs the production detector over every seed; one row runs a rolling exact median of the
last hour (a sorted window per series) with the same rule and state machine, the baseline that the
EWMA was chosen over. The CPU rows time Detector.close_bucket alone for 100,000 series;
bench/anomaly_reader.py measures the reader's whole poll on the real path. Run by bench/run.py
(section ``anomaly``, rows 21-22).
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import gc
import json
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from tests.anomaly_sim import Sim, run as simulate
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


def scenario_row(name: str, sims: list[Sim], settings: AnomalySettings, make: Any = Detector) -> dict[str, Any]:
    """One row over seeded runs (``sims`` differ only in their seed): totals over all of them, the
    false-alert rate over all their series-hours, and the worst seed's detection."""
    gc.collect()
    began = time.process_time()
    results = [simulate(sim, settings, make) for sim in sims]
    sim = sims[0]
    injected = sum(len(r.injected) for r in results)
    alertable_hours = sum(r.alertable_series * r.sim.hours for r in results)
    series_hours = sum(r.series_hours for r in results)
    false = sum(r.false_alerts for r in results)
    return {
        "run": name, "series": sim.series, "hours": sim.hours, "bucket_seconds": sim.bucket_seconds,
        "season_seconds": sim.season_seconds, "seeds": [s.seed for s in sims], "injected": injected,
        "in_time": sum(r.detected_in_time for r in results), "worst_seed_rate": min(r.detection_rate for r in results),
        "false_alerts": false, "type_alerts": sum(r.type_alerts for r in results), "series_hours": series_hours,
        "false_per_hour_per_1000": 1000 * false / series_hours,
        "false_per_hour_per_1000_alertable": 1000 * false / max(1e-9, alertable_hours),
        "flaps": sum(r.flaps for r in results),
        "close_ms_median": 1000 * statistics.median(t for r in results for t in r.seconds_per_bucket),
        "cpu_seconds": time.process_time() - began,
    }


def scenario_cells(r: dict[str, Any]) -> dict[str, str]:
    return {
        "run": r["run"],
        "series × hours": f"{r['series']:,} × {r['hours']:g} h",
        "bucket": f"{r['bucket_seconds']} s",
        "seeds": ", ".join(map(str, r["seeds"])),
        "in time": f"{100 * r['in_time'] / max(1, r['injected']):.1f} % of {r['injected']}",
        "worst seed": f"{100 * r['worst_seed_rate']:.1f} %",
        "false alerts (of the type)": f"{r['false_alerts']} ({r['type_alerts']})",
        "false /h/1000": f"{r['false_per_hour_per_1000']:.2f}",
        "false /h/1000 alertable": f"{r['false_per_hour_per_1000_alertable']:.2f}",
        "flaps": str(r["flaps"]),
        "close ms": f"{r['close_ms_median']:.2f}",
    }


def cpu_row(name: str, series: int, present: float, buckets: int, seed: int = 1) -> dict[str, Any]:
    """close_bucket over ``series`` (type, id) series: ``present`` of them have events in each bucket
    (1.0: every one, the worst case; Zipf traffic has far fewer), the rest are lazy."""
    rng = random.Random(seed)
    ids = [f"INF-{i:06d}" for i in range(series)]
    rates = [max(1, int(2000 / (i + 1))) for i in range(series)]
    process = psutil.Process()
    gc.collect()
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
        "run": name, "series": len(d.series), "present": present,
        "close_ms_p50": 1000 * statistics.median(times), "close_ms_p99": 1000 * times[round(0.99 * (len(times) - 1))],
        "rss_mb": (process.memory_info().rss - rss) / 2**20,
    }


def cpu_cells(r: dict[str, Any]) -> dict[str, str]:
    return {
        "run": r["run"], "series": f"{r['series']:,}", "present per bucket": f"{100 * r['present']:g} %",
        "close median ms": f"{r['close_ms_p50']:.0f}", "close p99 ms": f"{r['close_ms_p99']:.0f}",
        "per refresh at 10 s buckets, 1 s refresh (ms)": f"{r['close_ms_p50'] / 10:.1f}", "RSS MB": f"{r['rss_mb']:.0f}",
    }


def table(rows: list[dict[str, str]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Plan:
    name: str
    seeds: tuple[int, ...]
    series: int
    #: hours of the real-day rows, of the first-hours rows, of the compressed-day row
    day_hours: float
    first_hours: float
    stress_hours: float
    injections: int
    #: buckets timed by the CPU rows: Zipf-like, worst case
    cpu_buckets: tuple[int, int]


PLANS = {
    "smoke": Plan("smoke", (1,), 100, 26, 3, 2, 30, (2, 1)),
    "small": Plan("small", (1,), 300, 50, 6, 2, 100, (10, 5)),
    "quick": Plan("quick", (1, 2, 3), 1000, 50, 6, 6, 200, (30, 15)),
}
PLANS["full"] = PLANS["quick"]


def run(mode: str) -> dict[str, Any]:
    """Every row of ``mode`` (smoke, small, quick, full): what bench/run.py and the README table."""
    p = PLANS[mode]
    day = AnomalySettings()
    stress = dataclasses.replace(day, season_seconds=7200)

    def sims(hours: float, injections: int, **more: Any) -> list[Sim]:
        return [Sim(series=p.series, hours=hours, injections=injections, seed=seed, **more) for seed in p.seeds]

    began = time.monotonic()
    scenarios = [
        scenario_row("real day, season from day 2", sims(p.day_hours, p.injections), day),
        scenario_row("first hours, EWMA", sims(p.first_hours, p.injections // 2), day),
        scenario_row("first hours, rolling median instead", sims(p.first_hours, p.injections // 2), day, MedianDetector),
        scenario_row("real day, 120 s buckets", sims(p.day_hours, p.injections // 2, bucket_seconds=120), day),
        scenario_row("stress: a day compressed into 2 h", sims(p.stress_hours, p.injections // 2, season_seconds=7200), stress),
    ]
    cpu = [
        cpu_row("100,000 series, Zipf-like: 10 % present", 100_000, 0.10, p.cpu_buckets[0]),
        cpu_row("100,000 series, all present (worst case)", 100_000, 1.0, p.cpu_buckets[1]),
    ]
    return {"mode": mode, "scenarios": scenarios, "cpu": cpu, "seconds": time.monotonic() - began}


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, bool]]:
    """Issue 14's detection and false-alert goals in bench/run.py's table format."""
    day, first, median, coarse, stress = r["scenarios"]
    seeds = len(day["seeds"])

    def rate(v: dict[str, Any]) -> float:
        return v["in_time"] / max(1, v["injected"])

    def meets(v: dict[str, Any]) -> bool:
        return rate(v) >= 0.95 and v["false_per_hour_per_1000"] <= 1 and v["flaps"] == 0

    return [
        (f"21. anomalies: x5 spikes and drops to 0 flagged in time, {day['series']:,} Zipf series × {day['hours']:g} h, a real day's wave, {seeds} seeds",
         f"{rate(day):.1%} of {day['injected']} (worst seed {day['worst_seed_rate']:.1%})",
         f"first {first['hours']:g} h: EWMA {rate(first):.1%}, rolling median {rate(median):.1%}", "", "≥ 95 % within 2 buckets of for", rate(day) >= 0.95 and rate(first) >= 0.95),
        ("   false alerts, the same runs", f"{day['false_per_hour_per_1000']:.2f} per hour per 1,000 series ({day['false_alerts']} in {day['series_hours']:,.0f} series-hours)",
         f"first {first['hours']:g} h: {first['false_per_hour_per_1000']:.2f}", "", "≤ 1 per hour per 1,000 series, no flapping",
         meets(day)),
        ("   the same at 120 s buckets (not the default)", f"{rate(coarse):.1%} in time (worst seed {coarse['worst_seed_rate']:.1%}), {coarse['false_per_hour_per_1000']:.2f} false /h/1000",
         "", "", "≥ 95 %, ≤ 1", meets(coarse)),
        ("   stress: a day's wave compressed into 2 h", f"{rate(stress):.1%} in time, {stress['false_per_hour_per_1000']:.2f} false /h/1000",
         "", "", "≥ 95 %, ≤ 1 (not a real day's wave)", meets(stress)),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--small", action="store_true", help="one seed of 300 series (about 11 s)")
    group.add_argument("--smoke", action="store_true", help="tiny sizes: the bench runs")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    results = run("smoke" if args.smoke else "small" if args.small else "quick")
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table([scenario_cells(r) for r in results["scenarios"]]))
    print()
    print(table([cpu_cells(r) for r in results["cpu"]]))
    print(f"\n{results['mode']} mode took {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
