"""Store v2 (issue 10): exact with many writers, repaired or reported when values are lost or
corrupt, one prefix's metadata shared by every process, any window up to its retention."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, all_keys, ttl, wait_until
from tests.oracle import read_log, recount, rows
from tests.proc import Eventdash
from tui import EVENT_TYPES
from tui.clock import FakeClock, SystemClock
from tui.pipeline import Pipeline, Reader
from tui.settings import MemcachedSettings, Settings
from tui.store import MemcachedStore, MemoryStore, Store
from tui.store.codec import (
    Corrupt,
    decode_head,
    decode_meta,
    decode_shard,
    decode_summary,
)
from tui.store import publishing
from tui.store.layout import RELATIVE_EXPIRY_LIMIT, Layout
from tui.store.merge import due_now
from tui.store.reads import children
from tui.window import LEVELS, Block

REPO = Path(__file__).resolve().parent.parent
IDS = tuple(f"INF-{i:05d}" for i in range(300))


def settings_for(prefix: str = "t:", **changes: object) -> Settings:
    return Settings(tracking_ids=IDS, backend="memory", memcached=MemcachedSettings(key_prefix=prefix), **changes)  # type: ignore[arg-type]


def writer(store: Store, clock: FakeClock, seed: int, **changes: object) -> Pipeline:
    return Pipeline(settings_for(**changes), store, clock=clock, seed=seed, writer_id=f"w{seed}")


def reader_of(store: Store, clock: FakeClock, **changes: object) -> Reader:
    """A reader in a process of its own: it agrees with the prefix's meta key afresh."""
    return Reader(settings_for(**changes), store, clock=clock)


def run(engines: list[Pipeline], clock: FakeClock, seconds: int) -> None:
    for _ in range(seconds):
        clock.advance(1.0)
        for pipeline in engines:
            pipeline.step()
            assert pipeline.writer.flush(), pipeline.status().store_error


def by_id(pipeline: Pipeline) -> dict[str, dict[str, int]]:
    view = pipeline.reader.read_view()
    return {t: dict(view.summary[t].by_tracking_id) for t in EVENT_TYPES}


def expected(engines: list[Pipeline]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {t: {} for t in EVENT_TYPES}
    for pipeline in engines:
        for etype, counts in pipeline.writer._ledger.totals().items():
            for tid, n in counts.items():
                total[etype][tid] = total[etype].get(tid, 0) + n
    return {t: dict(sorted(c.items())) for t, c in total.items()}


def keys_of(store: Store) -> dict[str, bytes]:
    if isinstance(store, MemoryStore):
        return store.get_many(store.keys())
    assert isinstance(store, MemcachedStore)
    return all_keys(store.servers[0].port)


def test_many_writers_with_rate_and_churn_stay_exact_and_small(store: Store, clock: FakeClock) -> None:
    """200 short-lived writers (a new writer id each) over one window: exact, every value small,
    and a value's writer entries bounded by the writers of its block."""
    done: list[Pipeline] = []
    for seed in range(200):
        pipeline = writer(store, clock, seed, events_per_second=50)
        run([pipeline], clock, 1)
        assert pipeline.stop(flush_timeout=1.0)
        assert pipeline.writer.unwritten_events() == 0
        done.append(pipeline)
    reader = writer(store, clock, 999, events_per_second=1)
    assert by_id(reader) == expected(done)
    sizes = {k: len(v) for k, v in keys_of(store).items()}
    assert max(sizes.values()) < 512 * 1024
    assert max(sizes.values()) < 20 * 1024  # 200 writers' sequence numbers cost a few KB at most


def test_a_lost_shard_is_reported_then_restored_by_its_writers(store: Store, clock: FakeClock) -> None:
    engines = [writer(store, clock, s, events_per_second=200) for s in (1, 2)]
    run(engines, clock, 12)
    reader = reader_of(store, clock)
    layout = reader.layout()
    current = reader.read_view().buckets[-1]
    block: Block = (1, current)
    head = decode_head(store.get_many([layout.head_key(block)])[layout.head_key(block)], layout.shards, 1)
    victim = layout.shard_key(block, "user-event", head.shards["user-event"][0])
    store.delete(victim)
    view = reader.read_view()
    assert any(victim in gap.why for gap in view.incomplete), view.incomplete  # never silently low
    clock.advance(6.0)  # the writers' periodic verification finds the block lost its entry
    for pipeline in engines:
        pipeline.step()
        assert pipeline.writer.flush()
    view = reader.read_view()
    assert {t: dict(view.summary[t].by_tracking_id) for t in EVENT_TYPES} == expected(engines)
    assert all("restored" in gap.why for gap in view.incomplete)  # complete now, and still honest


def test_a_value_that_lost_our_entry_is_restored_without_double_counting(store: Store, clock: FakeClock) -> None:
    engines = [writer(store, clock, s, events_per_second=100) for s in (1, 2)]
    run(engines, clock, 5)
    layout = engines[0].prefix.get()
    for key in [k for k in keys_of(store) if k.startswith(("t:h", "t:s"))]:
        store.delete(key)  # everything lost, as after an eviction storm
    clock.advance(6.0)
    for pipeline in engines:
        pipeline.step()
        assert pipeline.writer.flush()
    assert by_id(engines[0]) == expected(engines)
    assert layout.shards == 64


def test_two_windows_on_one_prefix_never_shorten_each_other_and_only_the_first_publishes(store: Store, clock: FakeClock) -> None:
    short = writer(store, clock, 1, window_minutes=5)
    long = writer(store, clock, 2, window_minutes=60)
    run([short, long], clock, 20)
    assert short.reader.publish(short.reader.read_view()) is True
    assert long.reader.publish(long.reader.read_view()) is False  # its window is not the prefix's published one
    published = store.read_summaries(["t:signup"])["t:signup"]
    assert published is not None and published["windowMinutes"] == 5
    # A key's expiry follows its block and level, never a writer's window: both writers agree.
    assert short.prefix.get() == long.prefix.get()
    assert short.stop() and long.stop()  # they exit; the data stays for its retention
    clock.advance(30 * 60)  # half an hour later the short window is empty, the long one still exact
    assert short.reader.read_view().total == 0
    assert long.reader.read_view().summary_json() == {t: {"totalEventsCaptured": sum(c.values()), "eventsCapturedByTrackingIds": c} for t, c in expected([short, long]).items()}


def test_a_window_older_than_the_finest_retention_rounds_its_edge_and_says_so(clock: FakeClock) -> None:
    store = MemoryStore(clock, key_prefix="t:")
    pipeline = writer(store, clock, 1, events_per_second=2, window_minutes=120)
    run([pipeline], clock, 2)
    view = pipeline.reader.read_view()
    assert view.bound_seconds > view.bucket_seconds  # 2 h window, single buckets kept 1 h
    assert view.label.startswith("last 120 min ±") and view.label != "last 120 min ±10 s"


def test_a_31_day_window_stores_and_reads_with_absolute_expiry(memcached: MemcachedServer) -> None:
    """Past 30 days memcached reads an expiry as a Unix time: keys must live, not vanish at once."""
    hours = {"x1": 1, "x6": 24, "x60": 24, "x360": 32 * 24}
    settings = Settings(
        tracking_ids=IDS[:5], backend="memcached", window_minutes=31 * 1440, retention_seconds=(3600, 86400, 86400, 32 * 86400),
        memcached=MemcachedSettings((memcached.server,), "month:"),
    )
    assert settings.to_raw()["retention_hours"] == hours
    pipeline = Pipeline(settings, MemcachedStore([memcached.server], "month:"), clock=SystemClock(), generate=False)
    now_ms = int(time.time() * 1000)
    old_ms = now_ms - 30 * 86_400_000
    pipeline.writer.ingest([("signup", "INF-00001", now_ms, None), ("signup", "INF-00002", old_ms, None), ("review", "INF-00001", old_ms, None)])
    assert pipeline.writer.flush()
    layout = pipeline.prefix.get()
    top: Block = (360, now_ms // 10_000 // 360)
    assert layout.expire(top, time.time()) > RELATIVE_EXPIRY_LIMIT  # sent as an absolute Unix time
    assert ttl(memcached.port, layout.head_key(top)) > 31 * 86_400  # and memcached keeps it
    view = pipeline.reader.read_view()
    assert view.summary["signup"].by_tracking_id == {"INF-00001": 1, "INF-00002": 1}
    assert view.summary["review"].total == 1
    assert view.window_minutes == 31 * 1440 and view.incomplete == ()


def test_a_31_day_windows_summary_keys_outlive_the_publish(memcached: MemcachedServer) -> None:
    """The summary keys live window + 2 buckets + 60 s: over 30 days too, which memcached would read
    as a 1970 Unix time and drop at once (``summary`` printed the counts, ``get`` found nothing)."""
    settings = Settings(
        tracking_ids=IDS[:5], backend="memcached", window_minutes=31 * 1440, retention_seconds=(3600, 86400, 86400, 32 * 86400),
        memcached=MemcachedSettings((memcached.server,), "month2:"),
    )
    pipeline = Pipeline(settings, MemcachedStore([memcached.server], "month2:"), clock=SystemClock(), generate=False)
    pipeline.writer.ingest([("signup", "INF-00001", int(time.time() * 1000), None)])
    assert pipeline.writer.flush()
    pipeline.reader.refresh()
    layout = pipeline.prefix.get()
    plain = Client(("127.0.0.1", memcached.port))
    published = plain.get(layout.summary_key("signup"))
    assert published is not None and json.loads(published)["totalEventsCaptured"] == 1
    assert plain.get(layout.shard_summary_key("signup", layout.shard("INF-00001"))) is not None
    assert ttl(memcached.port, layout.summary_key("signup")) > 31 * 86_400


def test_conflicting_settings_are_refused_with_exit_2_naming_both_values(memcached: MemcachedServer) -> None:
    common = ["--backend", "memcached", "--memcached", memcached.address, "--key-prefix", "cf:"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-m", "tui", "summary", "--json", *common], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [sys.executable, "-m", "tui", "summary", "--json", *common, "--bucket-seconds", "5"], capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert second.returncode == 2
    assert f"settings bucket_seconds 5 conflicts with the prefix cf: in memcached {memcached.address} (bucket_seconds 10)" in second.stderr
    assert "Traceback" not in second.stderr and second.stdout == ""


# -- corrupt values ----------------------------------------------------------------------------------

KINDS = ("meta", "head", "shard", "summary", "shard-summary")
garbage_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["c", "w", "r", "t", "s", "k", "asOfMs", "x", "INF-a"]), children, max_size=4),
    max_leaves=12,
)
garbage = st.binary(max_size=40) | garbage_json.map(lambda v: json.dumps(v).encode())


def key_of_kind(kind: str, pipeline: Pipeline) -> str:
    layout: Layout = pipeline.prefix.get()
    view = pipeline.reader.read_view()
    current = view.buckets[-1]
    tid = next(iter(view.summary["user-event"].by_tracking_id))
    return {
        "meta": layout.meta_key,
        "head": layout.head_key((1, current)),
        "shard": layout.shard_key((1, current), "user-event", layout.shard(tid)),
        "summary": layout.summary_key("user-event"),
        "shard-summary": layout.shard_summary_key("user-event", layout.shard(tid)),
    }[kind]


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), raw=garbage)
@example(kind="summary", raw=b'{"asOfMs":0}')  # older than the new one, so publishing used to replace it unreported
def test_corrupt_values_never_crash_are_reported_and_repaired(kind: str, raw: bytes) -> None:
    clock = FakeClock()
    store = MemoryStore(clock, key_prefix="t:")
    pipeline = writer(store, clock, 1, events_per_second=100)
    run([pipeline], clock, 3)
    pipeline.reader.refresh()
    key = key_of_kind(kind, pipeline)
    store.set(key, raw, 0)
    decodes = _decodes(store, pipeline, key)
    reader = reader_of(store, clock)  # a new process: it reads the meta afresh
    view = reader.refresh(series=True)  # no exception: corrupt values are read around
    reports = store.health().corrupt
    if not decodes:
        assert any(r.startswith(f"{key}: ") for r in reports), reports
        if kind in ("head", "shard"):
            assert view.incomplete  # never a silently low number
    for _ in range(7):  # the writer's next flushes and refreshes overwrite what it cannot read
        clock.advance(1.0)
        pipeline.step()
        assert pipeline.writer.flush()
        pipeline.reader.refresh()
    assert _decodes(store, pipeline, key)
    final = reader.read_view()
    counts = {t: dict(final.summary[t].by_tracking_id) for t in EVENT_TYPES}
    assert counts == expected([pipeline])  # the only writer put back all its counts
    assert all("restored" in gap.why for gap in final.incomplete)


LIVE_KINDS = ("meta", "generation", "head", "coarse-head", "shard", "coarse-shard", "summary", "shard-summary")


def test_garbage_in_every_kind_of_key_while_a_writer_and_a_reader_run_on_real_memcached(tmp_path: Path, memcached: MemcachedServer) -> None:
    """The property above against real memcached while a writer process and a reader run, with the
    generation marker too: nothing crashes, what is corrupt is reported, and once the writer has
    repaired what it wrote, a new process's summary equals the recount of the events log."""
    ids = IDS[:10]
    (tmp_path / "s.json").write_text(json.dumps({"tracking_ids": list(ids)}))
    log = tmp_path / "ev.jsonl"
    common = ["--settings", str(tmp_path / "s.json"), "--backend", "memcached", "--memcached", memcached.address, "--key-prefix", "g:"]
    writer_proc = Eventdash("--headless", *common, "--rate", "100", "--seed", "3", "--refresh", "0.5", "--events-log", str(log))
    writer_proc.wait_for('"backend": "memcached"', stream="stdout")
    store = MemcachedStore([memcached.server], "g:")
    reader = Reader(settings_for("g:"), store, clock=SystemClock())
    plain = Client(("127.0.0.1", memcached.port))
    k = zlib.crc32(ids[0].encode()) % 64

    def key_now(kind: str) -> str:
        bucket = int(time.time()) // 10
        return {
            "meta": "g:meta", "generation": "g:generation", "head": f"g:h1:{bucket}", "coarse-head": f"g:h6:{bucket // 6}",
            "shard": f"g:s1:{bucket}:user-event:{k}", "coarse-shard": f"g:s6:{bucket // 6}:user-event:{k}",
            "summary": "g:user-event", "shard-summary": f"g:user-event:s{k}",
        }[kind]

    @hsettings(max_examples=40, deadline=None, database=None)
    @given(kind=st.sampled_from(LIVE_KINDS), raw=garbage)
    @example(kind="generation", raw=b"\xff\xfe")
    def plant(kind: str, raw: bytes) -> None:
        assert plain.set(key_now(kind), raw, noreply=False)
        reader.refresh(series=True)  # no exception: corrupt values are read around
        time.sleep(0.05)  # the writer meets it too
        if kind == "generation":  # read once a flush: wait for the writer's report before planting over it
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                why = f"corrupt value g:generation: not UTF-8 (byte {exc.start})"
                wait_until(lambda: why in writer_proc.text("stderr"), timeout=10, what=why)

    try:
        plant()
        time.sleep(7)  # one verification round (every 5 s) and the flushes after it
    finally:
        status = writer_proc.stop(signal.SIGINT)
        store.close()
    stderr = writer_proc.text("stderr")
    assert status == 0 and "Traceback" not in stderr, stderr
    assert "corrupt value g:generation: not UTF-8 (byte 0)" in stderr
    summary = subprocess.run(
        [sys.executable, "-m", "tui", "summary", "--json", *common], capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert summary.returncode == 0 and "Traceback" not in summary.stderr, summary.stderr
    assert json.loads(summary.stdout)["summary"] == recount(rows(read_log(log)))


def _decodes(store: Store, pipeline: Pipeline, key: str) -> bool:
    raw = store.get_many([key]).get(key)
    if raw is None:
        return True  # absent is not corrupt
    layout = pipeline.prefix.get()
    now_ms = int(pipeline.clock.time() * 1000)
    try:
        if key == layout.meta_key:
            decode_meta(raw, now_ms, 4096)
        elif re.fullmatch(r"t:h(\d+):\d+", key):
            decode_head(raw, layout.shards, int(key[3:].split(":")[0]))
        elif re.fullmatch(r"t:s\d+:\d+:[a-z-]+:\d+", key):
            decode_shard(raw)
        else:
            decode_summary(raw, now_ms, per_shard=":s" in key)
    except Corrupt:
        return False
    return True


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"c":{"INF-a":-5},"w":{}}', "negative"),
        (b'{"c":{"INF-a":1.5},"w":{}}', "not a whole number"),
        (b'{"c":{"INF-a":true},"w":{}}', "not a whole number"),
        (b'{"c":{"INF-a":"12"},"w":{}}', "not a whole number"),
        (b'{"c":{"INF-a":1e400},"w":{}}', "float inf, not a whole number"),
        (b'{"c":{"INF-a":NaN},"w":{}}', "not a number JSON allows"),
        (b'{"c":{"INF-a":9007199254740993},"w":{}}', "absurd"),
        (b'{"c":{"bad id":1},"w":{}}', "bad tracking id"),
        (b'{"c":{},"w":"abc"}', "'w' is not an object"),
        (b'\xff\xfe', "not UTF-8"),
        (b'{"c":{}}', "'w' is missing"),
    ],
)
def test_the_shard_decoder_names_why_a_value_is_corrupt(raw: bytes, why: str) -> None:
    with pytest.raises(Corrupt, match=why):
        decode_shard(raw)


# -- the summaries' visitors (issue 13) -----------------------------------------------------------------

NOW_MS = 1_700_000_000_000
GAP = {"buckets": [170000000, 170000005], "from": "2023-11-14T22:13:20.000Z", "to": "2023-11-14T22:14:20.000Z", "why": "visitors: t:d6:28333333:review:3 is missing (evicted?)"}
COMMON = {"windowMinutes": 5, "bucketSeconds": 10, "asOf": "2023-11-14T22:13:20.000Z", "asOfMs": NOW_MS, "incomplete": []}
SUMMARY = {
    "totalEventsCaptured": 30, "eventsCapturedByTrackingIds": {"INF-a": 20, "INF-b": 9, "INF-c": 1}, **COMMON, "trackingIds": 3,
    "visitors": {"total": 12, "lower": 11, "upper": 13, "byTrackingId": {"INF-a": 8, "INF-b": 4}, "omitted": 1, "incomplete": [GAP]},
}
SHARD_SUMMARY = {
    "eventsCapturedByTrackingIds": {"INF-a": 20}, "shard": 3, "shards": 64, **COMMON,
    "visitors": {"byTrackingId": {"INF-a": 8}, "omitted": 0, "incomplete": []},
}


def test_a_summary_with_visitors_and_one_without_decode() -> None:
    assert decode_summary(json.dumps(SUMMARY).encode(), NOW_MS, per_shard=False) == SUMMARY
    assert decode_summary(json.dumps(SHARD_SUMMARY).encode(), NOW_MS, per_shard=True) == SHARD_SUMMARY
    older = {k: v for k, v in SUMMARY.items() if k != "visitors"}  # what a publisher before issue 13 wrote
    assert decode_summary(json.dumps(older).encode(), NOW_MS, per_shard=False) == older


@pytest.mark.parametrize(
    ("per_shard", "change", "why"),
    [
        (False, {"total": -1}, "'visitors': 'total' is negative"),
        (False, {"lower": 1.5}, "'visitors': 'lower' is float 1.5, not a whole number"),
        (False, {"upper": True}, "'visitors': 'upper' is bool True, not a whole number"),
        (False, {"total": 20}, "'visitors': 'total' 20 is not within 'lower' 11 and 'upper' 13"),
        (False, {"byTrackingId": {"bad id": 1}}, "'visitors': 'byTrackingId' has a bad tracking id 'bad id'"),
        (False, {"byTrackingId": {"INF-a": "8"}}, "'visitors': 'byTrackingId'\\['INF-a'\\] is str 8, not a whole number"),
        (False, {"byTrackingId": []}, "'visitors': 'byTrackingId' is not an object"),
        (False, {"omitted": 2**60}, "'visitors': 'omitted' is absurd"),
        (False, {"incomplete": {}}, "'visitors': 'incomplete' is not a list"),
        (False, {"incomplete": ["lost"]}, "'visitors': an 'incomplete' entry is not an object"),
        (False, {"incomplete": [{**GAP, "buckets": [5, 1]}]}, "'visitors': an 'incomplete' entry's first bucket is after its last"),
        (False, {"incomplete": [{**GAP, "why": 7}]}, "'visitors': an 'incomplete' entry's 'from', 'to' or 'why' is not a string"),
        (False, {"incomplete": [{**GAP, "x": 1}]}, "'visitors': unknown field 'x'"),
        (False, {"x": 1}, "'visitors': unknown field 'x'"),
        (True, {"total": 1}, "'visitors': unknown field 'total'"),
        (True, {"omitted": None}, "'visitors': 'omitted' is NoneType None, not a whole number"),
    ],
)
def test_the_summary_decoder_names_why_its_visitors_are_corrupt(per_shard: bool, change: dict[str, object], why: str) -> None:
    doc = json.loads(json.dumps(SHARD_SUMMARY if per_shard else SUMMARY))
    doc["visitors"].update(change)
    with pytest.raises(Corrupt, match=why):
        decode_summary(json.dumps(doc).encode(), NOW_MS, per_shard)


def test_visitors_that_are_not_an_object_or_lack_a_field_are_corrupt() -> None:
    for visitors, why in (([], "'visitors': is not an object"), ({"total": 1}, "'visitors': field 'lower' is missing")):
        with pytest.raises(Corrupt, match=re.escape(why)):
            decode_summary(json.dumps({**SUMMARY, "visitors": visitors}).encode(), NOW_MS, per_shard=False)


visitors_garbage = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["total", "lower", "upper", "byTrackingId", "omitted", "incomplete", "buckets", "from", "to", "why", "INF-a", "x"]),
        children, max_size=6,
    ),
    max_leaves=15,
)


@hsettings(max_examples=400, deadline=None)
@given(per_shard=st.booleans(), field=st.sampled_from([None, "total", "lower", "upper", "byTrackingId", "omitted", "incomplete", "x"]), value=visitors_garbage)
@example(per_shard=False, field="incomplete", value=[{"buckets": [1, 2], "from": "a", "to": "b", "why": None}])
@example(per_shard=False, field="byTrackingId", value={"INF-a": 2**53 + 1})
def test_any_stored_visitors_are_decoded_whole_or_refused_naming_them(per_shard: bool, field: str | None, value: object) -> None:
    """Whatever a hostile client stores in a summary's ``visitors``: refused with a reason that
    names it, or accepted only when it is a value a publisher could have written."""
    doc = json.loads(json.dumps(SHARD_SUMMARY if per_shard else SUMMARY))
    if field is None:
        doc["visitors"] = value
    else:
        doc["visitors"][field] = value
    try:
        got = decode_summary(json.dumps(doc).encode(), NOW_MS, per_shard)
    except Corrupt as exc:
        assert str(exc).startswith("'visitors': "), exc
        return
    visitors = got["visitors"]
    assert set(visitors) == ({"byTrackingId", "omitted", "incomplete"} if per_shard else {"total", "lower", "upper", "byTrackingId", "omitted", "incomplete"})
    numbers = [visitors["omitted"], *visitors["byTrackingId"].values()] + ([] if per_shard else [visitors["lower"], visitors["total"], visitors["upper"]])
    assert all(type(n) is int and 0 <= n <= 2**53 for n in numbers)
    assert per_shard or visitors["lower"] <= visitors["total"] <= visitors["upper"]
    assert all(re.fullmatch(r"[^\s\x00-\x1f\x7f]{1,200}", tid) for tid in visitors["byTrackingId"])
    for gap in visitors["incomplete"]:
        assert set(gap) == {"buckets", "from", "to", "why"} and all(isinstance(gap[k], str) for k in ("from", "to", "why"))
        assert [type(b) for b in gap["buckets"]] == [int, int] and 0 <= gap["buckets"][0] <= gap["buckets"][1]


def test_a_far_future_summary_is_corrupt_not_fresher(store: Store, clock: FakeClock) -> None:
    pipeline = writer(store, clock, 1, events_per_second=50)
    run([pipeline], clock, 2)
    future = {"totalEventsCaptured": 1, "eventsCapturedByTrackingIds": {"INF-a": 1}, "windowMinutes": 5, "bucketSeconds": 10,
              "asOf": "x", "asOfMs": 10**15, "incomplete": []}
    store.set("t:signup", json.dumps(future).encode(), 0)
    pipeline.reader.refresh()
    assert store.read_summaries(["t:signup"])["t:signup"]["asOfMs"] == int(clock.time() * 1000)  # type: ignore[index]
    assert any("asOfMs" in r for r in store.health().corrupt)


def test_one_ids_count_is_one_get_of_its_shard_summary_key(memcached: MemcachedServer, clock: FakeClock) -> None:
    store = MemcachedStore([memcached.server], "t:")
    pipeline = writer(store, clock, 1, events_per_second=300)
    run([pipeline], clock, 4)
    view = pipeline.reader.refresh()
    plain = Client(("127.0.0.1", memcached.port))
    for tid, n in list(view.summary["review"].by_tracking_id.items())[:20]:
        key = f"t:review:s{zlib.crc32(tid.encode()) % 64}"
        assert json.loads(plain.get(key))["eventsCapturedByTrackingIds"][tid] == n


def test_a_summary_key_past_its_id_limit_holds_the_total_the_top_ids_and_truncated(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SUMMARY_MAX_IDS (10,000; 50 here) ``P<type>`` keeps the exact total, the TOP_IDS largest
    and how many ids there are; every id stays one ``get`` away in its shard's key."""
    monkeypatch.setattr(publishing, "SUMMARY_MAX_IDS", 50)
    monkeypatch.setattr(publishing, "TOP_IDS", 10)
    pipeline = writer(store, clock, 1, events_per_second=400)
    run([pipeline], clock, 5)
    pipeline.reader.refresh()
    counts = expected([pipeline])["user-event"]
    assert len(counts) > 50
    layout = pipeline.prefix.get()
    published = store.read_summaries([layout.summary_key("user-event")])[layout.summary_key("user-event")]
    assert published is not None and published["truncated"] is True
    assert published["totalEventsCaptured"] == sum(counts.values()) and published["trackingIds"] == len(counts)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert published["eventsCapturedByTrackingIds"] == dict(top)
    keys = [layout.shard_summary_key("user-event", k) for k in range(layout.shards)]
    per_shard = store.read_summaries(keys, per_shard=True)
    assert {tid: n for doc in per_shard.values() if doc for tid, n in doc["eventsCapturedByTrackingIds"].items()} == counts


def test_a_writer_that_dies_before_writing_a_coarse_block_whole_is_reported_not_hidden(store: Store, clock: FakeClock) -> None:
    """Coarse blocks are written a slice a second; a writer killed meanwhile leaves a block whose
    head counts more than its shards hold. Readers say so instead of printing the lower number."""
    pipeline = writer(store, clock, 1, events_per_second=200)
    run([pipeline], clock, 25)  # dies here: no stop(), the last slices of its open blocks never go out
    clock.advance(60.0)
    reader = reader_of(store, clock, window_minutes=10)
    view = reader.read_view()
    assert any("not fully written" in gap.why for gap in view.incomplete), view.incomplete
    survivor = reader_of(store, clock)
    assert survivor.read_view().total <= pipeline.status().generated  # low, but said so above


def _count_round_trips(store: Store, monkeypatch: pytest.MonkeyPatch, drop: tuple[str, ...] = ()) -> list[list[str]]:
    """Record each ``get_many`` the store makes (its keys); on the first, leave out keys starting
    with ``drop``, as a value written just after the read reached it (or a cluster's other server)."""
    calls: list[list[str]] = []
    real = store.get_many

    def get_many(keys: list[str]) -> dict[str, bytes]:
        calls.append(list(keys))
        found = real(keys)
        return {k: v for k, v in found.items() if not k.startswith(drop)} if len(calls) == 1 else found

    monkeypatch.setattr(store, "get_many", get_many)
    return calls


def test_one_ids_count_over_24_h_is_one_round_trip_and_exact(store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Heads and the id's shard of every block are read together (the shard keys follow from the
    plan): one ``get_many``, the same counts as the whole window's read, nothing incomplete."""
    pipeline = writer(store, clock, 1, events_per_second=300)
    run([pipeline], clock, 30)
    clock.advance(120.0)  # the coarse blocks are closed and readable
    whole = pipeline.reader.read_view(window_seconds=86_400)
    calls = _count_round_trips(store, monkeypatch)
    for tid, n in list(whole.summary["user-event"].by_tracking_id.items())[:10]:
        calls.clear()
        one = pipeline.reader.read_one("user-event", tid, 86_400)
        assert len(calls) == 1, [len(c) for c in calls]
        assert one.summary["user-event"].by_tracking_id == {tid: n}
        assert not one.incomplete


def test_a_top_level_head_seen_before_and_lost_since_is_still_reported_lost(store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-trip read leaves out the children of top-level heads it decoded before (they tell a
    lost head from an empty one); when such a head is gone, its children are read next, and the
    hole is reported, never read as an hour without events."""
    pipeline = writer(store, clock, 1, events_per_second=300)
    run([pipeline], clock, 30)
    clock.advance(3_700.0)  # the hour block is closed and readable
    assert pipeline.writer.flush(everything=True)
    tid, n = next(iter(pipeline.reader.read_view(window_seconds=86_400).summary["user-event"].by_tracking_id.items()))
    layout = pipeline.prefix.get()
    blocks, _ = pipeline.reader._plan(layout, clock.time(), 86_400)
    top = next(b for b in blocks if b[0] == max(LEVELS) and store.get_many([layout.head_key(b)]))
    calls = _count_round_trips(store, monkeypatch)
    assert pipeline.reader.read_one("user-event", tid, 86_400).summary["user-event"].by_tracking_id == {tid: n}
    assert len(calls) == 1 and not any(k == layout.head_key(c) for c in children(top) for k in calls[0])
    store.delete(layout.head_key(top))
    calls.clear()
    lost = pipeline.reader.read_one("user-event", tid, 86_400)
    assert len(calls) == 2 and any("lost" in gap.why and layout.head_key(top) in gap.why for gap in lost.incomplete), lost.incomplete


def test_a_shard_the_one_trip_read_missed_is_read_again_before_it_is_called_lost(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard a head lists but the combined read did not find may have been written in between:
    it is read once more and counted; only one still missing then is reported lost."""
    pipeline = writer(store, clock, 1, events_per_second=300)
    run([pipeline], clock, 30)
    clock.advance(120.0)
    tid, n = next(iter(pipeline.reader.read_view(window_seconds=86_400).summary["user-event"].by_tracking_id.items()))
    calls = _count_round_trips(store, monkeypatch, drop=("t:s",))
    one = pipeline.reader.read_one("user-event", tid, 86_400)
    assert len(calls) == 2 and one.summary["user-event"].by_tracking_id == {tid: n} and not one.incomplete
    layout = pipeline.prefix.get()
    victim = next(k for k in calls[1] if k.startswith("t:s"))
    store.delete(victim)
    calls.clear()
    lost = pipeline.reader.read_one("user-event", tid, 86_400)
    assert any(victim in gap.why for gap in lost.incomplete), lost.incomplete  # never silently low
    assert layout.shard(tid) == int(victim.rsplit(":", 1)[1])


def test_a_value_whose_bytes_changed_is_decoded_again_so_corruption_after_a_read_is_reported(store: Store, clock: FakeClock) -> None:
    """Reads keep decoded values by their bytes: a value replaced after a read (here by garbage)
    is never served from what was decoded before."""
    pipeline = writer(store, clock, 1, events_per_second=300)
    run([pipeline], clock, 5)
    before = pipeline.reader.read_view()
    assert not before.incomplete and before.total > 0
    key = next(k for k in sorted(keys_of(store)) if k.startswith("t:s1:") and int(k.split(":")[2]) in before.buckets)
    store.set(key, b'{"c":{"INF-00001":-5},"w":{}}', 600)
    after = pipeline.reader.read_view()
    assert any(key in gap.why and "negative" in gap.why for gap in after.incomplete), after.incomplete
    assert any(key in r for r in store.health().corrupt)


def test_a_coarse_block_whose_shards_none_were_written_is_reported_not_read_as_zero(store: Store, clock: FakeClock) -> None:
    """A writer that dies before writing any shard of an open coarse block leaves heads that count
    its events but list no shard of theirs: readers say "not fully written", never print zero."""
    tid = IDS[0]
    settings = Settings(tracking_ids=(tid,), events_per_second=50, backend="memory", memcached=MemcachedSettings(key_prefix="t:"))
    pipeline = Pipeline(settings, store, clock=clock, seed=1, writer_id="w1")
    k = pipeline.prefix.get().shard(tid)

    def quiet(second: int) -> bool:  # no slice of the id's shard comes up, and the 1-minute block stays open
        return second % 10 != k % 10 and second % 60 != k % 60 and (second + 20) // 60 == second // 60

    while not all(quiet(int(clock.time()) + s) for s in range(4)):
        clock.advance(1.0)
    run([pipeline], clock, 3)  # dies here: its coarse shards were never due
    clock.advance(120.0)
    reader = Reader(settings, store, clock=clock)
    view = reader.read_view(window_seconds=600)
    assert any("not fully written" in gap.why for gap in view.incomplete), view.incomplete


def test_a_coarse_shard_is_written_once_a_minute_while_open_and_all_by_the_deadline_once_closed() -> None:
    """Readers use a coarse block only once it closed: while open, each shard is due once in 60 s
    (not every 10 s); once closed, in its slice within 10 s, and every one by the deadline."""
    layout = Layout("t:", 10)
    block = (360, 472_222)  # a 1-hour block: buckets 170,000,000 … 170,000,359
    end = layout.block_end(block)
    shard = ("s", 360, 472_222, "signup", 17)
    open_seconds = [t for t in range(end - 600, end) if due_now(layout, t)(shard)]
    assert len(open_seconds) == 10 and all(b - a == 60 for a, b in itertools.pairwise(open_seconds))
    closed = [t for t in range(end, end + 10) if due_now(layout, t)(shard)]
    assert len(closed) == 1
    assert all(due_now(layout, t)(shard) for t in range(end + 12, end + 30))
    assert all(due_now(layout, t)(("h", 360, 472_222)) and due_now(layout, t)(("s", 1, 170_000_000, "signup", 17)) for t in range(end - 60, end))
