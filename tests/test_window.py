"""Window math and the oracle: every summary equals a brute-force recount of the raw events."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.oracle import Row, recount, rows
from tui.clock import FakeClock
from tui.engine import Engine
from tui.settings import Settings
from tui.store import MemoryStore
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


def run_and_check(seed: int, bucket_seconds: int, window_buckets: int, rate: float, steps: list[float]) -> int:
    """Drive an engine on a fake clock and compare every summary with a recount of its own log."""
    clock = FakeClock(1_700_000_000.0 + seed % 997)
    settings = Settings(
        events_per_second=rate,
        bucket_seconds=bucket_seconds,
        window_minutes=window_buckets * bucket_seconds / 60,
        tracking_ids=("INF-a", "INF-b", "INF-c", "INF-d"),
        backend="memory",
    )
    log = io.StringIO()
    engine = Engine(settings, MemoryStore(clock), clock=clock, seed=seed, events_log=log)
    checked = 0
    events: list[Row] = []
    for step in steps:
        clock.advance(step)
        engine.step()
        engine.flush()
        view = engine.read_view()
        assert engine.read_view(series=True).summary == view.summary  # buckets and blocks agree
        events.extend(rows(json.loads(line) for line in log.getvalue().splitlines()))
        log.seek(0)
        log.truncate()
        now_ms = int(clock.time() * 1000)
        first = view.buckets.start * bucket_seconds * 1000
        exact = recount(events, since_ms=first)
        assert view.summary_json() == exact
        window_ms = settings.window_seconds * 1000
        lower = recount(events, since_ms=now_ms - window_ms + bucket_seconds * 1000)
        upper = recount(events, since_ms=now_ms - window_ms - bucket_seconds * 1000)
        for etype, summary in view.summary_json().items():
            assert lower[etype]["totalEventsCaptured"] <= summary["totalEventsCaptured"] <= upper[etype]["totalEventsCaptured"]
        assert all(stamp <= now_ms for stamp, _, _ in events)
        checked += 1
    return checked


@hsettings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    bucket_seconds=st.sampled_from([1, 2, 5, 10, 60]),
    window_buckets=st.integers(1, 12),
    rate=st.floats(0.5, 60),
    steps=st.lists(st.floats(0.01, 30), min_size=1, max_size=15),
)
def test_every_summary_equals_a_recount_of_the_raw_events(
    seed: int, bucket_seconds: int, window_buckets: int, rate: float, steps: list[float]
) -> None:
    assert run_and_check(seed, bucket_seconds, window_buckets, rate, steps) == len(steps)


def test_a_long_run_keeps_memory_bounded_by_the_window() -> None:
    clock = FakeClock()
    settings = Settings(events_per_second=200, window_minutes=1, bucket_seconds=10, tracking_ids=("INF-a", "INF-b"), backend="memory")
    engine = Engine(settings, MemoryStore(clock), clock=clock, seed=1)
    for _ in range(60):  # ten minutes, 120,000 events
        clock.advance(10.0)
        engine.step()
    engine.flush()
    assert engine.status().generated == 120_000
    assert engine._ledger.bucket_count() <= settings.window_buckets + 2
    assert engine.read_view().total <= 200 * (60 + 10)
