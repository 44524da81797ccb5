"""Both stores keep one contract; the memcached one is exact under concurrent writers (real server)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from tests import writer_proc
from tests.conftest import MemcachedServer, free_port
from tui import EVENT_TYPES
from tui.clock import FakeClock
from tui.engine import Engine, summary_documents
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import MemcachedStore, MemoryStore, Store, StoreUnavailable, open_store
from tui.window import cover, merge_into, summarize

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["memory", "memcached"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(clock)
        return
    server: MemcachedServer = request.getfixturevalue("memcached")
    mc = MemcachedStore([server.server], "t:")
    yield mc
    mc.close()


def test_writers_entries_are_summed_and_rewrites_are_idempotent(store: Store) -> None:
    store.write_buckets("w1", {(1, 5): {"signup": {"INF-a": 2}}}, 10, 600)
    store.write_buckets("w2", {(1, 5): {"signup": {"INF-a": 3, "INF-b": 1}}, (6, 0): {"review": {"INF-a": 1}}}, 10, 600)
    store.write_buckets("w1", {(1, 5): {"signup": {"INF-a": 2}}}, 10, 600)  # the same absolute counts again
    assert store.read_buckets([(1, 4), (1, 5), (6, 0)], 10) == {(1, 5): {"signup": {"INF-a": 5, "INF-b": 1}}, (6, 0): {"review": {"INF-a": 1}}}
    store.write_buckets("w1", {(1, 5): {"signup": {"INF-a": 4}}}, 10, 600)  # w1 counted two more
    assert store.read_buckets([(1, 5)], 10)[(1, 5)]["signup"]["INF-a"] == 7


def test_bucket_sizes_do_not_share_buckets(store: Store) -> None:
    store.write_buckets("w1", {(1, 5): {"signup": {"INF-a": 2}}}, 10, 600)
    assert store.read_buckets([(1, 5)], 60) == {}


def test_a_summary_is_replaced_only_by_a_fresher_one(store: Store) -> None:
    fresh = {"totalEventsCaptured": 9, "eventsCapturedByTrackingIds": {"INF-a": 9}, "asOfMs": 2_000}
    stale = {"totalEventsCaptured": 4, "eventsCapturedByTrackingIds": {"INF-a": 4}, "asOfMs": 1_000}
    store.publish_summaries({"signup": fresh}, 600)
    store.publish_summaries({"signup": stale}, 600)
    assert store.read_summaries(["signup", "review"]) == {"signup": fresh, "review": None}


def test_generation_is_stable_while_the_server_keeps_its_data_and_changes_after_a_restart(memcached: MemcachedServer) -> None:
    store = MemcachedStore([memcached.server], "gen:")
    before = store.generation()
    store.write_buckets("w1", {(1, 5): {"signup": {"INF-a": 2}}}, 10, 600)
    assert MemcachedStore([memcached.server], "gen:").generation() == before  # another client, same data
    memcached.stop()
    memcached.start()
    after = store.generation()
    assert after != before
    assert store.generation() == after  # the new marker stays until the next loss


def test_summary_keys_are_readable_by_a_plain_client_with_one_get(memcached: MemcachedServer, clock: FakeClock) -> None:
    store = MemcachedStore([memcached.server], "eventdash:")
    now = clock.time()
    counts = {(1, int(now // 10)): {"signup": {"INF-a": 10, "INF-b": 40}}}
    view = summarize(now, 300, 10, counts)
    store.publish_summaries(summary_documents(view), 600)
    plain = Client(("127.0.0.1", memcached.port))
    value = json.loads(plain.get("eventdash:signup").decode("utf-8"))
    assert value["totalEventsCaptured"] == 50
    assert value["eventsCapturedByTrackingIds"] == {"INF-a": 10, "INF-b": 40}
    assert value["windowMinutes"] == 5 and value["bucketSeconds"] == 10 and value["asOf"].endswith("Z")


def _ttl(port: int, key: str) -> int:
    """Remaining TTL of ``key`` by memcached's meta get (``mg <key> t``), as any client sees it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"mg {key} t\r\n".encode())
        reply = sock.recv(256).decode()
    assert reply.startswith("HD"), reply
    return int(reply.split()[1][1:])


def test_every_key_expires_after_at_least_window_plus_one_bucket(memcached: MemcachedServer) -> None:
    settings = Settings(window_minutes=2, bucket_seconds=10, backend="memcached", memcached=MemcachedSettings((memcached.server,), "ttl:"))
    store = MemcachedStore([memcached.server], "ttl:")
    engine = Engine(settings, store, seed=1, generate=False)
    engine.ingest([("signup", "INF-a", int(engine.clock.time() * 1000), None)])
    assert engine.flush()
    engine.publish(engine.read_view())
    current = engine.read_view().buckets[-1]
    keys = [store.bucket_key(10, (span, current // span)) for span in (1, 6, 60, 360)]
    for key in (*keys, "ttl:signup", "ttl:review"):
        assert 120 + 10 < _ttl(memcached.port, key) <= 120 + 2 * 10 + 60


def test_only_counts_under_the_prefix_are_written_never_raw_events(memcached: MemcachedServer) -> None:
    settings = Settings(events_per_second=1_000, backend="memcached", memcached=MemcachedSettings((memcached.server,), "pii:"))
    clock = FakeClock(1_700_000_000.0)
    engine = Engine(settings, MemcachedStore([memcached.server], "pii:"), clock=clock, seed=3)
    clock.advance(2.0)
    engine.step()
    assert engine.flush()
    engine.publish(engine.read_view())
    stored = memcached.stored()
    assert stored and all(key.startswith("pii:") for key in stored)
    for value in stored.values():
        assert b"@example.com" not in value and b"geo" not in value and b"fingerprint" not in value


def test_concurrent_threads_on_one_bucket_lose_nothing(memcached: MemcachedServer) -> None:
    """8 writers race on the same bucket key; gets/cas keeps every writer's counts."""
    store = MemcachedStore([memcached.server], "race:")
    rounds = 60

    def writer(name: str) -> None:
        for n in range(1, rounds + 1):
            store.write_buckets(name, {(1, 1): {"signup": {"INF-a": n}}}, 10, 600)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.read_buckets([(1, 1)], 10) == {(1, 1): {"signup": {"INF-a": 8 * rounds}}}


WRITERS = 4
BATCHES = 300  # flushes per writer, each into a new bucket
MIN_CAS_BADVAL = 500  # rejected cas a run must show, so the test is known to have met the race
MIN_FAILED_ADDS = 50  # and adds that lost the race to create a new bucket's key


def test_four_writer_processes_colliding_on_every_flush_give_exact_totals(memcached: MemcachedServer) -> None:
    """4 processes flush 300 times each, released together every time, into the same new bucket;
    memcached's own ``cas_badval`` and the failed ``add`` count prove they raced; the window (as blocks and as single buckets) and the summary
    keys still equal the writers' own totals exactly."""
    start = 1_700_000_000.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.writer_proc", str(memcached.port), str(seed), str(BATCHES), "mw:", str(start)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )
        for seed in range(WRITERS)
    ]
    def all_say(word: str) -> None:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == word

    all_say("ready")  # nobody writes until everyone is connected
    for _ in range(BATCHES):  # then a barrier per flush: all four flush into the same new bucket at once
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        all_say("flushed")
    expected: dict[str, dict[str, int]] = {}
    for proc in procs:
        assert proc.stdout is not None and proc.stdin is not None
        merge_into(expected, json.loads(proc.stdout.readline()))
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    assert sum(sum(c.values()) for c in expected.values()) == WRITERS * BATCHES * writer_proc.BATCH

    plain = Client(("127.0.0.1", memcached.port))
    stats = plain.stats()
    # Every write is a cas or an add (no plain set): the sets that were neither a cas nor the add
    # that created a key were adds that found the key made by another writer first.
    failed_adds = stats[b"cmd_set"] - stats[b"cas_hits"] - stats[b"cas_badval"] - stats[b"curr_items"]
    print(f"cas_badval {stats[b'cas_badval']}, cas_hits {stats[b'cas_hits']}, failed adds {failed_adds}")
    assert stats[b"cas_badval"] >= MIN_CAS_BADVAL, "the writers did not race on cas: the test proves nothing"
    assert failed_adds >= MIN_FAILED_ADDS, "the writers did not race to create keys: the test proves nothing"

    settings = writer_proc.settings(memcached.port, "mw:")
    reader = Engine(settings, MemcachedStore([memcached.server], "mw:"), clock=FakeClock(start + BATCHES + 0.5), generate=False)
    view = reader.read_view()
    assert {span for span, _ in cover(view.buckets)} >= {1, 6, 60}  # the read used the shared blocks
    reader.publish(view)
    for etype in EVENT_TYPES:
        assert view.summary[etype].by_tracking_id == expected[etype]
        assert reader.read_view(series=True).summary[etype].by_tracking_id == expected[etype]  # every bucket
        stored = json.loads(plain.get(f"mw:{etype}"))
        assert stored["totalEventsCaptured"] == sum(expected[etype].values())
        assert stored["eventsCapturedByTrackingIds"] == expected[etype]


def test_a_restarted_server_gets_each_writers_buckets_back_once(memcached: MemcachedServer, clock: FakeClock) -> None:
    settings = Settings(events_per_second=100, tracking_ids=("INF-a", "INF-b"), backend="memcached", memcached=MemcachedSettings((memcached.server,), "rs:"))
    writers = [Engine(settings, MemcachedStore([memcached.server], "rs:"), clock=clock, seed=s) for s in (1, 2)]
    for _ in range(3):
        clock.advance(10.0)
        for writer in writers:
            writer.step()
            assert writer.flush()
    before = writers[0].read_view().summary_json()
    assert writers[0].read_view().total == 2 * 3_000
    memcached.stop()
    memcached.start()
    for writer in writers:
        assert writer.flush()  # a new generation: each writes back what it holds
        assert writer.flush()  # and only once
        assert writer.status().restores == 1
    assert writers[1].read_view().summary_json() == before


def test_unreachable_server_is_reported_by_address() -> None:
    port = free_port()
    store = MemcachedStore([Server("127.0.0.1", port)], "x:")
    with pytest.raises(StoreUnavailable, match=f"memcached 127.0.0.1:{port}: reading buckets failed"):
        store.read_buckets([(1, 1)], 10)
    health = store.health()
    assert not health.ok and f"127.0.0.1:{port}" in health.detail


def test_auto_falls_back_to_memory_and_says_why() -> None:
    port = free_port()
    settings = Settings(backend="auto", memcached=MemcachedSettings((Server("127.0.0.1", port),)))
    opened = open_store(settings)
    assert isinstance(opened.store, MemoryStore)
    assert opened.reason == f"memcached 127.0.0.1:{port} unreachable (Connection refused): counting in the embedded store"
    assert opened.unreachable == f"memcached 127.0.0.1:{port} unreachable (Connection refused)"


def test_auto_uses_memcached_when_it_answers(memcached: MemcachedServer) -> None:
    settings = Settings(backend="auto", memcached=MemcachedSettings((memcached.server,)))
    opened = open_store(settings)
    assert isinstance(opened.store, MemcachedStore)
    assert opened.reason.startswith(f"memcached {memcached.address} answered in ")
    assert opened.unreachable is None

