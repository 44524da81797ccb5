"""Distinct visitors: HLL sketches (tui.distinct) and the generator's visitors (tui.visitors).

Accuracy is checked at CI sizes against exact recounts, merges through a real memcached with
``gets``/``cas``, and every stored byte is checked by the strict decoders, fed arbitrary bytes here.
"""

from __future__ import annotations

import json
import random
import re
import struct
import threading
from collections.abc import Iterator
from itertools import pairwise

import datasketches as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer
from tui.clock import FakeClock
from tui.distinct import hll_format
from tui.distinct import sketch as sk
from tui.distinct import value as vl
from tui.distinct.batch import SIGNUPS, DistinctBatch
from tui.ingest.decode import Decoder, IngestEvent, hash_email
from tui.visitors import Visitors

LG_K = sk.DEFAULT_LG_K
NOW = 1_700_000_000.0


def content(data: bytes) -> tuple[int, object]:
    """What a sketch holds, independent of the order a hash table lists its coupons in:
    (mode, sorted coupons) or (mode, registers and aux entries)."""
    assert hll_format.problem(data, LG_K) is None
    mode = data[7]
    if mode == hll_format.HLL_MODE:
        end = hll_format.HLL_START + (1 << LG_K) // 2
        return mode, (data[6], data[hll_format.HLL_START : end], sorted(hll_format._u32s(data[end:])))
    start = hll_format.LIST_START if mode == hll_format.LIST_MODE else hll_format.SET_START
    return mode, sorted(hll_format._u32s(data[start:]))


def visitors_of(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


# -- accuracy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("distinct", [100, 10_000])
def test_a_window_estimate_is_within_the_sketchs_own_error_bound(distinct: int) -> None:
    """Six blocks that share visitors (sessions cross block edges), united as a window read unites
    them, against the exact number of distinct visitors, over several seeds."""
    bound3 = abs(ds.hll_sketch.get_rel_err(True, True, LG_K, 3))
    errors = []
    for seed in range(5):
        visitors = visitors_of(distinct, seed)
        rng = random.Random(seed)
        blocks = [[v for v in visitors if rng.random() < 0.4] for _ in range(6)]
        exact = len({v for block in blocks for v in block})
        got = sk.estimate([sk.sketch_of(block) for block in blocks])
        error = abs(got.value - exact) / exact
        assert error <= bound3, f"seed {seed}: {got.value:.0f} for {exact}, {error:.2%} > {bound3:.2%}"
        assert got.lower <= got.value <= got.upper
        errors.append(error)
    assert sum(errors) / len(errors) <= sk.relative_error_bound() / 2  # the mean is within one standard deviation


def test_a_window_estimate_does_not_depend_on_the_order_of_its_blocks_or_visitors() -> None:
    """30 sparse blocks whose union turns dense: neither the order the reader unites them in nor
    the order each writer added its visitors (its set iteration, PYTHONHASHSEED) moves the figure."""
    rng = random.Random(7)
    blocks = [[f"v{rng.getrandbits(64)}" for _ in range(400)] for _ in range(30)]
    forward = [sk.sketch_of(block) for block in blocks]
    backward = [sk.sketch_of(list(reversed(block))) for block in blocks]
    assert forward != backward  # the coupons are listed in another order
    got = {sk.estimate(forward), sk.estimate(forward[::-1]), sk.estimate(backward), sk.estimate(backward[::-1])}
    assert len(got) == 1, got


def test_lg_k_is_checked() -> None:
    assert sk.check_lg_k(13) == 13
    for bad in (7, 17, 13.0, True):
        with pytest.raises(ValueError, match="lg_k"):
            sk.check_lg_k(bad)  # type: ignore[arg-type]


# -- merging through memcached ---------------------------------------------------------------------


def cas_merge(client: Client, key: str, delta: dict[str, bytes]) -> vl.Merged:
    """What a Store v2 writer does: gets, merge, cas (add when missing), until it wins."""
    for _ in range(1000):
        stored, token = client.gets(key)
        merged = vl.merge(stored, delta, LG_K)
        if stored is None:
            if client.add(key, merged.value, noreply=False):
                return merged
        elif client.cas(key, merged.value, token, noreply=False):
            return merged
    raise AssertionError("cas never won")


@pytest.fixture
def client(memcached: MemcachedServer) -> Iterator[Client]:
    c = Client(("127.0.0.1", memcached.port), connect_timeout=2, timeout=5)
    yield c
    c.close()


def test_writing_the_same_sketch_twice_changes_nothing(client: Client) -> None:
    delta = {"INF-small": sk.sketch_of(visitors_of(5, 1)), "INF-set": sk.sketch_of(visitors_of(300, 2)), "INF-big": sk.sketch_of(visitors_of(20_000, 3))}
    cas_merge(client, "d1:0:user-event:0", delta)
    once = client.get("d1:0:user-event:0")
    cas_merge(client, "d1:0:user-event:0", delta)
    cas_merge(client, "d1:0:user-event:0", delta)
    twice = client.get("d1:0:user-event:0")
    first, again = vl.decode(once, LG_K), vl.decode(twice, LG_K)
    assert first.keys() == again.keys() == delta.keys()
    for tid in delta:
        assert content(first[tid]) == content(again[tid]), tid
        assert sk.estimate([first[tid]]) == sk.estimate([again[tid]]), tid


def test_eight_writers_of_the_same_visitors_give_one_writers_estimate(client: Client) -> None:
    """Each of 8 threads (own client, real cas races) sees a random part of the same events of
    3 ids and merges its per-flush sketches; the result equals one sketch of all the visitors."""
    tids = ["INF-a", "INF-b", "INF-c"]
    visitors = {tid: visitors_of(3_000 * (i + 1), i) for i, tid in enumerate(tids)}
    lost: list[BaseException] = []
    conflicts = [0]

    def writer(w: int) -> None:
        rng = random.Random(w)
        c = Client(("127.0.0.1", client.server[1]), connect_timeout=2, timeout=5)
        try:
            for flush in range(6):
                batch = DistinctBatch(10, LG_K)
                for tid, vs in visitors.items():
                    part = vs[flush::6]
                    batch.record([_Ev("user-event", tid, 0, v, None) for v in part if rng.random() < 0.5 or w == flush % 8])
                for (_, series, tid), s in batch.take().items():
                    stored, token = c.gets("d1:0:user-event:7")
                    while True:
                        merged = vl.merge(stored, {tid: s}, LG_K)
                        ok = c.add("d1:0:user-event:7", merged.value, noreply=False) if stored is None else c.cas("d1:0:user-event:7", merged.value, token, noreply=False)
                        if ok:
                            break
                        conflicts[0] += 1
                        stored, token = c.gets("d1:0:user-event:7")
        except BaseException as error:  # noqa: BLE001 - reported by the test
            lost.append(error)
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not lost
    stored = vl.decode(client.get("d1:0:user-event:7"), LG_K)
    for tid, vs in visitors.items():
        covered = {v for f in range(6) for v in vs[f::6]}
        one = sk.estimate([sk.union([sk.sketch_of(covered)])])
        eight = sk.estimate([stored[tid]])
        assert eight.value == pytest.approx(one.value, rel=1e-9), tid  # the same registers: the same estimate
        assert abs(eight.value - len(covered)) <= sk.relative_error_bound() * len(covered) * 1.5


class _Ev:
    """A minimal event as the batch reads it."""

    def __init__(self, type: str, tracking_id: str, ts_ms: int, visitor_id: str | None, email_hash: int | None) -> None:
        self.type, self.tracking_id, self.ts_ms, self.visitor_id, self.email_hash = type, tracking_id, ts_ms, visitor_id, email_hash


# -- the batch ---------------------------------------------------------------------------------------


def test_a_batch_makes_one_sketch_per_bucket_series_and_id() -> None:
    batch = DistinctBatch(10, LG_K)
    batch.record(
        [
            _Ev("user-event", "INF-a", 1_000, "v1", None),
            _Ev("user-event", "INF-a", 2_000, "v1", None),  # the same visitor again: one
            _Ev("user-event", "INF-a", 11_000, "v1", None),  # next bucket
            _Ev("signup", "INF-a", 3_000, "v2", 42),
            _Ev("signup", "INF-a", 4_000, "v3", 42),  # the same e-mail from another visitor
            _Ev("review", "INF-b", 5_000, None, None),  # no visitor id: an empty entry beside its count
            _Ev("signup", "INF-c", 6_000, "v4", None),  # a sign-up without an e-mail: an empty signups entry
        ]
    )
    taken = batch.take()
    counts = {key: round(sk.estimate([s]).value) for key, s in taken.items()}
    assert counts == {
        (0, "user-event", "INF-a"): 1,
        (1, "user-event", "INF-a"): 1,
        (0, "signup", "INF-a"): 2,
        (0, SIGNUPS, "INF-a"): 1,
        (0, "review", "INF-b"): 0,
        (0, "signup", "INF-c"): 1,
        (0, SIGNUPS, "INF-c"): 0,
    }
    assert len(batch) == 0 and batch.take() == {}


_EVENT = st.builds(
    IngestEvent,
    st.sampled_from(["signup", "user-event", "review"]),
    st.sampled_from(["INF-a", "INF-b"]),
    st.integers(0, 29_999),
    st.none() | st.sampled_from([f"v{i}" for i in range(12)]),
    st.none(),
    st.none() | st.integers(0, 2**64 - 1),
)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(_EVENT, max_size=40), max_size=4))
def test_a_batch_counts_exactly_the_distinct_visitors_and_e_mails_of_any_events(batches: list[list[IngestEvent]]) -> None:
    """Whatever mix of events with and without visitor ids or e-mails (the fast path and its
    fallback), each (bucket, series, id) that had an event has a sketch of exactly its distinct
    items: few enough that the sketch is exact."""
    batch = DistinctBatch(10, LG_K)
    expected: dict[tuple[int, str, str], set[object]] = {}
    for events in batches:
        batch.record(events)
        for e in events:
            seen = expected.setdefault((e.ts_ms // 10_000, e.type, e.tracking_id), set())
            if e.visitor_id is not None:
                seen.add(e.visitor_id)
            if e.type == "signup":
                emails = expected.setdefault((e.ts_ms // 10_000, SIGNUPS, e.tracking_id), set())
                if e.email_hash is not None:
                    emails.add(e.email_hash)
    taken = batch.take()
    assert {key: round(sk.estimate([s]).value) for key, s in taken.items()} == {key: len(items) for key, items in expected.items()}
    for key, s in taken.items():  # hashed as sketch_of / sketch_of_hashes hash them: a union with those adds nothing
        same = (sk.sketch_of_hashes if key[1] == SIGNUPS else sk.sketch_of)(expected[key], LG_K)  # type: ignore[arg-type]
        assert round(sk.estimate([sk.union([s, same], LG_K)], LG_K).value) == len(expected[key])


def test_plain_count_tuples_make_empty_entries() -> None:
    """Tools and tests hand in ``(type, id, ts_ms)`` tuples: each gets its entry, with no visitors."""
    batch = DistinctBatch(10, LG_K)
    batch.record([("review", "INF-a", 1_000), ("signup", "INF-b", 12_000)])
    assert {key: sk.estimate([s]).value for key, s in batch.take().items()} == {
        (0, "review", "INF-a"): 0, (1, "signup", "INF-b"): 0, (1, SIGNUPS, "INF-b"): 0,
    }


def test_plain_tuples_mixed_with_events_keep_the_events_visitors() -> None:
    """A batch that mixes ``(type, id, ts_ms)`` tuples with IngestEvents (a tool handing both in
    one ``ingest``): the events' visitors and e-mails are hashed, not dropped as the tuples' are,
    which left an entry of 0 visitors that a reader prints as exact."""
    batch = DistinctBatch(10, LG_K)
    batch.record([
        ("review", "INF-a", 1_000),
        IngestEvent("review", "INF-a", 1_000, "v1"),
        IngestEvent("signup", "INF-a", 1_000, "v2", None, 0),
        IngestEvent("signup", "INF-a", 1_000, "v3", None, 2**64 - 1),
        ("signup", "INF-a", 1_000),
    ])
    assert {key: round(sk.estimate([s]).value) for key, s in batch.take().items()} == {
        (0, "review", "INF-a"): 1, (0, "signup", "INF-a"): 2, (0, SIGNUPS, "INF-a"): 2,
    }


# -- round trips and corrupt bytes -----------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 8, 100, 767, 768, 769, 5_000, 100_000])
def test_every_sketch_and_union_we_write_passes_the_strict_check(n: int) -> None:
    one = sk.sketch_of(visitors_of(n, n))
    both = sk.union([one, sk.sketch_of(visitors_of(n // 2, -n))])
    for data in (one, both):
        assert hll_format.problem(data, LG_K) is None
        again = bytes(sk.load(data).serialize_compact())
        assert sk.estimate([again]) == sk.estimate([data])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.from_regex(r"INF-[a-z0-9]{1,20}", fullmatch=True), st.integers(0, 2_000), max_size=20))
def test_a_value_round_trips(sizes: dict[str, int]) -> None:
    entries = {tid: sk.sketch_of(visitors_of(n, len(tid))) for tid, n in sizes.items()}
    data = vl.encode(entries, LG_K)
    assert vl.decode(data, LG_K) == entries
    for tid, s in entries.items():
        assert vl.find(data, tid, LG_K) == s
    assert vl.find(data, "INF-absent", LG_K) is None


VALID = [sk.sketch_of(visitors_of(n, n)) for n in (0, 3, 7, 8, 300, 700, 2_000, 60_000)]
VALID += [sk.union([a, b]) for a, b in pairwise(VALID)]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid sketch with a few bytes changed, cut or added: what gets past a naive length check."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.sampled_from(["byte", "word", "cut", "grow"]))
        if what == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif what == "word" and len(data) >= 4:
            at = draw(st.integers(0, len(data) - 4))
            data[at : at + 4] = draw(st.sampled_from([0, 1, 8, 255, 1 << 26, 1 << 31, (1 << 32) - 1])).to_bytes(4, "little")
        elif what == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        else:
            data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _use(data: bytes) -> None:
    """Everything a reader or writer does with stored sketch bytes; only CorruptSketch may come out."""
    try:
        loaded = sk.load(data)
    except sk.CorruptSketch as error:
        assert str(error)
        return
    assert loaded.get_estimate() >= 0
    sk.union([data, data, VALID[4]])
    sk.estimate([data, VALID[6]])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.binary(min_size=4136, max_size=4200), mutated()))
def test_corrupt_sketch_bytes_are_refused_and_never_crash(data: bytes) -> None:
    _use(data)


def test_inputs_that_crash_the_raw_decoder_are_refused() -> None:
    """Each of these, given straight to ``hll_sketch.deserialize`` (datasketches 5.2.0), was seen to
    crash or corrupt the process (run alone in a subprocess): a segfault (exit 139), or a heap
    overflow that returned a wrong sketch once and aborted with "corrupted size vs. prev_size" in
    another run. The check refuses each with a reason, before DataSketches sees it."""
    hll_head = bytes([10, 1, 7, 13, 0, 8, 0, 0x0A]) + struct.pack("<3d", 1.0, 8192.0, 0.0) + struct.pack("<2I", 8192, 1)
    crashers = {
        "segfault: HLL_8 mode byte with an aux entry": hll_head + bytes(8192) + struct.pack("<I", (20 << 26) | 5),
        "heap overflow: 48 coupons in an 8-slot list": bytes.fromhex("0201070d03083000") + bytes(4 * 48),
        "heap overflow: 255 coupons in an 8-slot list": bytes.fromhex("0201070d0308ff00") + bytes(4 * 255),
        "accepted as lg_k 0": bytes.fromhex("0201070003080100") + struct.pack("<I", (1 << 26) | 3),
    }
    for name, data in crashers.items():
        reason = hll_format.problem(data, LG_K)
        assert reason, name
        with pytest.raises(sk.CorruptSketch, match=re.escape(reason)):
            sk.load(data)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.builds(lambda d, cut: d[:cut], st.just(vl.encode({"INF-a": VALID[3], "INF-b": VALID[5]}, LG_K)), st.integers(0, 4000))))
def test_corrupt_values_are_reported_and_repaired_never_a_crash(data: bytes) -> None:
    found = vl.collect({"k": data}, "INF-a", LG_K)
    assert len(found.sketches) + len(found.corrupt) + len(found.spilled) <= 1
    merged = vl.merge(data, {"INF-a": VALID[2]}, LG_K)
    repaired = vl.decode(merged.value, LG_K)
    assert "INF-a" in repaired
    if merged.problems:
        assert all(p for p in merged.problems)


def test_a_corrupt_entry_is_named_and_replaced_by_the_delta() -> None:
    value = vl.encode({"INF-a": b"\x02\x01\x07\x0d\x03\x08\x09\x00" + bytes(36), "INF-b": VALID[3]}, LG_K)
    found = vl.collect({"k": value}, "INF-a", LG_K)
    assert not found.sketches and "list of 9 coupons" in found.corrupt["k"]
    merged = vl.merge(value, {"INF-a": VALID[2]}, LG_K)
    assert merged.problems == ["INF-a: stored sketch replaced: list of 9 coupons; a list holds at most 7"]
    repaired = vl.decode(merged.value, LG_K)
    assert repaired.keys() == {"INF-a", "INF-b"}
    assert content(repaired["INF-a"]) == content(VALID[2]) and content(repaired["INF-b"]) == content(VALID[3])


# -- merge: the patched value is what decoding and encoding every entry gave -----------------------


def merge_by_decoding(stored: bytes | None, delta: dict[str, bytes], budget: int = vl.DEFAULT_BUDGET, restored: bool = False) -> vl.Merged:
    """The oracle: :func:`tui.distinct.value.merge` as it was before it patched values in place,
    decoding every stored entry into a dict, uniting the delta's ids in and encoding it all again.
    With one fix made since: a stored entry that no union checked and that must spill is checked
    first, and dropped if corrupt (it went to its own key's merge, which raised out of the flush)."""
    merged = vl.Merged(b"", restored=restored)
    entries: dict[str, bytes] = {}
    if stored is not None:
        try:
            entries = vl.decode(stored, LG_K)
            merged.restored = merged.restored or vl.is_restored(stored, LG_K)
        except vl.CorruptValue as error:
            merged.problems.append(f"stored value replaced: {error}")
            merged.restored = True
    for tracking_id, sketch in delta.items():
        held = entries.get(tracking_id)
        if held == vl.SPILLED:
            merged.spilled[tracking_id] = sketch
            continue
        try:
            entries[tracking_id] = sk.union([sketch] if held is None else [held, sketch], LG_K)
        except sk.CorruptSketch as error:
            entries[tracking_id] = sk.union([sketch], LG_K)
            merged.problems.append(f"{tracking_id}: stored sketch replaced: {error}")
            merged.restored = True
    size = len(vl.encode(entries, LG_K))
    if size > budget:
        for tracking_id in sorted(entries, key=lambda t: len(entries[t]), reverse=True):
            sketch = entries[tracking_id]
            if size <= budget or sketch == vl.SPILLED:
                break
            reason = hll_format.problem(sketch, LG_K) if tracking_id not in delta else None  # see below
            if reason is None:
                merged.spilled[tracking_id] = sketch
            else:
                merged.problems.append(f"{tracking_id}: stored sketch dropped (corrupt, and over the budget): {reason}")
                merged.restored = True
            entries[tracking_id] = vl.SPILLED
            size -= len(sketch)
        if size > budget:
            raise vl.ValueTooLarge(f"{len(entries):,} ids take {size:,} bytes even with every sketch in its own key; budget {budget:,}")
    merged.value = vl.encode(entries, LG_K, merged.restored)
    return merged


def union_result(n: int, seed: int, parts: int) -> bytes:
    """A sketch as the writer's deltas are made: ``parts`` sketches united, the result serialized."""
    united = ds.hll_union(LG_K)
    visitors = visitors_of(n, seed)
    for part in range(parts):
        united.update(sk.new_sketch(visitors[part::parts], LG_K))
    return bytes(united.get_result(ds.tgt_hll_type.HLL_4).serialize_compact())


#: Lists (empty too), sets, dense in order and out of order, with and without aux entries.
DELTAS = VALID + [union_result(n, n + 11, parts) for n in (0, 1, 5, 7, 9, 60, 500, 900, 3_000, 9_000, 80_000) for parts in (1, 3)]
IDS = st.sampled_from([f"INF-{c}" for c in "abcdefghij"] + ["INF-é", "INF-z" * 20])
STORED_SKETCHES = st.one_of(st.sampled_from(DELTAS + [vl.SPILLED]), mutated())


def raw_value(entries: list[tuple[bytes, bytes]], flags: int, gap: bytes, lg_k: int = LG_K) -> bytes:
    """An EDS1 value with its ids as given (not sorted or checked) and ``gap`` before the first entry."""
    block = b"\n" + b"".join(raw + b"\n" for raw, _ in entries)
    offsets = [len(gap)]
    for _, sketch in entries:
        offsets.append(offsets[-1] + len(sketch))
    head = struct.pack("<4sBBII", vl.MAGIC, lg_k, flags, len(entries), len(block))
    return head + block + struct.pack(f"<{len(offsets)}I", *offsets) + gap + b"".join(s for _, s in entries)


@st.composite
def stored_values(draw: st.DrawFn) -> bytes | None:
    """None, a value as the writer makes it, one whose framing is off in one way, or any bytes."""
    what = draw(st.sampled_from(["none", "value", "value", "value", "odd ids", "gap", "flipped", "cut", "bytes"]))
    if what == "none":
        return None
    if what == "bytes":
        return draw(st.binary(max_size=120))
    entries = draw(st.dictionaries(IDS, STORED_SKETCHES, max_size=8))
    ids = sorted((t.encode("utf-8"), s) for t, s in entries.items())
    if what == "odd ids":
        odd = st.sampled_from([b"", b"INF a", b"INF-\xff", b"INF-\x01", b"x" * 129, b"x" * 128, b"INF-\xc3\xa9", b"INF-a", b"\xe2\x80\xa8"])
        ids = draw(st.permutations(ids + [(draw(odd), draw(st.sampled_from(DELTAS)))]))
    value = raw_value(ids, draw(st.sampled_from([0, 0, 1, 2])), draw(st.sampled_from([b"", b"", b"\0" * 3])) if what == "gap" else b"")
    if what == "flipped":
        data = bytearray(value)
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        value = bytes(data)
    elif what == "cut":
        value = value[: draw(st.integers(0, len(value)))]
    return value


def outcome(make: object) -> object:
    try:
        merged = make()  # type: ignore[operator]
    except (vl.ValueTooLarge, sk.CorruptSketch) as error:
        return type(error), str(error)
    return merged.value, merged.spilled, merged.problems, merged.restored


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored_values(), st.dictionaries(IDS, st.sampled_from(DELTAS), max_size=6), st.sampled_from([vl.DEFAULT_BUDGET, 20_000, 2_000, 300, 60]), st.booleans())
def test_a_merge_gives_the_bytes_decoding_and_encoding_every_entry_gave(stored: bytes | None, delta: dict[str, bytes], budget: int, restored: bool) -> None:
    """Stored values of every shape (corrupt ones, corrupt entries, spilled entries, odd framing)
    and deltas of every kind of sketch: the same value, spills, problems and restored flag, or the
    same error, as the oracle."""
    new = outcome(lambda: vl.merge(stored, delta, LG_K, budget, restored))
    assert new == outcome(lambda: merge_by_decoding(stored, delta, budget, restored))
    if isinstance(new, tuple) and isinstance(new[0], bytes):
        assert vl.decode(new[0], LG_K).keys() >= delta.keys()


def test_a_merge_into_a_large_value_gives_the_oracles_bytes() -> None:
    """A shard's value at 100,000 ids (1,600 ids), a flush of 300 of them, a third new."""
    rng = random.Random(5)
    stored_ids = [f"INF-{rng.getrandbits(40):010x}" for _ in range(1_600)]
    stored = vl.encode({tid: rng.choice(DELTAS[:6] + [vl.SPILLED]) for tid in stored_ids}, LG_K)
    delta = {tid: rng.choice(DELTAS) for tid in rng.sample(stored_ids, 200) + [f"INF-{rng.getrandbits(40):010x}" for _ in range(100)]}
    for budget in (vl.MAX_VALUE_BYTES, vl.DEFAULT_BUDGET):
        assert outcome(lambda: vl.merge(stored, delta, LG_K, budget)) == outcome(lambda: merge_by_decoding(stored, delta, budget))


def with_offsets(value: bytes, offsets: list[int]) -> bytes:
    """``value`` with its offsets replaced (as many as it has)."""
    n, ids_len = struct.unpack_from("<II", value, 6)
    at = 14 + ids_len
    return value[:at] + struct.pack(f"<{n + 1}I", *offsets) + value[at + 4 * (n + 1) :]


def test_a_merge_checks_the_framing_it_does_not_decode() -> None:
    """Every fault :func:`~tui.distinct.value.decode` finds in a value the merge finds too, named the same way."""
    good = [(b"INF-a", VALID[1]), (b"INF-b", VALID[2]), (b"INF-c", VALID[3])]
    end = sum(len(s) for _, s in good)
    faults = {
        "the ids are not sorted and unique": raw_value([good[1], good[0]], 0, b""),
        "id 1 is not UTF-8": raw_value([good[0], (b"INF-\xff", VALID[2])], 0, b""),
        "id 0 'INF a' is not a tracking id": raw_value([(b"INF a", VALID[1])], 0, b""),
        f"id 0 {'x' * 40!a} is not a tracking id": raw_value([(b"x" * 129, VALID[1])], 0, b""),
        f"entry 0: offsets 0..{end + 1} are not in order": with_offsets(raw_value(good, 0, b""), [0, end + 1, end + 1, end]),
        "entry 1: offsets 20..12 are not in order": with_offsets(raw_value(good, 0, b""), [0, 20, 12, end]),
    }
    for why, data in faults.items():
        with pytest.raises(vl.CorruptValue, match=re.escape(why)):
            vl.decode(data, LG_K)
        merged = vl.merge(data, {"INF-a": VALID[3]}, LG_K)
        assert merged.restored and len(merged.problems) == 1 and merged.problems[0].startswith(f"stored value replaced: {why}"), merged.problems
        assert vl.decode(merged.value, LG_K).keys() == {"INF-a"}
    gapped = raw_value(good, 0, b"\0\0\0")  # the first entry not at 0: decode reads it, so the merge does
    assert vl.merge(gapped, {}, LG_K).value == vl.encode(vl.decode(gapped, LG_K), LG_K)


# -- size ---------------------------------------------------------------------------------------------


def test_a_value_stays_within_its_budget_and_spilled_ids_are_found_in_their_own_keys() -> None:
    delta = {f"INF-{i:04d}": sk.sketch_of(visitors_of(10 + i * 7, i)) for i in range(300)}
    merged = vl.merge(None, delta, LG_K, budget=64 * 1024)
    assert len(merged.value) <= 64 * 1024
    assert merged.spilled and not merged.problems
    entries = vl.decode(merged.value, LG_K)
    for tid, s in delta.items():
        held = entries[tid]
        got = merged.spilled[tid] if held == vl.SPILLED else held
        assert content(got) == content(s)
    again = vl.merge(merged.value, {tid: delta[tid] for tid in list(merged.spilled)[:3]}, LG_K, budget=64 * 1024)
    assert set(again.spilled) == set(list(merged.spilled)[:3])  # a spilled id stays in its own key
    with pytest.raises(vl.ValueTooLarge):
        vl.merge(None, {f"INF-{i:05d}": VALID[1] for i in range(2_000)}, LG_K, budget=8 * 1024)


# -- no PII -----------------------------------------------------------------------------------------


def test_no_email_ip_or_visitor_id_reaches_a_stored_value(client: Client) -> None:
    """Real bodies through the ingest decoder, the batch and cas merges into memcached: no stored
    byte holds an e-mail, an IP or a visitor id that the events carried."""
    visitors = Visitors(3, 50, seed=9)
    rng = random.Random(9)
    docs, secrets = [], set()
    for i in range(600):
        visit = visitors.visit(i % 3)
        ip = f"103.83.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        doc = {"trackingId": f"INF-{i % 3}", "event": "formsubmit" if i % 4 == 0 else "click", "timestamp": "2023-11-14T22:13:10.000Z",
               "visitorId": visit.visitor_id, "sessionId": visit.session_id, "geo": {"ip": ip}, "form": {"email": visit.email}}  # fmt: skip
        docs.append(doc)
        secrets.update({visit.email, visit.email.split("@")[0], ip, visit.visitor_id, visit.visitor_id.replace("-", "")})
    decoder = Decoder(FakeClock(NOW), 3600, email_key=b"salt from the settings")
    events = decoder.decode("\n".join(json.dumps(d) for d in docs).encode(), "application/x-ndjson").events
    assert len(events) == 600 and sum(e.email_hash is not None for e in events) == 600
    batch = DistinctBatch(10, LG_K)
    batch.record(events)
    for (bucket, series, tid), s in batch.take().items():
        cas_merge(client, f"d1:{bucket}:{series}:0", {tid: s})
    keys = [f"d1:{bucket}:{series}:0" for bucket in {e.ts_ms // 10_000 for e in events} for series in ("signup", "user-event", SIGNUPS)]
    stored = {k: v for k, v in client.get_many(keys).items()}
    assert stored
    blob = b"".join(k.encode() + v for k, v in stored.items())
    for secret in secrets:
        assert secret.encode() not in blob and secret.upper().encode() not in blob


def test_hash_email_is_keyed_and_case_blind() -> None:
    assert hash_email(" A@Example.com", b"k") == hash_email("a@example.com", b"k") != hash_email("a@example.com", b"other")


# -- the generator's visitors ----------------------------------------------------------------------------


def test_visitors_are_seeded_make_sessions_and_scale_with_traffic() -> None:
    a, b = (Visitors(4, 400, seed=3, weights=[8, 4, 2, 1], pool_seconds=60) for _ in range(2))
    picks = [i % 4 for i in range(40_000)]
    visits = [a.visit(i) for i in picks]
    assert visits == [b.visit(i) for i in picks]
    other = Visitors(4, 400, seed=4, weights=[8, 4, 2, 1], pool_seconds=60)
    assert [other.visit(i) for i in picks[:50]] != visits[:50]
    assert a.pool_sizes == (2_560, 1_280, 640, 320)  # sessions in a minute: share × 400/s ÷ 5 × 60
    assert Visitors(4, 400, weights=[8, 4, 2, 1]).pool_sizes[0] == 153_600  # in an hour, the default
    per_site = [[v for v, i in zip(visits, picks) if i == site] for site in range(4)]
    sessions = [len({v.session_id for v in vs}) for vs in per_site]
    distinct = [len({v.visitor_id for v in vs}) for vs in per_site]
    for site in range(4):
        assert 4.0 <= 10_000 / sessions[site] <= 6.0  # about 5 events per session
        assert distinct[site] < sessions[site] < 10_000  # visitors come back; sessions hold several events
        assert len({v.email for v in per_site[site]}) == distinct[site]  # one e-mail per visitor
    assert distinct[3] <= 320 < distinct[0]  # the small site's pool is used up: its visitors come back more
    assert not {v.visitor_id for v in per_site[0]} & {v.visitor_id for v in per_site[1]}
    with pytest.raises(ValueError, match="weights"):
        Visitors(2, 10, weights=[1])
