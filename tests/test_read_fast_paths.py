"""The read API's shortcuts (issues 11 and 12's latency goals) answer exactly what the long way does:
a one-id read's plan kept for its second, the idle publish that is skipped while nothing changed,
and one-id reads on the event loop that go back to a thread once the store fails."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.conftest import MemcachedServer
from tui.clock import FakeClock
from tui.pipeline import Pipeline
from tui.service.ports import ReadUnavailable
from tui.service.store_ports import StoreReader
from tui.settings import MemcachedSettings, Settings
from tui.store import MemcachedStore, Store
from tui.window import plan_window, window_range

IDS = tuple(f"INF-{i:05d}" for i in range(50))


def settings_for(**changes: object) -> Settings:
    return Settings(tracking_ids=IDS, backend="memory", memcached=MemcachedSettings(key_prefix="t:"), **changes)  # type: ignore[arg-type]


def filled(store: Store, clock: FakeClock, seconds: int = 30) -> Pipeline:
    """A writer that counted ``seconds`` of generated events (flushed each second)."""
    pipeline = Pipeline(settings_for(), store, clock=clock, seed=3, writer_id="w3")
    for _ in range(seconds):
        clock.advance(1.0)
        pipeline.step()
        assert pipeline.writer.flush(), pipeline.status().store_error
    return pipeline


def as_of_ms(store: Store) -> int:
    published = store.read_summaries(["t:signup"])["t:signup"]
    assert published is not None
    return int(published["asOfMs"])


def test_a_one_id_plan_kept_for_its_second_equals_a_fresh_plan_at_every_instant(store: Store, clock: FakeClock) -> None:
    """Over 3 minutes in quarter seconds, the kept plan is always the plan made afresh at that
    instant; a 61-minute window's old edge passes the 10 s buckets' expiry in the middle of a bucket."""
    reader = filled(store, clock).reader
    layout = reader.layout()
    for seconds in (1800, 3660):
        for _ in range(3 * 60 * 4):
            clock.advance(0.25)
            now = clock.time()
            fresh = plan_window(window_range(now, seconds, 10), layout.usable(now))
            assert reader._plan(layout, now, seconds) == fresh, (seconds, now)


def test_an_unchanged_window_is_not_republished_until_its_heads_or_its_bucket_change(store: Store, clock: FakeClock) -> None:
    pipeline = filled(store, clock)
    reader = pipeline.reader
    clock.advance(10 - clock.time() % 10 + 0.5)  # early in a bucket: the next 5 s stay in it
    assert reader.refresh_if_changed() is True
    first = as_of_ms(store)
    clock.advance(1.0)
    assert reader.refresh_if_changed() is False  # nothing new: the keys stay, still true as of ``first``
    assert as_of_ms(store) == first
    pipeline.writer.submit([("signup", "INF-00001", int(clock.time() * 1000))])
    assert pipeline.writer.flush()
    clock.advance(1.0)
    assert reader.refresh_if_changed() is True  # a new count: published at once
    assert as_of_ms(store) > first
    published = store.read_summaries(["t:signup"])["t:signup"]
    assert published is not None
    assert published["eventsCapturedByTrackingIds"] == reader.read_view().summary["signup"].by_tracking_id
    second = as_of_ms(store)
    clock.advance(10.0)  # the window moved a bucket: published again though nothing was counted
    assert reader.refresh_if_changed() is True
    assert as_of_ms(store) > second


def test_one_id_reads_run_on_the_loop_and_go_to_a_thread_after_the_store_failed(memcached: MemcachedServer, clock: FakeClock) -> None:
    store = MemcachedStore([memcached.server], "t:")
    try:
        reader = filled(store, clock).reader
        threads: list[str] = []
        read_one = reader.read_one

        def spied(*args: Any) -> Any:
            threads.append(threading.current_thread().name)
            return read_one(*args)

        reader.read_one = spied  # type: ignore[method-assign,assignment]
        api = StoreReader(reader, 3600)
        tid = next(t for t, n in reader.read_view().summary["signup"].by_tracking_id.items() if n)

        async def reads() -> int:
            loop_thread = threading.current_thread().name
            answer = await api.summary_for("signup", tid, 5)
            assert threads == [loop_thread]
            memcached.stop()
            with pytest.raises(ReadUnavailable):
                await api.summary_for("signup", tid, 5)  # found failing on the loop (refused at once)
            with pytest.raises(ReadUnavailable):
                await api.summary_for("signup", tid, 5)  # now in a thread: a hanging store stalls no request
            assert threads[1] == loop_thread and threads[2] != loop_thread
            memcached.start()
            await api.summary_for("signup", tid, 5)  # answered (in a thread): back on the loop next
            await api.summary_for("signup", tid, 5)
            assert threads[3] != loop_thread and threads[4] == loop_thread
            return int(answer.data["count"])

        expected = reader.read_view().summary["signup"].by_tracking_id[tid]
        assert asyncio.run(reads()) == expected > 0
    finally:
        store.close()
