"""History queries at 100,000 ids (issue 12): run by ``bench/run.py`` (section ``query``) or alone:

    python bench/query.py [--smoke]

One memcached on a free loopback port holds a day of one type-mix's traffic over 100,000 Zipf ids:
the last hour as 1,000,000 events with their own timestamps, counted through the writer path
(Ledger, WriterState, Store.write) into every level; the 23 hours before as 1 h blocks, each holding
that hour's counts again (a real day's older hours are read only at the 1 h level). The same last
hour's events go into SQLite (indexed on the timestamp), the baseline. Measured, each checked exact:

(a) one type, one id, the last 24 h at 1 h steps: ``run_query`` in this process;
(b) one type, all ids, the last hour at 1 m steps: ``run_query`` against SQLite's scan;
(b') the same grouped by tracking id at 10 m steps (reported, no goal);
(c) ``GET /api/v1/aggregates`` for (a) from a real ``eventdash serve`` at a constant 200 requests/s,
    latency from each request's scheduled send time (a late request is not forgiven);
(d) memcached's bytes per id per day at the default retention, from the values written.
Bounded: fixed counts of iterations and requests, a wall-clock cap on the HTTP run.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
from bench.stats import pct  # noqa: E402

import aiohttp

from tests.conftest import MemcachedServer, free_port
from tui import EVENT_TYPES
from tui.events import TYPE_WEIGHTS, generated_ids, zipf_cdf
from tui.history import QueryParams, parse_query, run_query
from tui.settings import Server, Settings
from tui.store import MemcachedStore, prefix_settings
from tui.store.layout import Layout
from tui.store.writer_state import WriterState, deltas_by_key
from tui.window import LEVELS, Block, Ledger

PREFIX = "q:"
TYPES = [t for t in EVENT_TYPES for _ in range(TYPE_WEIGHTS[t])]
ZIPF = 1.1
#: memcached's own bytes per item besides key and value (item header with CAS, measured 1.6: 56)
ITEM_OVERHEAD = 56
SIZES = {
    "quick": {"ids": 100_000, "events": 1_000_000, "a": 300, "b": 100, "sqlite": 3, "grouped": 2, "http_seconds": 10},
    "smoke": {"ids": 1_000, "events": 20_000, "a": 20, "b": 10, "sqlite": 2, "grouped": 1, "http_seconds": 2},
}
HTTP_RATE = 200



def summary_ms(samples: list[float]) -> dict[str, float]:
    return {"p50": pct(samples, 0.5), "p99": pct(samples, 0.99), "n": len(samples)}


def write_blocks(store: MemcachedStore, layout: Layout, blocks: dict[Block, dict[str, dict[str, int]]], now: float) -> None:
    state = WriterState("bench")
    state.stage(deltas_by_key(blocks, layout))
    store.write(layout, state, lambda ident: None, now, everything=True)


def build(store: MemcachedStore, layout: Layout, size: dict[str, int], now: float, db: sqlite3.Connection) -> tuple[list[str], Counter[tuple[str, str]], int]:
    """Write the day; returns the ids, one hour's counts by (type, id), and the first synthesized hour."""
    ids = list(generated_ids(size["ids"]))
    cdf = zipf_cdf(len(ids), ZIPF)
    rng = random.Random(12)
    now_ms = int(now * 1000)
    events = [
        (TYPES[int(rng.random() * 10)], ids[min(bisect.bisect_right(cdf, rng.random()), len(ids) - 1)], now_ms - 1 - int(rng.random() * 3_600_000))
        for _ in range(size["events"])
    ]
    db.execute("CREATE TABLE events (ts INTEGER, type TEXT, tid TEXT)")
    db.executemany("INSERT INTO events VALUES (?, ?, ?)", ((ts, t, i) for t, i, ts in events))
    db.execute("CREATE INDEX by_ts ON events (ts)")
    db.commit()
    ledger = Ledger(layout.bucket_seconds)
    ledger.record(events)
    write_blocks(store, layout, ledger.take_deltas(), now)
    hour = Counter((t, i) for t, i, _ in events)
    per_type: dict[str, dict[str, int]] = {}
    for (etype, tid), n in hour.items():
        per_type.setdefault(etype, {})[tid] = n
    first_real = (now_ms - 3_600_000) // (3_600_000)  # the hour block holding the oldest events
    for h in range(first_real - 23, first_real):
        write_blocks(store, layout, {(360, h): per_type}, now)
    return ids, hour, first_real - 23


def bytes_of(store: MemcachedStore, layout: Layout, blocks: list[Block]) -> int:
    keys = [layout.head_key(b) for b in blocks] + [layout.shard_key(b, t, k) for b in blocks for t in EVENT_TYPES for k in range(layout.shards)]
    total = 0
    for i in range(0, len(keys), 1000):
        found = store.get_many(keys[i : i + 1000])
        total += sum(len(k.encode()) + len(v) + ITEM_OVERHEAD for k, v in found.items())
    return total


def memory(store: MemcachedStore, layout: Layout, now: float, synthesized_hour: int, ids_in_hour: int) -> dict[str, Any]:
    """Bytes that one hour of this traffic takes at each level, and what the default retention holds."""
    current = int(now) // layout.bucket_seconds
    per_level: dict[str, float] = {}
    for span in LEVELS[:-1]:
        blocks = [(span, j) for j in range((current - 360) // span + 1, current // span)]  # closed blocks of the last hour
        per_level[f"x{span}"] = bytes_of(store, layout, blocks) * (360 / (len(blocks) * span))
    per_level["x360"] = bytes_of(store, layout, [(360, synthesized_hour)])
    retention_hours = {f"x{s}": layout.retention[s] / 3600 for s in LEVELS}
    held = sum(per_level[name] * hours for name, hours in retention_hours.items())
    day = sum(per_level[name] * 24 for name in ("x6", "x60", "x360"))
    return {
        "bytes_per_hour_by_level": per_level, "retention_hours": retention_hours, "ids_in_hour": ids_in_hour,
        "bytes_per_id_per_day": day / ids_in_hour, "held_bytes_at_defaults": held, "held_bytes_per_id": held / ids_in_hour,
    }


async def constant_rate(url: str, rate: int, seconds: float, expect: int | None) -> dict[str, Any]:
    """``rate`` GETs a second for ``seconds``, each sent at its scheduled time (at most 256 in flight);
    latency is measured from the schedule, so a request delayed by a slow one counts as slow."""
    latencies: list[float] = []
    wrong: list[str] = []  # answered 200 with another count: a bug, never tolerated
    failed: list[str] = []  # not answered in time or not 200: counted against the goal
    limit = asyncio.Semaphore(256)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), timeout=aiohttp.ClientTimeout(total=5)) as session:
        for _ in range(20):  # warm-up: connections, the server's layout
            async with session.get(url) as answer:
                await answer.read()

        async def one(scheduled: float) -> None:
            async with limit:
                try:
                    async with session.get(url) as answer:
                        body = await answer.json()
                    if answer.status != 200:
                        failed.append(f"status {answer.status}")
                    elif expect is not None and (got := sum(r["count"] for r in body["rows"])) != expect:
                        wrong.append(f"count {got}, not {expect}")
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    failed.append(type(exc).__name__)
                latencies.append((time.perf_counter() - scheduled) * 1000)

        began = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            scheduled = began + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 30)
        elapsed = time.perf_counter() - began
    assert not wrong, f"{len(wrong)} answers were wrong, e.g. {wrong[:3]}"
    return {**summary_ms(latencies), "rate": rate, "achieved": len(latencies) / elapsed, "failed": len(failed), "first_failed": failed[:3]}


def serve(port: int, memcached_port: int, state: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state),
         "--backend", "memcached", "--memcached", f"127.0.0.1:{memcached_port}", "--key-prefix", PREFIX],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if "serve: listening on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("eventdash serve did not start")


def run(port: int, mode: str) -> dict[str, Any]:
    size = SIZES["smoke" if mode == "smoke" else "quick"]
    store = MemcachedStore([Server("127.0.0.1", port)], PREFIX)
    layout = store.open_prefix(prefix_settings(Settings()))
    db = sqlite3.connect(":memory:", check_same_thread=False)
    started = time.monotonic()
    now = time.time()
    ids, hour, synthesized = build(store, layout, size, now, db)
    built_s = time.monotonic() - started
    print(f"query bench: the day written in {built_s:.0f} s", file=sys.stderr, flush=True)
    one_id = ids[10]  # an id with traffic in most minutes: rank 11 of the Zipf ranking

    def one_id_day() -> Any:
        t = time.time()
        return run_query(store, layout, parse_query(QueryParams("-24h", "now", "1h", ["signup"], [one_id]), t, 10), t)

    result = one_id_day()
    first_real = synthesized + 23

    def expected_hour(start: int) -> int:
        if start // 3_600_000 < first_real:
            return hour[("signup", one_id)] if start // 3_600_000 >= synthesized else 0
        return db.execute(
            "SELECT COUNT(*) FROM events WHERE type = 'signup' AND tid = ? AND ts >= ? AND ts < ?", (one_id, start, start + 3_600_000)
        ).fetchone()[0]

    exact_a = all(r.count == expected_hour(r.start_ms) for r in result.rows) and not result.incomplete
    total_a = sum(r.count for r in result.rows)
    a_ms = []
    for _ in range(size["a"]):
        began = time.perf_counter()
        one_id_day()
        a_ms.append((time.perf_counter() - began) * 1000)

    def type_hour(group: str | None = None, step: str = "1m") -> Any:
        t = time.time()
        return run_query(store, layout, parse_query(QueryParams("-1h", "now", step, ["signup"], [], group), t, 10), t)

    b_ms, sql_ms = [], []
    for _ in range(size["b"]):
        began = time.perf_counter()
        answer = type_hour()
        b_ms.append((time.perf_counter() - began) * 1000)
    start_ms, end_ms = answer.query.start_ms, answer.query.end_ms
    for _ in range(size["sqlite"]):
        began = time.perf_counter()
        scanned = dict(db.execute(
            "SELECT (ts - ?) / 60000, COUNT(*) FROM events WHERE type = 'signup' AND ts >= ? AND ts < ? GROUP BY 1", (start_ms, start_ms, end_ms)
        ).fetchall())
        sql_ms.append((time.perf_counter() - began) * 1000)
    exact_b = {(r.start_ms - start_ms) // 60_000: r.count for r in answer.rows if r.count} == scanned and not answer.incomplete
    grouped_ms = []
    for _ in range(size["grouped"]):
        began = time.perf_counter()
        grouped = type_hour("tracking_id", "10m")
        grouped_ms.append((time.perf_counter() - began) * 1000)
    assert exact_a and exact_b, f"a query disagrees with the recount: one id 24 h exact {exact_a}, one type 1 h exact {exact_b}"
    mem = memory(store, layout, now, synthesized, len({i for _, i in hour}))
    print(f"query bench: reads measured at {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    store.close()

    http_port = free_port()
    with tempfile.TemporaryDirectory() as state:
        proc = serve(http_port, port, Path(state))
        try:
            base = f"http://127.0.0.1:{http_port}"
            url = f"{base}/api/v1/aggregates?from=-24h&step=1h&type=signup&tracking_id={one_id}"
            http = asyncio.run(constant_rate(url, HTTP_RATE, size["http_seconds"], total_a))
            floor = asyncio.run(constant_rate(f"{base}/healthz", HTTP_RATE, size["http_seconds"], None))  # the same stack, no query
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "ids": size["ids"], "events_last_hour": size["events"], "build_seconds": built_s,
        "one_id_24h_1h_ms": {**summary_ms(a_ms), "exact": exact_a, "count": total_a},
        "type_1h_1m_ms": {**summary_ms(b_ms), "exact": exact_b, "rows": len(answer.rows)},
        "sqlite_scan_ms": summary_ms(sql_ms),
        "type_1h_10m_by_id_ms": {**summary_ms(grouped_ms), "rows": len(grouped.rows)},
        "http_one_id": http, "http_healthz": floor, "memory": mem,
    }


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, bool]]:
    """bench/run.py's table rows for this section."""
    a, b, s, g, h, m = r["one_id_24h_1h_ms"], r["type_1h_1m_ms"], r["sqlite_scan_ms"], r["type_1h_10m_by_id_ms"], r["http_one_id"], r["memory"]
    floor = r["http_healthz"]
    ids = f"{r['ids']:,} ids"
    return [
        (f"15. query: one id, one type, 24 h at 1 h steps, {ids}", f"p50 {a['p50']:.2f} / p99 {a['p99']:.2f} ms, exact: {'yes' if a['exact'] else 'NO'}",
         "", "", "p99 ≤ 5 ms", bool(a["exact"]) and a["p99"] <= 5),
        (f"   all ids of one type, last hour at 1 m steps ({r['events_last_hour']:,} events)", f"p50 {b['p50']:.2f} / p99 {b['p99']:.2f} ms, exact: {'yes' if b['exact'] else 'NO'}",
         f"SQLite scan p50 {s['p50']:.0f} / p99 {s['p99']:.0f} ms", f"{s['p50'] / b['p50']:,.0f}×", "p99 ≤ 500 ms", b["exact"] and b["p99"] <= 500),
        (f"   the same grouped by id, 10 m steps ({g['rows']:,} rows)", f"p50 {g['p50']:.0f} / p99 {g['p99']:.0f} ms", "", "", "(reported)", True),
        (f"   GET /api/v1/aggregates one id at {h['rate']} req/s", f"p50 {h['p50']:.1f} / p99 {h['p99']:.1f} ms, {h['failed']} failed", f"/healthz at the same rate: p99 {floor['p99']:.1f} ms", "",
         "p99 ≤ 20 ms", h["failed"] == 0 and h["p99"] <= 20),
        ("   memcached per id per day (default retention)", f"{m['bytes_per_id_per_day']:,.0f} B", f"{m['ids_in_hour']:,} ids with events per hour", "",
         "(documented)", True),
    ]


def run_own(mode: str) -> dict[str, Any]:
    """The whole section on a memcached of its own (1 GB: a day at this traffic is ~55 MB here, and
    the other sections' data must not be evicted by it)."""
    server = MemcachedServer(memory_mb=1024)
    server.start()
    try:
        return run(server.port, mode)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: exactness only")
    args = parser.parse_args()
    result = run_own("smoke" if args.smoke else "quick")
    print(json.dumps(result, indent=2))
    for row in rows(result):
        print(" | ".join(str(c) for c in row))


if __name__ == "__main__":
    main()
