"""A writer process for the multi-writer tests: counts pre-built events at full speed into memcached.

``python -m tests.writer_proc PORT SEED EVENTS PREFIX`` prints its own exact totals as JSON.
"""

from __future__ import annotations

import json
import sys
import time

from tui.engine import Engine
from tui.events import EventFactory
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import MemcachedStore
from tui.window import merge_into

IDS = ("INF-a", "INF-b", "INF-c", "INF-d", "INF-e")
BATCH = 2_000  # one flush per batch: far more flushes than a live writer does, to force cas races


def main(port: int, seed: int, count: int, prefix: str) -> None:
    settings = Settings(tracking_ids=IDS, backend="memcached", memcached=MemcachedSettings((Server("127.0.0.1", port),), prefix))
    engine = Engine(settings, MemcachedStore(settings.memcached.servers, prefix), seed=seed, generate=False)
    factory = EventFactory(IDS, seed)
    totals: dict[str, dict[str, int]] = {}
    now_ms = int(time.time() * 1000)
    for start in range(0, count, BATCH):
        batch = [factory.make(now_ms) for _ in range(min(BATCH, count - start))]
        engine.ingest(batch)
        for event in batch:
            merge_into(totals, {event.type: {event.tracking_id: 1}})
        if not engine.flush():
            raise SystemExit(f"flush failed: {engine.status().store_error}")
    print(json.dumps(totals))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
