"""Store v2 goals (issue 10): scale to 100,000 ids and 8 writers, reads at 100,000 ids, writer churn,
writer memory. Run by ``bench/run.py`` (section ``store_v2``) or alone:

    python bench/store_v2.py [--seconds 60] [--churn 1000]

Each writer process makes Zipf traffic over the same 100,000 ids from its own seed, counts it into
a pipeline's writer (flush once a second, as live) and into a plain Counter, the recount the store must equal.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing as mp
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
from bench.stats import pct  # noqa: E402

import psutil
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, all_keys
from tui import EVENT_TYPES
from tui.events import TYPE_WEIGHTS, generated_ids, zipf_cdf
from tui.pipeline import Pipeline, Reader
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import MemcachedStore
from tui.store.codec import decode_head, decode_shard
from tui.store.layout import Layout, parent
from tui.store.reads import ancestors, children
from tui.window import Block, plan_window, window_range

IDS = 100_000
ZIPF = 1.1
TYPES = [t for t in EVENT_TYPES for _ in range(TYPE_WEIGHTS[t])]



def settings_for(port: int, prefix: str, window_minutes: float = 5) -> Settings:
    return Settings(window_minutes=window_minutes, backend="memcached", memcached=MemcachedSettings((Server("127.0.0.1", port),), prefix))


def writer(port: int, prefix: str, seconds: float, rate: float, seed: int, out: Any) -> None:
    """One writer process: ``rate`` Zipf events a second for ``seconds``, one flush a second."""
    ids = generated_ids(IDS)
    cdf = zipf_cdf(IDS, ZIPF)
    rng = random.Random(seed)
    pipeline = Pipeline(settings_for(port, prefix), MemcachedStore([Server("127.0.0.1", port)], prefix), generate=False)
    own: Counter[tuple[str, str]] = Counter()
    flush_ms: list[float] = []
    began = time.monotonic()
    made = 0
    while (elapsed := time.monotonic() - began) < seconds:
        due = int(elapsed * rate) - made
        now_ms = int(time.time() * 1000)
        batch = [(TYPES[int(rng.random() * 10)], ids[min(bisect.bisect_right(cdf, rng.random()), IDS - 1)], now_ms, None) for _ in range(max(0, due))]
        made += len(batch)
        pipeline.writer.ingest(batch)  # type: ignore[arg-type]
        own.update((e[0], e[1]) for e in batch)
        started = time.perf_counter()
        assert pipeline.writer.flush(), pipeline.status().store_error
        flush_ms.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - began - elapsed)))
    ran = time.monotonic() - began
    assert pipeline.writer.flush(everything=True)
    out.put((made, ran, time.monotonic() - began - ran, flush_ms, dict(own)))


def scale_run(port: int, writers: int, seconds: float, total_rate: float, prefix: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=writer, args=(port, prefix, seconds, total_rate / writers, seed, out)) for seed in range(writers)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds + 300) for _ in procs]
    for proc in procs:
        proc.join()
    expected: Counter[tuple[str, str]] = Counter()
    for *_, own in results:
        expected.update(own)
    reader = Reader(settings_for(port, prefix), MemcachedStore([Server("127.0.0.1", port)], prefix))
    view = reader.refresh()
    got = Counter({(t, tid): n for t in EVENT_TYPES for tid, n in view.summary[t].by_tracking_id.items()})
    flushes = [ms for *_, f, _ in results for ms in f]
    values = {k: v for k, v in all_keys(port).items() if k.startswith(prefix)}
    return {
        "writers": writers,
        "events": sum(r[0] for r in results),
        # The rate sustained while running (every second's events flushed by the next second), and
        # apart from it the exit flush, which writes every coarse block's remaining shards at once.
        "events_per_s": sum(r[0] for r in results) / max(r[1] for r in results),
        "exit_flush_s": max(r[2] for r in results),
        "exact": got == expected and not view.incomplete,
        "incomplete": view.incomplete_json()[:3],
        "ids_seen": len({tid for _, tid in expected}),
        # The pacing makes the events whatever the flushes cost; the writers kept up only if every
        # flush ended within its one-second interval.
        "flush_ms": {"p50": statistics.median(flushes), "p99": pct(flushes, 0.99), "max": max(flushes)},
        "max_value_bytes": max(len(v) for v in values.values()),
        "value_bytes": sum(len(v) + len(k) for k, v in values.items()),
    }


def two_trips(store: MemcachedStore, layout: Layout, blocks: list[Block], etype: str, tid: str) -> int:
    """The baseline for one id over a long window: the read as it was before it took one round
    trip, in the same run. The heads and their ancestors' heads, the children's heads of a missing
    top-level head (the same lost-or-empty rule), then the id's shard of each block whose head lists
    it; every value decoded and checked, nothing kept between reads. Returns the id's count."""
    wanted = set(blocks) | {a for b in blocks for a in ancestors(b)}
    found = store.get_many([layout.head_key(b) for b in sorted(wanted, key=lambda b: -b[0])])
    heads = {b: found.get(layout.head_key(b)) for b in wanted}
    tops = [b for b in blocks if heads[b] is None and parent(b) is None]
    if tops:
        found = store.get_many([layout.head_key(c) for b in tops for c in children(b)])
        heads.update({c: found.get(layout.head_key(c)) for b in tops for c in children(b)})
    shard = layout.shard(tid)
    listed = [b for b in blocks if (raw := heads[b]) is not None and shard in decode_head(raw, layout.shards, b[0]).shards.get(etype, ())]
    values = store.get_many([layout.shard_key(b, etype, shard) for b in listed])
    return sum(decode_shard(raw).counts.get(tid, 0) for raw in values.values())


def reads(port: int, prefix: str, iterations: int) -> dict[str, Any]:
    """At 100,000 ids, after the scale run on ``prefix``: one id (5 min: its shard's summary key;
    24 h: recomputed from the blocks, one round trip, against :func:`two_trips` in the same run),
    a type's published summary, and the full recompute."""
    store = MemcachedStore([Server("127.0.0.1", port)], prefix)
    reader = Reader(settings_for(port, prefix), store)
    view = reader.refresh()
    layout = reader.layout()
    tids = list(view.summary["user-event"].by_tracking_id)[:iterations]
    plain = Client(("127.0.0.1", port), no_delay=True)

    def timed(fn: Any, n: int) -> list[float]:
        samples = []
        for i in range(n):
            started = time.perf_counter()
            fn(i)
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    one_5 = timed(lambda i: json.loads(plain.get(layout.shard_summary_key("user-event", layout.shard(tids[i % len(tids)])))), iterations)
    now = time.time()  # the 24 h window's blocks, planned as read_view plans them
    blocks, _ = plan_window(window_range(now, 86_400, 10), layout.usable(now))
    one_24 = timed(lambda i: store.read(layout, blocks, only=("user-event", tids[i % len(tids)])), iterations)
    old_24 = timed(lambda i: two_trips(store, layout, blocks, "user-event", tids[i % len(tids)]), iterations)
    for tid in tids[:20]:  # the baseline reads the same counts
        found = store.read(layout, blocks, only=("user-event", tid))
        assert sum(c.get("user-event", {}).get(tid, 0) for c in found.counts.values()) == two_trips(store, layout, blocks, "user-event", tid)
    summary = timed(lambda i: json.loads(plain.get(layout.summary_key("user-event"))), iterations)
    recompute = timed(lambda i: reader.read_view(), max(3, iterations // 20))
    return {
        "one_id_5min_ms": {"p50": statistics.median(one_5), "p99": pct(one_5, 0.99)},
        "one_id_24h_ms": {"p50": statistics.median(one_24), "p99": pct(one_24, 0.99), "blocks": len(blocks)},
        "one_id_24h_two_trips_ms": {"p50": statistics.median(old_24), "p99": pct(old_24, 0.99)},
        "type_summary_5min_ms": {"p50": statistics.median(summary), "p99": pct(summary, 0.99)},
        "recompute_5min_ms": {"p50": statistics.median(recompute), "p99": pct(recompute, 0.99)},
    }


def churn(port: int, writers: int) -> dict[str, Any]:
    """``writers`` short-lived writers (a new writer id each) over one window: exact, values small."""
    prefix = "churn:"
    ids = tuple(f"INF-{i:04d}" for i in range(100))
    expected: Counter[tuple[str, str]] = Counter()
    rng = random.Random(7)
    started = time.monotonic()
    for _ in range(writers):
        pipeline = Pipeline(settings_for(port, prefix), MemcachedStore([Server("127.0.0.1", port)], prefix), generate=False)
        now_ms = int(time.time() * 1000)
        batch = [(TYPES[int(rng.random() * 10)], ids[int(rng.random() * 100)], now_ms, None) for _ in range(100)]
        pipeline.writer.ingest(batch)  # type: ignore[arg-type]
        expected.update((e[0], e[1]) for e in batch)
        assert pipeline.writer.flush(everything=True)
        pipeline.store.close()
    reader = Reader(settings_for(port, prefix), MemcachedStore([Server("127.0.0.1", port)], prefix))
    view = reader.read_view()
    got = Counter({(t, tid): n for t in EVENT_TYPES for tid, n in view.summary[t].by_tracking_id.items()})
    values = {k: v for k, v in all_keys(port).items() if k.startswith(prefix)}
    return {"writers": writers, "exact": got == expected and not view.incomplete, "max_value_bytes": max(len(v) for v in values.values()),
            "seconds": time.monotonic() - started}


def writer_rss(port: int, ids: int, seconds: float) -> float:
    """RSS (MB) of a headless writer at 2,500 events/s over ``ids`` Zipf ids, after ``seconds``."""
    args = ["--tracking-ids", str(ids), "--zipf", str(ZIPF)] if ids > 10 else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--headless", "--backend", "memcached", "--memcached", f"127.0.0.1:{port}", "--key-prefix", f"rss{ids}:",
         "--rate", "2500", "--duration", str(seconds + 5), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )
    time.sleep(seconds)
    rss = psutil.Process(proc.pid).memory_info().rss / 1e6
    proc.wait(timeout=120)
    return rss


def run(seconds: float, churn_writers: int, read_iterations: int) -> dict[str, Any]:
    server = MemcachedServer(memory_mb=1024)
    server.start()
    try:
        slow = scale_run(server.port, 1, seconds, 2_500, "slow:")  # the flush of one writer at a moderate rate
        bytes_slow = int(Client(("127.0.0.1", server.port)).stats()[b"bytes"])
        one = scale_run(server.port, 1, seconds, 20_000, "one:")
        bytes_after_one = int(Client(("127.0.0.1", server.port)).stats()[b"bytes"])
        eight = scale_run(server.port, 8, seconds, 20_000, "eight:")
        bytes_both = int(Client(("127.0.0.1", server.port)).stats()[b"bytes"])
        result: dict[str, Any] = {"seconds": seconds, "one_writer_2500": slow, "one_writer": one, "eight_writers": eight,
                                  "bytes_ratio": (bytes_both - bytes_after_one) / (bytes_after_one - bytes_slow), "evictions": int(Client(("127.0.0.1", server.port)).stats()[b"evictions"])}
        result["reads"] = reads(server.port, "eight:", read_iterations)
        result["churn"] = churn(server.port, churn_writers)
        result["rss_mb"] = {"10": writer_rss(server.port, 10, min(seconds, 20)), "100000": writer_rss(server.port, 100_000, min(seconds, 20))}
        return result
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--churn", type=int, default=1_000)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.churn, args.reads), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
