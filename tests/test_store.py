"""Both stores keep one contract; the memcached one is exact under concurrent writers (real server)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from pymemcache.client.base import Client

from tests import writer_proc
from tests.conftest import MemcachedServer, free_port, ttl
from tui import EVENT_TYPES
from tui.clock import FakeClock
from tui.pipeline import Pipeline, Reader
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import (
    MemcachedStore,
    MemoryStore,
    PrefixConflict,
    Store,
    StoreUnavailable,
    open_store,
)
from tui.store.base import PrefixSettings
from tui.store.layout import Layout
from tui.store.publishing import summary_documents
from tui.store.writer_state import WriterState, deltas_by_key
from tui.window import Block, BucketCounts, merge_into, plan_window, summarize

REPO = Path(__file__).resolve().parent.parent


PREFIX = PrefixSettings(10, Settings().retention, 5)
NOW = 1_700_000_000.0
B = 170_000_000  # the bucket of NOW (10 s buckets): blocks near it are within retention


def _write(store: Store, state: WriterState, blocks: dict[Block, BucketCounts]) -> Layout:
    layout = store.open_prefix(PREFIX)
    state.stage(deltas_by_key(blocks, layout))
    store.write(layout, state, lambda ident: None, NOW, everything=True)
    return layout


def test_writers_deltas_are_summed_and_a_retried_write_is_skipped(store: Store) -> None:
    w1, w2 = WriterState("w1"), WriterState("w2")
    _write(store, w1, {(1, B): {"signup": {"INF-a": 2}}})
    _write(store, w2, {(1, B): {"signup": {"INF-a": 3, "INF-b": 1}}, (6, B // 6): {"review": {"INF-a": 1}}})
    layout = store.open_prefix(PREFIX)
    w1.stage(deltas_by_key({(1, B): {"signup": {"INF-a": 4}}}, layout))
    unconfirmed = copy.deepcopy(w1.pending)
    store.write(layout, w1, lambda ident: None, NOW, everything=True)
    w1.pending = unconfirmed  # as if the reply to that write was lost: the writer tries again
    store.write(layout, w1, lambda ident: None, NOW, everything=True)
    found = store.read(layout, [(1, B - 1), (1, B), (6, B // 6)])
    assert found.counts == {(1, B): {"signup": {"INF-a": 9, "INF-b": 1}}, (6, B // 6): {"review": {"INF-a": 1}}}
    assert found.totals[(1, B)] == {"signup": 10} and found.gaps == []


def test_a_writer_restored_from_a_checkpoint_saved_before_its_write_applies_that_write_once(store: Store) -> None:
    """``serve`` saves its checkpoint just before a write; ``kill -9`` after the write reached the
    store leaves the entry pending and never tried in the checkpoint. Deltas staged after the
    restart must not merge into that entry under a new sequence number, or the store, which has
    applied the first one, applies it again (bench/serve.py's kill runs found such doubles)."""
    layout = store.open_prefix(PREFIX)
    writer = WriterState("w1")
    writer.stage(deltas_by_key({(1, B): {"signup": {"INF-a": 2}}}, layout))
    checkpoint = json.loads(json.dumps(writer.to_plain()))
    store.write(layout, writer, lambda ident: None, NOW, everything=True)  # reached the store; then kill -9
    restarted = WriterState.from_plain(checkpoint)
    restarted.stage(deltas_by_key({(1, B): {"signup": {"INF-a": 3}}}, layout))  # replayed from the spool
    store.write(layout, restarted, lambda ident: None, NOW, everything=True)
    assert store.read(layout, [(1, B)]).counts == {(1, B): {"signup": {"INF-a": 5}}}


def test_a_restored_writer_never_reuses_a_sequence_number_its_crashed_run_wrote(store: Store) -> None:
    """After the checkpoint the crashed run went on numbering (a head lists a shard once it is
    written, under the next number). Had the restarted writer numbered its next deltas from the
    checkpoint again, the head would skip them as already applied, and readers would miss events
    that got a 202 (bench/serve.py's kill runs under concurrent load found such losses)."""
    layout = store.open_prefix(PREFIX)
    writer = WriterState("w1")
    writer.stage(deltas_by_key({(1, B): {"signup": {f"INF-a{i}": 1 for i in range(40)}}}, layout))
    checkpoint = json.loads(json.dumps(writer.to_plain()))
    store.write(layout, writer, lambda ident: None, NOW, everything=True)  # reached the store; then kill -9
    restarted = WriterState.from_plain(checkpoint)
    restarted.stage(deltas_by_key({(1, B): {"signup": {f"INF-b{i}": 1 for i in range(40)}}}, layout))
    for _ in range(3):  # as the flushes after a restart do, until nothing is pending
        store.write(layout, restarted, lambda ident: None, NOW, everything=True)
    found = store.read(layout, [(1, B)])
    assert found.totals[(1, B)] == {"signup": 80} and sum(found.counts[(1, B)]["signup"].values()) == 80


class _Killed(BaseException):
    """``kill -9`` in the middle of a write, as far as the writer's state can tell."""


class _KilledAfterFirstShard(WriterState):
    """Dies once the first shard of a write is stored: its head does not list it yet."""

    def done(self, ident: tuple[object, ...], seq: int | None) -> None:
        super().done(ident, seq)
        if ident[0] == "s":
            raise _Killed


def test_a_shard_written_just_before_kill_9_is_listed_in_its_head_after_the_restart(store: Store) -> None:
    """The restarted writer finds its entry already in that shard (nothing to write) and must still
    list the shard in the block's head, or readers never read it and events that got a 202 are
    missing (bench/serve.py's kill runs lost one type of early ids this way)."""
    layout = store.open_prefix(PREFIX)
    writer = _KilledAfterFirstShard("w1")
    writer.stage(deltas_by_key({(1, B): {"signup": {f"INF-a{i}": 1 for i in range(40)}}}, layout))
    checkpoint = json.loads(json.dumps(writer.to_plain()))
    with pytest.raises(_Killed):
        store.write(layout, writer, lambda ident: None, NOW, everything=True)
    restarted = WriterState.from_plain(checkpoint)
    for _ in range(3):  # as the flushes after a restart do, until nothing is pending
        store.write(layout, restarted, lambda ident: None, NOW, everything=True)
    found = store.read(layout, [(1, B)])
    assert found.totals[(1, B)] == {"signup": 40} and sum(found.counts[(1, B)].get("signup", {}).values()) == 40


def test_a_conflicting_bucket_length_is_refused_naming_both_values(store: Store) -> None:
    store.open_prefix(PREFIX)
    with pytest.raises(PrefixConflict, match=r"settings bucket_seconds 5 conflicts with the prefix .* \(bucket_seconds 10\); use another --key-prefix"):
        store.open_prefix(PrefixSettings(5, Settings().retention, 5))


def test_a_summary_is_replaced_only_by_a_fresher_one(store: Store, clock: FakeClock) -> None:
    layout = store.open_prefix(PREFIX)
    now = clock.time()
    fresh = summary_documents(summarize(now, 300, 10, {(1, int(now // 10)): {"signup": {"INF-a": 9}}}), layout)
    stale = summary_documents(summarize(now - 1, 300, 10, {(1, int(now // 10)): {"signup": {"INF-a": 4}}}), layout)
    store.publish(fresh, 600)
    store.publish(stale, 600)
    key = layout.summary_key("signup")
    assert store.read_summaries([key, "nothing"]) == {key: fresh[key], "nothing": None}


def test_generation_is_stable_while_the_server_keeps_its_data_and_changes_after_a_restart(memcached: MemcachedServer) -> None:
    store = MemcachedStore([memcached.server], "gen:")
    before = store.generation()
    _write(store, WriterState("w1"), {(1, B): {"signup": {"INF-a": 2}}})
    assert MemcachedStore([memcached.server], "gen:").generation() == before  # another client, same data
    memcached.stop()
    memcached.start()
    after = store.generation()
    assert after != before
    assert store.generation() == after  # the new marker stays until the next loss


def test_summary_keys_are_readable_by_a_plain_client_with_one_get(memcached: MemcachedServer, clock: FakeClock) -> None:
    store = MemcachedStore([memcached.server], "eventdash:")
    layout = store.open_prefix(PREFIX)
    now = clock.time()
    counts = {(1, int(now // 10)): {"signup": {"INF-a": 10, "INF-b": 40}}}
    view = summarize(now, 300, 10, counts)
    store.publish(summary_documents(view, layout), 600)
    plain = Client(("127.0.0.1", memcached.port))
    value = json.loads(plain.get("eventdash:signup").decode("utf-8"))
    assert value["totalEventsCaptured"] == 50
    assert value["eventsCapturedByTrackingIds"] == {"INF-a": 10, "INF-b": 40}
    assert value["windowMinutes"] == 5 and value["bucketSeconds"] == 10 and value["asOf"].endswith("Z")
    shard = zlib.crc32(b"INF-b") % layout.shards  # the documented hash, as any client computes it
    one = json.loads(plain.get(f"eventdash:signup:s{shard}").decode("utf-8"))
    assert one["eventsCapturedByTrackingIds"]["INF-b"] == 40


def test_every_count_key_expires_at_its_block_end_plus_its_levels_retention(memcached: MemcachedServer) -> None:
    settings = Settings(window_minutes=2, bucket_seconds=10, backend="memcached", memcached=MemcachedSettings((memcached.server,), "ttl:"))
    store = MemcachedStore([memcached.server], "ttl:")
    pipeline = Pipeline(settings, store, seed=1, generate=False)
    pipeline.writer.ingest([("signup", "INF-a", int(pipeline.clock.time() * 1000), None)])
    assert pipeline.writer.flush(everything=True)  # coarse blocks too, not only their slice of the second
    pipeline.reader.publish(pipeline.reader.read_view())
    layout = pipeline.prefix.get()
    now = pipeline.clock.time()
    current = pipeline.reader.read_view().buckets[-1]
    for span in (1, 6, 60, 360):
        block = (span, current // span)
        left = layout.expires_at(block) - now
        for key in (layout.head_key(block), layout.shard_key(block, "signup", layout.shard("INF-a"))):
            # memcached's clock ticks once a second and lags the wall clock by up to a tick, so an
            # absolute expiry reads up to 2 s long (CI saw left + 1.01); 3 s short covers our writes.
            assert left - 3 <= ttl(memcached.port, key) <= left + 2
    for key in ("ttl:signup", "ttl:review"):
        assert 120 + 10 < ttl(memcached.port, key) <= 120 + 2 * 10 + 60


def test_only_counts_under_the_prefix_are_written_never_raw_events(memcached: MemcachedServer) -> None:
    settings = Settings(events_per_second=1_000, backend="memcached", memcached=MemcachedSettings((memcached.server,), "pii:"))
    clock = FakeClock(1_700_000_000.0)
    pipeline = Pipeline(settings, MemcachedStore([memcached.server], "pii:"), clock=clock, seed=3)
    clock.advance(2.0)
    pipeline.step()
    assert pipeline.writer.flush()
    pipeline.reader.publish(pipeline.reader.read_view())
    stored = memcached.stored()
    assert stored and all(key.startswith("pii:") for key in stored)
    for value in stored.values():
        assert b"@example.com" not in value and b"geo" not in value and b"fingerprint" not in value


def test_concurrent_threads_on_one_bucket_lose_nothing(memcached: MemcachedServer) -> None:
    """8 writers race on the same bucket key; gets/cas keeps every writer's counts."""
    store = MemcachedStore([memcached.server], "race:")
    rounds = 60

    def writer(name: str) -> None:
        state = WriterState(name)
        for _ in range(rounds):
            _write(store, state, {(1, B): {"signup": {"INF-a": 1}}})

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.read(store.open_prefix(PREFIX), [(1, B)]).counts == {(1, B): {"signup": {"INF-a": 8 * rounds}}}


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
    reader = Reader(settings, MemcachedStore([memcached.server], "mw:"), clock=FakeClock(start + BATCHES + 0.5))
    view = reader.read_view()
    assert {span for span, _ in plan_window(view.buckets, lambda _: True)[0]} >= {1, 6, 60}  # the window spans shared blocks
    reader.publish(view)
    for etype in EVENT_TYPES:
        assert view.summary[etype].by_tracking_id == expected[etype]
        assert reader.read_view(series=True).summary[etype].by_tracking_id == expected[etype]  # every bucket
        stored = json.loads(plain.get(f"mw:{etype}"))
        assert stored["totalEventsCaptured"] == sum(expected[etype].values())
        assert stored["eventsCapturedByTrackingIds"] == expected[etype]


def test_a_restarted_server_gets_each_writers_buckets_back_once(memcached: MemcachedServer, clock: FakeClock) -> None:
    settings = Settings(events_per_second=100, tracking_ids=("INF-a", "INF-b"), backend="memcached", memcached=MemcachedSettings((memcached.server,), "rs:"))
    writers = [Pipeline(settings, MemcachedStore([memcached.server], "rs:"), clock=clock, seed=s) for s in (1, 2)]
    for _ in range(3):
        clock.advance(10.0)
        for writer in writers:
            writer.step()
            assert writer.writer.flush()
    before = writers[0].reader.read_view().summary_json()
    assert writers[0].reader.read_view().total == 2 * 3_000
    memcached.stop()
    memcached.start()
    for writer in writers:
        assert writer.writer.flush()  # a new generation: each writes back what it holds
        assert writer.writer.flush()  # and only once
        assert writer.status().restores == 1
    assert writers[1].reader.read_view().summary_json() == before


def test_unreachable_server_is_reported_by_address() -> None:
    port = free_port()
    store = MemcachedStore([Server("127.0.0.1", port)], "x:")
    with pytest.raises(StoreUnavailable, match=f"memcached 127.0.0.1:{port}: reading the prefix's metadata failed"):
        store.open_prefix(PREFIX)
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



def test_store_many_answers_every_add_and_cas_in_the_order_sent(store: Store) -> None:
    store.add("t:old", b"1", 60)
    store.add("t:gone", b"1", 60)
    tokens = {key: token for key, (_, token) in store.gets_many(["t:old", "t:gone"]).items()}
    store.cas("t:gone", b"2", tokens["t:gone"], 1)  # its token is now stale
    results = store.store_many(
        [
            ("t:new", b"a", None, 60),  # add of a missing key: stored
            ("t:old", b"b", None, 60),  # add of a present key: not stored
            ("t:old", b"c", tokens["t:old"], 60),  # cas with the current token: stored
            ("t:old", b"d", tokens["t:old"], 60),  # the same token again, now stale: not stored
            ("t:gone", b"e", tokens["t:gone"], 60),  # stale token: not stored
            ("t:never", b"f", tokens["t:old"], 60),  # cas of a missing key: not stored
        ]
    )
    assert results == [True, False, True, False, False, False]
    assert store.get_many(["t:new", "t:old", "t:gone", "t:never"]) == {"t:new": b"a", "t:old": b"c", "t:gone": b"2"}
    assert store.store_many([]) == []


def test_store_many_over_two_servers_puts_each_key_where_the_ring_reads_it(memcached_factory: Any) -> None:
    servers = [memcached_factory(), memcached_factory()]
    store = MemcachedStore([s.server for s in servers], "t:")
    keys = [f"t:k{n}" for n in range(200)]
    assert store.store_many([(key, key.encode(), None, 60) for key in keys]) == [True] * 200
    assert store.get_many(keys) == {key: key.encode() for key in keys}
    held = [len([k for k in s.stored() if k.startswith("t:k")]) for s in servers]
    assert sum(held) == 200 and min(held) > 0  # both servers got their share, each key once
    found = store.gets_many(keys)
    assert store.store_many([(key, b"x", found[key][1], 60) for key in keys]) == [True] * 200
    store.close()

