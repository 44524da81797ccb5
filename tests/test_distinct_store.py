"""Distinct visitors in the store (issue 13): writers unite sketches beside their counts, readers unite
the blocks of a window, and a lost or restored sketch value makes the figure ``incomplete``.

Every test runs on the embedded store and on a real memcached (the ``store`` fixture)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MemcachedServer, all_keys
from tests.oracle import read_log
from tui import EVENT_TYPES
from tui.clock import FakeClock
from tui.distinct.batch import SIGNUPS
from tui.distinct.sketch import estimate, new_sketch, relative_error_bound
from tui.distinct.value import decode
from tui.ingest.decode import IngestEvent
from tui.pipeline import Pipeline
from tui.settings import MemcachedSettings, Settings
from tui.store import MemcachedStore, MemoryStore, Store
from tui.store.sketch_reads import read_distinct
from tui.store.sketches import sketch_key
from tui.window import OTHER_ID

IDS = tuple(f"INF-{i:03d}" for i in range(40))
TYPES = ("signup", "user-event", "review")


def settings(**changes: object) -> Settings:
    return Settings(tracking_ids=IDS, backend="memory", memcached=MemcachedSettings(key_prefix="t:"), **changes)  # type: ignore[arg-type]


def pipeline(store: Store, clock: FakeClock, writer: str, **changes: object) -> Pipeline:
    return Pipeline(settings(**changes), store, clock=clock, generate=False, writer_id=writer)


def events(rng: random.Random, clock: FakeClock, n: int, visitors: int = 500) -> list[IngestEvent]:
    now_ms = int(clock.time() * 1000)
    out = []
    for i in range(n):
        etype = rng.choice(TYPES)
        visitor = f"v{rng.randrange(visitors)}"
        email = rng.randrange(visitors // 2) if etype == "signup" else None
        out.append(IngestEvent(etype, rng.choice(IDS), now_ms + i % 1000, visitor, None, email))
    return out


def exact(batches: list[list[IngestEvent]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for batch in batches:
        for event in batch:
            out.setdefault(event.tracking_id, set()).add(event.visitor_id or "")
    return out


def run(writers: list[Pipeline], clock: FakeClock, seconds: int, per_second: int, seed: int = 1) -> list[list[IngestEvent]]:
    """Each second every writer gets its own events, then flushes; returns every batch."""
    rng = random.Random(seed)
    batches = []
    for _ in range(seconds):
        for engine in writers:
            batch = events(rng, clock, per_second)
            engine.writer.ingest(batch)
            batches.append(batch)
            assert engine.writer.flush()
        clock.advance(1.0)
    return batches


def content(store: Store, keys: list[str], lg_k: int) -> dict[str, dict[str, float]]:
    """Each value's sketches by id, as their estimates: a list or set sketch may store the same
    coupons in another order, so bytes can differ while the registers are the same."""
    out = {}
    for key, data in store.get_many(keys).items():
        out[key] = {tid: estimate([sketch], lg_k).value for tid, sketch in decode(data, lg_k).items()}
    return out


def within(estimate: float, truth: int, lg_k: int = 13) -> bool:
    return abs(estimate - truth) <= max(1.0, truth * relative_error_bound(lg_k))


def test_a_window_counts_the_distinct_visitors_of_every_id_within_the_sketch_error(store: Store, clock: FakeClock) -> None:
    engine = pipeline(store, clock, "w1")
    batches = run([engine], clock, 90, 300)
    truth = exact(batches)
    view = engine.reader.read_view(visitors=True)
    assert view.visitors is not None and view.visitors.incomplete == ()
    for tid, seen in truth.items():
        assert within(view.visitors.by_id[tid].value, len(seen)), tid
    assert within(view.visitors.total.value, len(set().union(*truth.values())))  # type: ignore[union-attr]
    assert view.visitors.total.value < sum(len(s) for s in truth.values())  # type: ignore[union-attr]  # a union, not a sum


@pytest.mark.parametrize("limit", [{"max_tracking_ids": 3}, {"allow_only_listed_ids": True}])
def test_visitors_of_ids_counted_under_other_are_under_other_too(store: Store, clock: FakeClock, limit: dict[str, Any]) -> None:
    """Beyond max_tracking_ids (or off the allow-list) an id's events count under (other): so do
    its visitors, or (other) would read as a lost sketch and the id would have visitors, no events."""
    engine = pipeline(store, clock, "w1", **limit)
    now_ms = int(clock.time() * 1000)
    listed = [IngestEvent("signup", tid, now_ms, f"{tid}-v{i % 4}") for tid in IDS[:3] for i in range(8)]
    unlisted = [IngestEvent("signup", f"INF-new{n}", now_ms, f"new{n}-v{i % 5}", None, None) for n in range(2) for i in range(10)]
    engine.writer.ingest(listed + unlisted)
    assert engine.writer.flush()
    view = engine.reader.read_view(visitors=True)
    assert view.summary["signup"].by_tracking_id[OTHER_ID] == 20
    assert view.visitors is not None and view.visitors.incomplete == ()
    assert round(view.visitors.by_id[OTHER_ID].value) == 10
    assert {tid: round(e.value) for tid, e in view.visitors.by_id.items() if tid != OTHER_ID} == dict.fromkeys(IDS[:3], 4)
    assert round(view.visitors.series_totals["signup"].value) == 22  # every visitor once, wherever counted


def test_eight_writers_give_what_one_writer_gives_for_the_same_events(store: Store, clock: FakeClock) -> None:
    rng = random.Random(3)
    batches = [events(rng, clock, 2_000) for _ in range(8)]
    one = pipeline(MemoryStore(clock, key_prefix="one:"), clock, "solo")
    one.writer.ingest([e for batch in batches for e in batch])
    assert one.writer.flush()
    many = [pipeline(store, clock, f"w{i}") for i in range(8)]
    for engine, batch in zip(many, batches):
        engine.writer.ingest(batch)
        assert engine.writer.flush()
    clock.advance(1.0)
    solo, united = one.reader.read_view(visitors=True).visitors, many[0].reader.read_view(visitors=True).visitors
    assert solo is not None and united is not None and united.incomplete == ()
    assert united.total == solo.total  # register-wise maximum: the same registers, whatever the writers
    assert united.by_id == solo.by_id


def test_a_retried_flush_of_the_same_sketches_changes_nothing(store: Store, clock: FakeClock) -> None:
    engine = pipeline(store, clock, "w1")
    engine.writer.ingest(events(random.Random(5), clock, 1_000))
    saved: dict[str, Any] = {}
    engine.writer.on_staged = lambda _position: saved.update(engine.writer.writer_state())  # the checkpoint, before the write
    assert engine.writer.flush()
    assert saved["sketches"], "pending sketch items are in the checkpoint"
    layout = engine.reader.layout()
    keys = [sketch_key(layout, tuple(ident)) for ident, _ in saved["sketches"]]  # type: ignore[arg-type]
    before = content(store, keys, layout.lg_k)
    again = pipeline(store, clock, "w1")  # the same writer after a crash: it re-sends its checkpoint
    again.writer.restore(saved)
    assert again.writer.flush()
    assert content(store, keys, layout.lg_k) == before


class Crash(Exception):
    """Stands for a kill -9 right after the checkpoint was saved."""


def test_a_checkpoint_keeps_visitors_that_were_not_written_yet(store: Store, clock: FakeClock) -> None:
    engine = pipeline(store, clock, "w1")
    batch = events(random.Random(6), clock, 600)
    engine.writer.ingest(batch)
    saved: dict[str, object] = {}

    def checkpoint(_position: object) -> None:
        saved.update(engine.writer.writer_state())
        raise Crash

    engine.writer.on_staged = checkpoint
    with pytest.raises(Crash):
        engine.writer.flush()
    restarted = pipeline(store, clock, "w1")
    restarted.writer.restore(saved)
    assert restarted.writer.flush()
    seen = restarted.reader.read_view(visitors=True).visitors
    assert seen is not None and seen.incomplete == ()
    for tid, visitors in exact([batch]).items():
        assert within(seen.by_id[tid].value, len(visitors)), tid


def a_written_bucket(store: Store, clock: FakeClock) -> tuple[Pipeline, str, str]:
    """A writer's 3 s of traffic, the busiest id, and its last single bucket's user-event sketch key."""
    engine = pipeline(store, clock, "w1")
    run([engine], clock, 3, 200)
    layout = engine.reader.layout()
    tid = IDS[0]
    bucket = int((clock.time() - 1) * 1000) // 10_000
    return engine, tid, sketch_key(layout, ("d", 1, bucket, "user-event", layout.shard(tid)))


def test_an_evicted_sketch_value_makes_the_figure_incomplete_and_a_rewrite_says_restored(store: Store, clock: FakeClock) -> None:
    engine, tid, key = a_written_bucket(store, clock)
    assert store.get_many([key]), "the single bucket's sketch value is there"
    store.delete(key)
    seen = engine.reader.read_visitors([tid])
    assert any(key in gap.why and "missing" in gap.why for gap in seen.incomplete)
    # A writer adding visitors to that block finds it missing while its counts are there: restored.
    engine.writer.ingest([IngestEvent("user-event", tid, int((clock.time() - 1) * 1000), "late", None, None)])
    assert engine.writer.flush()
    again = engine.reader.read_visitors([tid])
    assert any(key in gap.why and "restored" in gap.why for gap in again.incomplete)


def test_a_day_window_unites_coarse_blocks(store: Store, clock: FakeClock) -> None:
    engine = pipeline(store, clock, "w1", window_minutes=24 * 60)
    rng = random.Random(8)
    batches = []
    for _ in range(30):  # 30 bursts a few minutes apart: the old ones are read from coarse blocks
        batch = events(rng, clock, 200)
        engine.writer.ingest(batch)
        batches.append(batch)
        assert engine.writer.flush()
        clock.advance(200.0)
        assert engine.writer.flush()
    clock.advance(3_700.0)
    assert engine.writer.flush(everything=True)
    truth = exact(batches)
    tid = IDS[1]
    one = engine.reader.read_visitors([tid], window_seconds=24 * 3600)
    assert one.incomplete == ()
    assert within(one.by_id[tid].value, len(truth[tid]))
    signups = engine.reader.read_visitors([tid], series=[SIGNUPS], window_seconds=24 * 3600)
    wanted = {e.email_hash for b in batches for e in b if e.tracking_id == tid and e.email_hash is not None}
    assert within(signups.by_id[tid].value, len(wanted))


def test_a_kept_union_of_coarse_blocks_gives_the_figure_of_one_union_and_never_outlives_their_bytes(store: Store, clock: FakeClock) -> None:
    """A one-id read keeps the union of a figure's coarse blocks by their exact bytes: the figure
    is that of uniting every sketch at once, and a coarse value that changed is read anew (here
    planted garbage: reported, the figure incomplete)."""
    engine = pipeline(store, clock, "w1", window_minutes=24 * 60)
    rng = random.Random(9)
    for _ in range(30):
        engine.writer.ingest(events(rng, clock, 200))
        assert engine.writer.flush()
        clock.advance(200.0)
    assert engine.writer.flush(everything=True)
    clock.advance(120.0)
    tid, reader, layout = IDS[1], engine.reader, engine.reader.layout()
    first = reader.read_visitors([tid], window_seconds=86_400, total=False, per_series=False)
    kept = reader.read_visitors([tid], window_seconds=86_400, total=False, per_series=False)
    blocks, _ = reader._plan(layout, clock.time(), 86_400)
    found = store.read(layout, blocks, only=(tuple(sorted(EVENT_TYPES)), tid))
    at_once = read_distinct(store.get_many, layout, blocks, EVENT_TYPES, [tid], found, store.report, total=False, per_series=False)
    assert first == kept and kept.by_id == at_once.by_id and kept.incomplete == ()
    assert len(store._unions) == 1, "the coarse blocks were united once and kept"
    coarse = next(b for b in blocks if b[0] > 1 and found.counts.get(b, {}).get("user-event", {}).get(tid))
    key = sketch_key(layout, ("d", *coarse, "user-event", layout.shard(tid)))
    store.set(key, b"\x00" * 40, 0)
    seen = reader.read_visitors([tid], window_seconds=86_400, total=False, per_series=False)
    assert any(key in gap.why and "corrupt" in gap.why for gap in seen.incomplete), seen.incomplete


@pytest.mark.parametrize("prefix_lg_k,ours", [(12, 13)])
def test_a_process_with_another_sketch_size_is_refused(store: Store, clock: FakeClock, prefix_lg_k: int, ours: int) -> None:
    from tui.store.base import PrefixConflict

    first = pipeline(store, clock, "w1", sketch_lg_k=prefix_lg_k)
    first.reader.layout()
    second = pipeline(store, clock, "w2", sketch_lg_k=ours)
    with pytest.raises(PrefixConflict, match="sketch_lg_k 13 conflicts .*sketch_lg_k 12"):
        second.reader.layout()


def test_ids_past_the_limit_count_their_visitors_under_other_like_their_events(store: Store, clock: FakeClock) -> None:
    engine = pipeline(store, clock, "w1", max_tracking_ids=2)
    now_ms = int(clock.time() * 1000)
    engine.writer.ingest([IngestEvent("review", tid, now_ms, f"v-{tid}", None, None) for tid in ("INF-a", "INF-b", "INF-c", "INF-d")])
    assert engine.writer.flush()
    clock.advance(1.0)
    view = engine.reader.read_view(visitors=True)
    assert view.visitors is not None and view.visitors.incomplete == ()
    counted = set(view.summary["review"].by_tracking_id)
    assert counted == {"INF-a", "INF-b", "(other)"}
    assert set(view.visitors.by_id) == counted
    assert round(view.visitors.by_id["(other)"].value) == 2


def test_a_shard_whose_ids_alone_pass_the_budget_still_writes(store: Store, clock: FakeClock) -> None:
    from tui.store.sketches import PendingSketches, flush_sketches

    engine = pipeline(store, clock, "w1")
    layout = engine.reader.layout()
    pending = PendingSketches()
    bucket = int(clock.time()) // 10
    many = [((bucket, "review", f"INF-{i:06d}-{'x' * 30}"), new_sketch([f"v{i}"])) for i in range(4_000)]  # ~2,000 ids a shard at 2 shards
    pending.stage(many, dataclasses.replace(layout, shards=2))
    reported: list[str] = []
    flush_sketches(store, dataclasses.replace(layout, shards=2), pending, layout.lg_k, clock.time(), lambda k, w: reported.append(w), everything=True, budget=16 * 1024)
    assert not pending.items and not reported


def test_sketches_over_the_budget_go_to_their_own_keys_and_later_flushes_find_them_there(store: Store, clock: FakeClock) -> None:
    """Thirty ids of one shard, a set of 300 visitors each: a 6 KB budget spills most of them to own
    keys, all in one round of writes; a second flush with more visitors unites into those keys."""
    import base64

    from tui.distinct.sketch import sketch_of
    from tui.distinct.value import SPILLED
    from tui.store.sketches import PendingSketches, flush_sketches, own_key

    layout = pipeline(store, clock, "w1").reader.layout()
    ident = ("d", 1, int(clock.time()) // 10, "review", 0)
    key = sketch_key(layout, ident)
    ids = [tid for tid in (f"INF-{i:04d}" for i in range(2_000)) if layout.shard(tid) == 0][:30]
    visitors = {tid: [f"{tid}-v{n}" for n in range(300)] for tid in ids}
    for share in (slice(0, 150), slice(150, 300)):
        plain = [[list(ident), {tid: base64.b64encode(sketch_of(visitors[tid][share])).decode() for tid in ids}]]
        reported: list[str] = []
        pending = PendingSketches.from_plain(plain)
        flush_sketches(store, layout, pending, layout.lg_k, clock.time(), lambda k, w: reported.append(w), everything=True, budget=6 * 1024)
        assert not pending.items and not reported
    shared = decode(store.get_many([key])[key], layout.lg_k)
    spilled = [tid for tid in ids if shared[tid] == SPILLED]
    assert 20 < len(spilled) < 30
    own = store.get_many([own_key(key, tid) for tid in spilled])
    for tid in ids:
        sketch = decode(own[own_key(key, tid)], layout.lg_k)[tid] if tid in spilled else shared[tid]
        assert within(estimate([sketch]).value, 300)


def test_a_corrupt_stored_sketch_that_must_spill_is_dropped_and_named_not_written_to_its_own_key(store: Store, clock: FakeClock) -> None:
    """A value planted with a large corrupt entry: the next flush takes the value over its budget,
    and the corrupt entry is the largest. It never reached DataSketches unchecked (which raised out
    of every flush, so the writer could not write that key again): the merge names it, marks the
    value restored and writes nothing for it; the other ids are written."""
    import base64

    from tui.distinct.sketch import sketch_of
    from tui.distinct.value import SPILLED, encode, is_restored
    from tui.store.sketches import PendingSketches, flush_sketches, own_key

    layout = pipeline(store, clock, "w1").reader.layout()
    ident = ("d", 1, int(clock.time()) // 10, "review", 0)
    key = sketch_key(layout, ident)
    garbage = bytes([2, 1, 7, layout.lg_k, 3, 8, 9, 0]) + bytes(3_000)  # a list of 9 coupons: corrupt
    store.set(key, encode({"INF-corrupt": garbage}, layout.lg_k), 60)
    plain = [[list(ident), {f"INF-{i}": base64.b64encode(sketch_of([f"v{i}-{n}" for n in range(40)])).decode() for i in range(3)}]]
    reported: list[str] = []
    flush_sketches(store, layout, PendingSketches.from_plain(plain), layout.lg_k, clock.time(), lambda k, w: reported.append(w), everything=True, budget=2 * 1024)
    assert reported == ["INF-corrupt: stored sketch dropped (corrupt, and over the budget): list of 9 coupons; a list holds at most 7"]
    value = store.get_many([key])[key]
    assert is_restored(value, layout.lg_k)
    entries = decode(value, layout.lg_k)
    assert entries["INF-corrupt"] == SPILLED and not store.get_many([own_key(key, "INF-corrupt")])
    assert all(within(estimate([entries[f"INF-{i}"]]).value, 40) for i in range(3))


def test_no_email_or_ip_of_the_generated_events_reaches_memcached(memcached: MemcachedServer, tmp_path: Path) -> None:
    """Every key and value the writer and the reader put in memcached is scanned for each e-mail and
    IP address (and the salt) that the generator's events carried."""
    clock = FakeClock()
    store = MemcachedStore([memcached.server], "pii:")
    log = tmp_path / "events.jsonl"
    salt = "a-secret-salt-for-this-test"
    with log.open("w") as events_log:
        engine = Pipeline(
            Settings(tracking_ids=IDS[:5], events_per_second=200, email_salt=salt, backend="memcached"),
            store, clock=clock, seed=9, events_log=events_log, writer_id="w1",
        )
        for _ in range(60):
            clock.advance(1.0)
            engine.step()
        engine.writer.flush_all(5.0)
        engine.generator.flush_log()  # type: ignore[union-attr]
    engine.reader.refresh()  # the summary keys too
    docs = read_log(log)
    emails = {d["value"]["form"]["email"] for d in docs if "form" in d["value"]}
    ips = {d["value"]["geo"]["ip"] for d in docs}
    assert len(emails) > 20 and len(ips) > 100
    stored = all_keys(memcached.port)
    assert any(key.startswith("pii:d") for key in stored), "sketch keys were written"
    seen = engine.reader.read_visitors([IDS[0]], series=[SIGNUPS])
    assert seen.by_id[IDS[0]].value > 0, "the salted e-mail hashes were counted"
    for key, value in stored.items():
        blob = key.encode() + b"\0" + value
        for secret in (*emails, *ips, salt):
            assert secret.encode() not in blob, f"{secret!r} in {key}"
    store.close()


@contextmanager
def round_trips(store: Store) -> Iterator[list[int]]:
    """The keys of each ``get_many`` the store makes inside the block, one entry per round trip."""
    calls: list[int] = []
    get_many = store.get_many
    store.get_many = lambda keys: (calls.append(len(keys)), get_many(keys))[1]  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        store.get_many = get_many  # type: ignore[method-assign]


def test_one_ids_read_of_every_type_is_one_round_trip_and_equals_a_window_read(store: Store, clock: FakeClock) -> None:
    """``/api/v1/live``'s read: the heads and, after them, the id's sketch values of every type, in
    one round trip; the same figure as the whole window's read, with or without ``by_series``."""
    engine = pipeline(store, clock, "w1")
    run([engine], clock, 30, 300)
    whole = engine.reader.read_view(visitors=True).visitors
    assert whole is not None
    with round_trips(store) as calls:
        for tid in IDS[:5]:
            calls.clear()
            one = engine.reader.read_visitors([tid], total=False, per_series=False)
            assert len(calls) == 1, calls
            assert one.by_id == {tid: whole.by_id[tid]} and one.by_series == {} and one.total is None and one.incomplete == ()
            typed = engine.reader.read_visitors([tid], series=["review"], total=False)
            assert typed.by_id[tid] == typed.by_series["review"][tid] == whole.by_series["review"][tid]


def test_a_one_id_day_read_of_a_quiet_site_is_one_round_trip(store: Store, clock: FakeClock) -> None:
    """A 24 h window whose hours mostly hold nothing: their heads are missing, and only their
    children tell an empty hour from a lost one. Those come in the same round trip as the heads and
    the sketch values (as for a one-id count read), not in a second one on every read."""
    engine = pipeline(store, clock, "w1", window_minutes=24 * 60)
    run([engine], clock, 3, 50)
    together = engine.reader.read_visitors(IDS[:3], series=["user-event"], window_seconds=86_400, total=False)
    assert together.by_id, "the ids have visitors"
    with round_trips(store) as calls:
        for tid in IDS[:3]:
            calls.clear()
            day = engine.reader.read_visitors([tid], series=["user-event"], window_seconds=86_400, total=False, per_series=False)
            assert len(calls) == 1, calls
            assert day.incomplete == () and day.by_id.get(tid) == together.by_id.get(tid)


def test_a_sketch_value_read_before_the_flush_that_wrote_it_is_read_again_not_called_lost(store: Store, clock: FakeClock) -> None:
    """The one round trip reads a cluster's servers in turn, so a sketch value may be read before a
    flush wrote it and its counts after: what looks lost is read once more, and judged on that."""
    engine, tid, key = a_written_bucket(store, clock)
    whole = engine.reader.read_visitors([tid], total=False, per_series=False)
    calls: list[list[str]] = []
    get_many = store.get_many

    def not_yet_written(keys: list[str]) -> dict[str, bytes]:
        calls.append(keys)
        found = get_many(keys)
        return {k: v for k, v in found.items() if k != key} if len(calls) == 1 else found

    store.get_many = not_yet_written  # type: ignore[method-assign]
    try:
        seen = engine.reader.read_visitors([tid], total=False, per_series=False)
    finally:
        store.get_many = get_many  # type: ignore[method-assign]
    assert seen == whole and seen.incomplete == ()
    assert len(calls) == 2 and key in calls[0] and calls[1] == [key]


def test_a_kept_sketch_is_never_served_for_other_bytes(store: Store, clock: FakeClock) -> None:
    """Loaded sketches are kept by their exact bytes: new visitors in a block are read at once, and
    bytes planted over a sketch that was read before are checked, reported and read around."""
    engine = pipeline(store, clock, "w1")
    tid = IDS[2]
    now_ms = int(clock.time() * 1000)
    engine.writer.ingest([IngestEvent("review", tid, now_ms, f"v{i}", None, None) for i in range(5)])
    assert engine.writer.flush()
    assert round(engine.reader.read_visitors([tid], total=False).by_id[tid].value) == 5
    engine.writer.ingest([IngestEvent("review", tid, now_ms, f"w{i}", None, None) for i in range(3)])  # the same block
    assert engine.writer.flush()
    assert round(engine.reader.read_visitors([tid], total=False).by_id[tid].value) == 8
    layout = engine.reader.layout()
    key = sketch_key(layout, ("d", 1, now_ms // 10_000, "review", layout.shard(tid)))
    store.set(key, b"\x00" * 40, 0)  # not a sketch value at all
    seen = engine.reader.read_visitors([tid], total=False)
    assert any(key in gap.why and "corrupt" in gap.why for gap in seen.incomplete)
    assert any(r.startswith(f"{key}: ") for r in store.health().corrupt)


def test_a_one_id_read_judges_its_sketch_values_by_the_heads_not_the_counts(store: Store, clock: FakeClock) -> None:
    """A one-id read takes the heads' word for which sketch values were written (reading the id's
    count shards as well was half of its keys): a lost count shard leaves its visitors whole, and
    a sketch value lost with it is still named missing, since the head lists that shard."""
    engine, tid, key = a_written_bucket(store, clock)
    layout = engine.reader.layout()
    bucket = int((clock.time() - 1) * 1000) // 10_000
    whole = engine.reader.read_visitors([tid], total=False, per_series=False)
    assert whole.incomplete == () and whole.by_id[tid].value > 0
    store.delete(layout.shard_key((1, bucket), "user-event", layout.shard(tid)))
    assert engine.reader.read_visitors([tid], total=False, per_series=False) == whole
    store.delete(key)
    seen = engine.reader.read_visitors([tid], total=False, per_series=False)
    assert any(key in gap.why and "missing" in gap.why for gap in seen.incomplete), seen.incomplete


def test_a_sketch_value_lost_with_its_counts_is_written_again_marked_restored(store: Store, clock: FakeClock) -> None:
    """The head lists the shard, so a writer that finds both the sketch value and its count shard
    missing still knows the value existed. Written again with only the visitors since and not
    marked, a one-id read (which judges by the heads) would print that low figure as exact."""
    engine, tid, key = a_written_bucket(store, clock)
    layout = engine.reader.layout()
    ts_ms = int((clock.time() - 1) * 1000)
    store.delete(key)
    store.delete(layout.shard_key((1, ts_ms // 10_000), "user-event", layout.shard(tid)))
    other = pipeline(store, clock, "w2")  # not the writer of those keys: only the store can tell it
    other.writer.ingest([IngestEvent("user-event", tid, ts_ms, "late", None, None)])
    assert other.writer.flush()
    seen = engine.reader.read_visitors([tid], total=False, per_series=False)
    assert any(key in gap.why and "restored" in gap.why for gap in seen.incomplete), seen.incomplete


def test_on_two_servers_a_sketch_value_or_own_key_deleted_after_the_flush_makes_every_read_incomplete(
    memcached_factory: Callable[[], MemcachedServer], clock: FakeClock
) -> None:
    """A cluster reads its servers in turn, so the one round trip may read a sketch value before
    or after its counts; deleted between the flush and the read (one-id and two-id reads, with and
    without the total), it is still read as lost and named, not a low figure printed as exact."""
    servers = [memcached_factory(), memcached_factory()]
    store = MemcachedStore([s.server for s in servers], "t:")
    try:
        engine = pipeline(store, clock, "w1")
        run([engine], clock, 3, 200)
        layout = engine.reader.layout()
        bucket = int((clock.time() - 1) * 1000) // 10_000
        for tid in IDS[:6]:
            key = sketch_key(layout, ("d", 1, bucket, "user-event", layout.shard(tid)))
            assert store.get_many([key]), "the single bucket's sketch value is there"
            store.delete(key)
            for ids, total in (([tid], False), ([tid], True), ([IDS[39], tid], False), ([tid, IDS[39]], True)):
                seen = engine.reader.read_visitors(ids, total=total)
                assert any(key in gap.why and "missing" in gap.why for gap in seen.incomplete), (ids, total, seen.incomplete)
        total_key = sketch_key(layout, ("d", 1, bucket, "review", layout.shards))
        store.delete(total_key)
        seen = engine.reader.read_visitors([IDS[7]], total=True)
        assert any(total_key in gap.why for gap in seen.incomplete), seen.incomplete
        assert any(total_key in gap.why for gap in engine.reader.read_visitors([]).incomplete)
    finally:
        store.close()


def test_an_own_key_lost_after_its_id_spilled_is_rewritten_marked_restored(store: Store, clock: FakeClock) -> None:
    """The shared value says an id's sketch is in its own key (written before that mark), so an own
    key missing then was lost (evicted, or its server restarted). The next flush of that id must
    mark the own key it writes again restored, as it marks a lost shared value: written with only
    the visitors since, unmarked, it made a reader print a low figure as exact."""
    import base64

    from tui.distinct.sketch import sketch_of
    from tui.distinct.value import SPILLED, collect, is_restored
    from tui.store.sketches import PendingSketches, flush_sketches, own_key

    layout = pipeline(store, clock, "w1").reader.layout()
    ident = ("d", 1, int(clock.time()) // 10, "review", 0)
    key = sketch_key(layout, ident)
    ids = [tid for tid in (f"INF-{i:04d}" for i in range(2_000)) if layout.shard(tid) == 0][:30]
    visitors = {tid: [f"{tid}-v{n}" for n in range(300)] for tid in ids}

    def flush(share: slice) -> list[str]:
        plain = [[list(ident), {tid: base64.b64encode(sketch_of(visitors[tid][share])).decode() for tid in ids}]]
        reported: list[str] = []
        flush_sketches(store, layout, PendingSketches.from_plain(plain), layout.lg_k, clock.time(), lambda k, w: reported.append(w), everything=True, budget=6 * 1024)
        return reported

    assert flush(slice(0, 150)) == []
    shared = decode(store.get_many([key])[key], layout.lg_k)
    tid = next(t for t in ids if shared[t] == SPILLED)
    store.delete(own_key(key, tid))
    flush(slice(150, 300))
    own = store.get_many([own_key(key, tid)])[own_key(key, tid)]
    assert is_restored(own, layout.lg_k), "rewritten with half the visitors, and not marked restored"
    assert collect({own_key(key, tid): own}, tid, layout.lg_k).restored == [own_key(key, tid)]
    others = [t for t in ids if shared[t] == SPILLED and t != tid]
    assert not any(is_restored(v, layout.lg_k) for v in store.get_many([own_key(key, t) for t in others]).values())


def test_an_id_spelled_like_the_total_entry_reads_its_own_visitors_not_the_total(store: Store, clock: FakeClock) -> None:
    """``*`` is a valid tracking id (printable, no whitespace) and also the name of the entry that
    holds a series' total over every id. Read together with the total (the dashboard's live panel
    and its by-id view do), the id's figure was the total's: 53 visitors for an id that had 3."""
    engine = pipeline(store, clock, "w1")
    now_ms = int(clock.time() * 1000)
    engine.writer.ingest([IngestEvent("review", "*", now_ms, f"s{i}", None, None) for i in range(3)])
    engine.writer.ingest([IngestEvent("review", IDS[1], now_ms, f"o{i}", None, None) for i in range(50)])
    assert engine.writer.flush()
    clock.advance(1.0)
    for ids in (["*"], ["*", IDS[1]], [IDS[1], "*"]):
        read = engine.reader.read_visitors(ids, total=True)
        assert round(read.by_id["*"].value) == 3 and round(read.total.value) == 53, (ids, read)  # type: ignore[union-attr]
        assert round(read.by_series["review"]["*"].value) == 3 and round(read.series_totals["review"].value) == 53
        assert read.incomplete == ()
    assert round(engine.reader.read_view(visitors=True).visitors.by_id["*"].value) == 3  # type: ignore[union-attr]


def test_an_own_key_of_a_long_id_under_a_long_prefix_stays_a_memcached_key(store: Store, clock: FakeClock) -> None:
    """A 128-byte ingested id spilled under a 128-byte prefix made an own key of some 290 bytes,
    over memcached's 250: every flush of that key failed. Such an id's own key is named by a hash of
    it, and its value still holds the id itself."""
    import base64

    from tui.distinct.sketch import sketch_of
    from tui.distinct.value import SPILLED, find
    from tui.store.sketches import PendingSketches, flush_sketches, own_key

    layout = dataclasses.replace(pipeline(store, clock, "w1").reader.layout(), prefix="p" * 127 + ":")
    ident = ("d", 1, int(clock.time()) // 10, "review", 0)
    key = sketch_key(layout, ident)
    ids = [tid for tid in (f"INF-{i:04d}-{'x' * 119}" for i in range(200)) if layout.shard(tid) == 0][:6]
    assert ids and all(len(tid) == 128 for tid in ids)
    plain = [[list(ident), {tid: base64.b64encode(sketch_of([f"{tid[:8]}-v{n}" for n in range(300)])).decode() for tid in ids}]]
    flush_sketches(store, layout, PendingSketches.from_plain(plain), layout.lg_k, clock.time(), lambda k, w: None, everything=True, budget=4 * 1024)
    shared = decode(store.get_many([key])[key], layout.lg_k)
    spilled = [tid for tid in ids if shared[tid] == SPILLED]
    assert spilled
    for tid in spilled:
        own = own_key(key, tid)
        assert len(own.encode()) <= 250 and own != own_key(key, ids[0] if tid != ids[0] else ids[1])
        value = store.get_many([own])[own]
        assert within(estimate([find(value, tid, layout.lg_k)]).value, 300)
