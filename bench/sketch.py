"""Distinct visitors: accuracy, bytes, read cost and ingest cost of the HLL sketches (tui.distinct).

    python bench/sketch.py            # about 2 minutes on 2 cores
    python bench/sketch.py --smoke    # tiny sizes, seconds (checks the bench runs)

Every figure is measured in this run; costs are given beside a baseline from the same run.
In-process only (no memcached): the figures are the sketch's own, which the store adds to.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stats import pct  # noqa: E402

import datasketches as ds

from tui import EVENT_TYPES
from tui.distinct import sketch as sk
from tui.distinct import value as vl
from tui.distinct.batch import DistinctBatch
from tui.events import EventFactory
from tui.ingest.decode import IngestEvent, hash_email
from tui.settings import DEFAULT_TRACKING_IDS
from tui.visitors import Visitors
from tui.window import Ledger



def window_error(distinct: int, seed: int, lg_k: int, blocks: int = 12) -> float:
    """Relative error of a window read: ``distinct`` visitors spread over ``blocks`` block sketches
    (neighbouring blocks share 10 % of their visitors, as sessions cross block edges), united."""
    base = seed * 10**9
    step = max(1, distinct // blocks)
    sketches = []
    for b in range(blocks):
        lo, hi = base + b * step, base + (distinct if b == blocks - 1 else (b + 1) * step + step // 10)
        s = ds.hll_sketch(lg_k, ds.tgt_hll_type.HLL_4)
        update = s.update
        for item in range(lo, min(hi, base + distinct)):
            update(item)
        sketches.append(bytes(s.serialize_compact()))
    return abs(sk.estimate(sketches, lg_k).value - distinct) / distinct


def accuracy(sizes: tuple[int, ...], seeds: int, lg_k: int) -> list[tuple[str, str]]:
    rows = []
    for n in sizes:
        errors = [window_error(n, seed, lg_k) for seed in range(seeds)]
        rows.append((f"relative error at {n:,} distinct, {seeds} seeds, lg_k {lg_k}", f"p95 {pct(errors, 0.95):.2%}, max {max(errors):.2%}, mean {statistics.mean(errors):.2%} (goal p95 ≤ 3 %)"))
    return rows


def lg_k_choice(n: int, seeds: int) -> list[tuple[str, str]]:
    rows = []
    for lg_k in (11, 12, 13, 14):
        errors = [window_error(n, seed, lg_k) for seed in range(seeds)]
        dense = len(sk.sketch_of(map(str, range(n)), lg_k))
        rows.append((f"lg_k {lg_k} at {n:,} distinct, {seeds} seeds", f"p95 {pct(errors, 0.95):.2%} (2σ bound {sk.relative_error_bound(lg_k):.2%}); dense sketch {dense:,} B"))
    return rows


def sizes(lg_k: int) -> list[tuple[str, str]]:
    rows = []
    tid = "INF-yj562hjojbtez"
    for n in (10, 1_000, 100_000):
        data = sk.union([sk.sketch_of((f"visitor-{i}" for i in range(n)), lg_k)], lg_k)
        in_value = len(tid) + 1 + 4 + len(data)  # its id line and offset in a shared value
        rows.append((f"bytes per id per block at {n:,} distinct", f"{len(data):,} B sketch, {in_value:,} B in a shared value"))
    budget = vl.DEFAULT_BUDGET
    small = len(sk.union([sk.sketch_of(map(str, range(10)), lg_k)], lg_k)) + len(tid) + 5
    rows.append(("ids per shared value (64 KB budget)", f"{budget // small:,} ids of 10 visitors; {budget // (4136 + len(tid) + 5)} dense ids before spilling"))
    return rows


def read_cost(lg_k: int, iterations: int) -> list[tuple[str, str]]:
    rows = []
    rng = random.Random(1)
    for label, n in (("dense (50,000 visitors a block)", 50_000), ("sparse (50 visitors a block)", 50)):
        blocks = [sk.union([sk.sketch_of((rng.getrandbits(64) for _ in range(n)), lg_k)], lg_k) for _ in range(45)]
        for count in (12, 45):
            times = []
            for _ in range(iterations):
                t = time.perf_counter()
                sk.estimate(blocks[:count], lg_k)
                times.append((time.perf_counter() - t) * 1000)
            rows.append((f"one-id read, {count} blocks, {label}", f"p50 {statistics.median(times):.3f} / p99 {pct(times, 0.99):.3f} ms (goal p99 ≤ 2 ms)"))
    # the same through shared values holding 400 ids each (find + check + union)
    tids = [f"INF-{i:05d}" for i in range(400)]
    values = [vl.merge(None, {t: sk.sketch_of((rng.getrandbits(64) for _ in range(rng.choice((3, 30, 300)))), lg_k) for t in tids}, lg_k).value for _ in range(45)]
    times = []
    for i in range(iterations):
        t = time.perf_counter()
        found = vl.collect({str(b): v for b, v in enumerate(values)}, tids[i % 400], lg_k)
        sk.estimate_loaded(found.sketches, lg_k)
        times.append((time.perf_counter() - t) * 1000)
    rows.append((f"one-id read from 45 shared values of {len(values[0]) // 1024} KB (400 ids each)", f"p50 {statistics.median(times):.3f} / p99 {pct(times, 0.99):.3f} ms (without the memcached get)"))
    return rows


def events_with_visitors(count: int, rate: float) -> list[IngestEvent]:
    """Decoded-shape events of 10 sites over ``count / rate`` seconds, with sessions of visitors."""
    visitors = Visitors(len(DEFAULT_TRACKING_IDS), rate, seed=7)
    rng = random.Random(7)
    types = EVENT_TYPES
    out = []
    start = 1_700_000_000_000
    for i in range(count):
        site = int(rng.random() * len(DEFAULT_TRACKING_IDS))
        etype = types[int(rng.random() * 3)]
        visit = visitors.visit(site)
        email = hash_email(visit.email, b"salt") if etype == "signup" else None
        out.append(IngestEvent(etype, DEFAULT_TRACKING_IDS[site], start + int(i * 1000 / rate), visit.visitor_id, visit.session_id, email))
    return out


def ingest_cost(count: int, repeats: int, rate: float) -> list[tuple[str, str]]:
    """Counting alone (the ledger: record, fold, take the changed blocks once a simulated second)
    against counting plus the distinct batch (record, and building the sketches at each flush)."""
    events = events_with_visitors(count, rate)
    per_flush = int(rate)
    chunks = [events[i : i + per_flush] for i in range(0, len(events), per_flush)]
    plain, with_sketches = [], []
    for _ in range(repeats):
        for timings, sketches in ((plain, False), (with_sketches, True)):
            ledger, batch = Ledger(10), DistinctBatch(10)
            t = time.perf_counter()
            for chunk in chunks:
                ledger.record(chunk)
                if sketches:
                    batch.record(chunk)
                    batch.take_sketches()
                ledger.take_deltas()
            timings.append(count / (time.perf_counter() - t))
    a, b = statistics.median(plain), statistics.median(with_sketches)
    return [
        (f"ingest without sketches ({count:,} events, flush per {per_flush:,})", f"{a:,.0f} ev/s"),
        ("ingest with sketches (visitors and signups)", f"{b:,.0f} ev/s = {b / a:.0%} of without (goal ≥ 50 %)"),
    ]


def visitor_cost(count: int) -> list[tuple[str, str]]:
    factory = EventFactory(DEFAULT_TRACKING_IDS, seed=1)
    visitors = Visitors(len(DEFAULT_TRACKING_IDS), 100, seed=1)
    t = time.perf_counter()
    for i in range(count):
        factory.make(1_700_000_000_000 + i)
    make = (time.perf_counter() - t) / count
    sites = [i % 10 for i in range(count)]
    visit = visitors.visit
    t = time.perf_counter()
    for site in sites:
        visit(site)
    cost = (time.perf_counter() - t) / count
    return [("generator: Visitors.visit per event", f"{cost * 1e6:.2f} µs = {cost / make:.0%} of EventFactory.make ({make * 1e6:.2f} µs)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the bench runs")
    args = parser.parse_args()
    lg_k = sk.DEFAULT_LG_K
    if args.smoke:
        plan = {"sizes": (100, 10_000), "seeds": 3, "choice": (10_000, 3), "reads": 20, "ingest": (20_000, 1), "visits": 20_000}
    else:
        plan = {"sizes": (100, 10_000, 1_000_000), "seeds": 20, "choice": (100_000, 20), "reads": 500, "ingest": (500_000, 3), "visits": 200_000}
    started = time.perf_counter()
    rows = accuracy(plan["sizes"], plan["seeds"], lg_k)  # type: ignore[arg-type]
    rows += lg_k_choice(*plan["choice"])  # type: ignore[misc]
    rows += sizes(lg_k)
    rows += read_cost(lg_k, plan["reads"])  # type: ignore[arg-type]
    rows += ingest_cost(*plan["ingest"], rate=100_000.0)  # type: ignore[misc]
    rows += visitor_cost(plan["visits"])  # type: ignore[arg-type]
    width = max(len(r[0]) for r in rows)
    print(f"lg_k {lg_k}; measured in {time.perf_counter() - started:.0f} s")
    for name, figure in rows:
        print(f"{name:<{width}}  {figure}")


if __name__ == "__main__":
    main()
