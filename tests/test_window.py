"""Window math and the oracle: every summary keeps the README's bound, judged from the raw events.

The oracle (``tests.oracle.assert_window_bound``) recounts from the events' own timestamps and the
clock, never from the window the code computed, so a window one bucket short or long fails it.
"""

from __future__ import annotations

import io
import itertools
import json

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import MemcachedServer
from tests.oracle import Row, assert_window_bound, rows
from tui.clock import FakeClock
from tui.pipeline import Pipeline
from tui.settings import Settings
from tui.store import MemcachedStore, MemoryStore, Store
from tui.window import Ledger, bucket_of, cover, key_ttl, summarize, window_range


def test_buckets_are_epoch_aligned_and_start_inclusive() -> None:
    assert bucket_of(0, 10) == 0
    assert bucket_of(9_999, 10) == 0
    assert bucket_of(10_000, 10) == 1
    assert bucket_of(1_700_000_005_000, 10) == 170_000_000


def test_window_is_the_current_bucket_plus_w_over_b_full_ones() -> None:
    rng = window_range(1_700_000_005.5, 300, 10)
    assert rng == range(170_000_000 - 30, 170_000_001)
    assert len(rng) == 31


def test_ttl_outlives_the_window_by_more_than_a_bucket() -> None:
    assert key_ttl(300, 10) > 300 + 10


def test_summary_counts_only_buckets_inside_the_window() -> None:
    now = 1_700_000_005.0  # bucket 170_000_000 with B = 10
    counts = {
        (1, 170_000_000): {"signup": {"INF-a": 2}},
        (1, 169_999_970): {"signup": {"INF-b": 1}},  # oldest bucket still in a 300 s window
        (1, 169_999_969): {"signup": {"INF-a": 100}},  # one too old
        (6, 169_999_969 // 6): {"signup": {"INF-a": 100}},  # a block reaching out of the window
    }
    view = summarize(now, 300, 10, counts)
    assert view.summary["signup"].total == 3
    assert view.summary_json()["signup"] == {"totalEventsCaptured": 3, "eventsCapturedByTrackingIds": {"INF-a": 2, "INF-b": 1}}
    assert view.series["signup"][0] == 1 and view.series["signup"][-1] == 2
    assert view.summary["review"].total == 0


def test_cover_tiles_the_window_with_the_fewest_aligned_blocks() -> None:
    assert cover(range(5, 14)) == [(1, 5), (6, 1), (1, 12), (1, 13)]
    day = window_range(1_700_000_005.0, 86_400, 10)
    blocks = cover(day)
    assert sum(span for span, _ in blocks) == len(day) == 8_641
    assert [span * i for span, i in blocks] == sorted(span * i for span, i in blocks)
    assert len(blocks) <= 45  # instead of 8,641 single buckets


def test_ledger_hands_out_deltas_once_and_keeps_absolute_counts_for_repair() -> None:
    ledger = Ledger(10)
    ledger.record([("signup", "INF-a", 5_000), ("signup", "INF-a", 15_000), ("review", "INF-b", 15_001)])
    taken = ledger.take_deltas()
    assert taken[(1, 0)] == {"signup": {"INF-a": 1}}
    assert taken[(1, 1)] == {"signup": {"INF-a": 1}, "review": {"INF-b": 1}}
    assert taken[(6, 0)] == taken[(60, 0)] == taken[(360, 0)] == {"signup": {"INF-a": 2}, "review": {"INF-b": 1}}
    assert ledger.take_deltas() == {}
    ledger.record([("signup", "INF-a", 15_002)])
    taken = ledger.take_deltas()
    assert taken[(1, 1)] == {"signup": {"INF-a": 1}}  # a delta: only what changed
    assert (1, 0) not in taken
    assert ledger.block((1, 1)) == {"signup": {"INF-a": 2}, "review": {"INF-b": 1}}  # absolute, for repair
    ledger.prune(1)
    assert ledger.bucket_count() == 1 and ledger.block((1, 0)) is None


def test_ids_past_the_cap_count_under_other_and_are_reported() -> None:
    ledger = Ledger(10, max_ids=2)
    ledger.record([("signup", tid, 5_000) for tid in ("INF-a", "INF-b", "INF-c", "INF-c", "INF-a")])
    assert ledger.take_deltas()[(1, 0)] == {"signup": {"INF-a": 2, "INF-b": 1, "(other)": 2}}
    assert ledger.other_events == 2


def run_and_check(store: Store, clock: FakeClock, seed: int, bucket_seconds: int, window_buckets: int, per_bucket: float, steps: list[float]) -> int:
    """Drive an pipeline on a fake clock; after every flush, judge its summary against the README's
    bound, recounted from the raw timestamps in its own events log (see ``assert_window_bound``).

    ``per_bucket`` is the rate in events per bucket, ``steps`` the clock advances in buckets, so a
    24 h window costs no more events than a 10 s one.
    """
    settings = Settings(
        events_per_second=per_bucket / bucket_seconds,
        bucket_seconds=bucket_seconds,
        window_minutes=window_buckets * bucket_seconds / 60,
        tracking_ids=("INF-a", "INF-b", "INF-c", "INF-d"),
        backend="memory",
    )
    log = io.StringIO()
    pipeline = Pipeline(settings, store, clock=clock, seed=seed, events_log=log)
    checked = 0
    events: list[Row] = []
    for step in steps:
        clock.advance(step * bucket_seconds)
        while pipeline.step() == 0.0:  # a long step makes more than one batch of events
            pass
        assert pipeline.writer.flush()
        view = pipeline.reader.read_view()
        assert pipeline.reader.read_view(series=True).summary == view.summary  # buckets and blocks agree
        events.extend(rows(json.loads(line) for line in log.getvalue().splitlines()))
        log.seek(0)
        log.truncate()
        now_ms = int(clock.time() * 1000)
        assert all(stamp <= now_ms for stamp, _, _ in events)
        rounded = view.approximation_seconds - bucket_seconds  # the old edge, moved to a kept block
        if settings.window_seconds + bucket_seconds <= settings.retention[1]:
            assert rounded == 0  # single buckets still reach the old edge: exactly ±B
        else:
            assert 0 <= rounded < 6 * bucket_seconds  # at most one block of the next level
        assert_window_bound(view.summary_json(), events, now_ms, settings.window_seconds, bucket_seconds, rounded)
        spans = {span for span, _ in cover(view.buckets)}
        if window_buckets >= 2 * 360:  # long enough that the read must use the large blocks
            assert 360 in spans
        elif window_buckets >= 2 * 60:
            assert 60 in spans
        checked += 1
    return checked


BUCKET_SECONDS = st.sampled_from([1, 2, 5, 10, 60])
PER_BUCKET = st.floats(0.3, 4)


@st.composite
def windows_and_steps(draw: st.DrawFn) -> tuple[int, list[float]]:
    """A window of 1 to 12 buckets, or long enough for blocks of 60, or of 360 buckets
    (tui.window.LEVELS); and clock advances, in buckets, from a sliver of one to most of the window."""
    window_buckets = draw(st.one_of(st.integers(1, 12), st.integers(60, 200), st.integers(720, 900)))
    steps = draw(st.lists(st.floats(0.01, max(2.0, window_buckets * 0.7)), min_size=1, max_size=4))
    return window_buckets, steps


#: Always tried: the large blocks on real windows, 1 h of 1 s buckets (and 24 h of 10 s buckets).
ONE_HOUR = example(seed=7, bucket_seconds=1, per_bucket=2, case=(3_600, [2_000.5, 1_700.25, 400.75]))
ONE_DAY = example(seed=8, bucket_seconds=10, per_bucket=1, case=(8_640, [5_000.3, 4_000.1]))


@hsettings(max_examples=30, deadline=None)
@ONE_HOUR
@ONE_DAY
@given(seed=st.integers(0, 2**32), bucket_seconds=BUCKET_SECONDS, per_bucket=PER_BUCKET, case=windows_and_steps())
def test_every_summary_keeps_the_documented_bound_in_the_memory_store(
    seed: int, bucket_seconds: int, per_bucket: float, case: tuple[int, list[float]]
) -> None:
    clock = FakeClock(1_700_000_000.0 + seed % 997 + 0.123)
    window_buckets, steps = case
    assert run_and_check(MemoryStore(clock), clock, seed, bucket_seconds, window_buckets, per_bucket, steps) == len(steps)


_prefixes = itertools.count()


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@ONE_HOUR
@given(seed=st.integers(0, 2**32), bucket_seconds=BUCKET_SECONDS, per_bucket=PER_BUCKET, case=windows_and_steps())
def test_every_summary_keeps_the_documented_bound_in_memcached(
    memcached: MemcachedServer, seed: int, bucket_seconds: int, per_bucket: float, case: tuple[int, list[float]]
) -> None:
    """The same through a real memcached; each example writes under a key prefix of its own."""
    clock = FakeClock(1_700_000_000.0 + seed % 997 + 0.123)
    window_buckets, steps = case
    store = MemcachedStore([memcached.server], f"win{next(_prefixes)}:")
    try:
        assert run_and_check(store, clock, seed, bucket_seconds, window_buckets, per_bucket, steps) == len(steps)
    finally:
        store.close()


def test_a_long_run_keeps_memory_bounded_by_the_window() -> None:
    clock = FakeClock()
    settings = Settings(events_per_second=200, window_minutes=1, bucket_seconds=10, tracking_ids=("INF-a", "INF-b"), backend="memory")
    pipeline = Pipeline(settings, MemoryStore(clock), clock=clock, seed=1)
    for _ in range(60):  # ten minutes, 120,000 events
        clock.advance(10.0)
        pipeline.step()
    pipeline.writer.flush()
    assert pipeline.status().generated == 120_000
    assert pipeline.writer._ledger.bucket_count() <= settings.window_buckets + 2
    assert pipeline.reader.read_view().total <= 200 * (60 + 10)
