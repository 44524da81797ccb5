"""A writer process for the multi-writer test, built to collide with the others on purpose.

``python -m tests.writer_proc PORT SEED BATCHES PREFIX START`` prints ``ready`` once connected, then
flushes BATCHES times, each batch stamped into a new 1 s bucket on a fake clock that starts at epoch
second START. Before each flush it waits for a line on stdin and after it prints ``flushed``: the
test releases all writers at once for every flush (a barrier), so writers given the same START race
to create the same new bucket keys (``add``) and to update the same block keys (``cas``) every time,
instead of drifting apart. At the end it prints its own exact totals as JSON.
"""

from __future__ import annotations

import json
import sys

from tui.clock import FakeClock
from tui.events import EventFactory
from tui.pipeline import Pipeline
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import MemcachedStore
from tui.window import merge_into

IDS = ("INF-a", "INF-b", "INF-c", "INF-d", "INF-e")
BATCH = 100  # events per flush: small, so the writers spend their time in the store, racing
BUCKET_SECONDS = 1
WINDOW_MINUTES = 10  # 600 buckets: every batch of a run stays in the window


def settings(port: int, prefix: str) -> Settings:
    """What the writers and the test's reader share."""
    return Settings(
        tracking_ids=IDS,
        bucket_seconds=BUCKET_SECONDS,
        window_minutes=WINDOW_MINUTES,
        backend="memcached",
        memcached=MemcachedSettings((Server("127.0.0.1", port),), prefix),
    )


def main(port: int, seed: int, batches: int, prefix: str, start: float) -> None:
    config = settings(port, prefix)
    clock = FakeClock(start)
    pipeline = Pipeline(config, MemcachedStore(config.memcached.servers, prefix), clock=clock, seed=seed, generate=False)
    factory = EventFactory(IDS, seed)
    if not pipeline.writer.flush():  # connect and read the generation marker before the race starts
        raise SystemExit(f"first flush failed: {pipeline.status().store_error}")
    print("ready", flush=True)
    totals: dict[str, dict[str, int]] = {}
    for _ in range(batches):
        sys.stdin.readline()  # released together with the other writers
        clock.advance(BUCKET_SECONDS)  # a new bucket on every flush: every writer adds the same key
        now_ms = int(clock.time() * 1000)
        batch = [factory.make(now_ms) for _ in range(BATCH)]
        pipeline.writer.ingest(batch)
        for event in batch:
            merge_into(totals, {event.type: {event.tracking_id: 1}})
        if not pipeline.writer.flush():
            raise SystemExit(f"flush failed: {pipeline.status().store_error}")
        print("flushed", flush=True)
    print(json.dumps(totals), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
