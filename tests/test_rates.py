"""The rate every view shows: events/s over the last few seconds, from the store's bucket counts."""

from __future__ import annotations

import pytest

from tui.clock import FakeClock
from tui.rates import RateMeter

B = 10  # bucket seconds


def reading(clock: FakeClock, totals: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
    """The buckets a refresh reads at the clock's time: the current one and the two before it."""
    current = int(clock.time()) // B
    return {b: dict(totals.get(b, {})) for b in range(current - 2, current + 1)}


def run(meter: RateMeter[str], clock: FakeClock, totals: dict[int, dict[str, int]], rates: dict[str, float], seconds: int) -> None:
    """``seconds`` one-second refreshes while each key gains ``rates[key]`` events a second."""
    for _ in range(seconds):
        clock.advance(1.0)
        bucket = int(clock.time()) // B
        for key, rate in rates.items():
            totals.setdefault(bucket, {})[key] = totals.get(bucket, {}).get(key, 0) + int(rate)
        meter.observe(clock.time(), reading(clock, totals))


def test_no_rate_from_one_reading_then_the_rate_after_one_second() -> None:
    clock, meter, totals = FakeClock(1_000_000.0), RateMeter[str](), {}
    meter.observe(clock.time(), reading(clock, totals))
    assert not meter.ready and meter.rate_where(lambda k: True) == 0.0
    run(meter, clock, totals, {"a": 40}, 1)
    assert meter.ready and meter.rate_where(lambda k: k == "a") == pytest.approx(40.0)


def test_rate_spans_bucket_boundaries_without_a_dip() -> None:
    clock, meter, totals = FakeClock(1_000_000.0 + 7), RateMeter[str](), {}
    meter.observe(clock.time(), reading(clock, totals))
    for _ in range(25):  # crosses two bucket boundaries
        run(meter, clock, totals, {"a": 40, "b": 10}, 1)
        assert meter.rate_where(lambda k: k == "a") == pytest.approx(40.0)
        assert meter.rate_where(lambda k: True) == pytest.approx(50.0)
    assert meter.elapsed == pytest.approx(5.0)


def test_rate_follows_a_change_within_the_span_not_a_bucket() -> None:
    clock, meter, totals = FakeClock(1_000_000.0), RateMeter[str](), {}
    meter.observe(clock.time(), reading(clock, totals))
    run(meter, clock, totals, {"a": 40}, 20)
    run(meter, clock, totals, {"a": 80}, 5)
    assert meter.rate_where(lambda k: k == "a") == pytest.approx(80.0)


def test_counts_of_every_writer_add_up_even_when_one_flushes_late() -> None:
    clock, meter, totals = FakeClock(1_000_000.0 + 5), RateMeter[str](), {}
    meter.observe(clock.time(), reading(clock, totals))
    for _ in range(20):
        clock.advance(1.0)
        now = int(clock.time())
        for writer_time in (now, now - 1):  # writer two's counts for the last second arrive a second late
            bucket = writer_time // B
            totals.setdefault(bucket, {})["a"] = totals.get(bucket, {}).get("a", 0) + 30
        meter.observe(clock.time(), reading(clock, totals))
    assert meter.rate_where(lambda k: k == "a") == pytest.approx(60.0)


def test_a_store_that_lost_its_counts_gives_no_negative_rate() -> None:
    clock, meter, totals = FakeClock(1_000_000.0), RateMeter[str](), {}
    meter.observe(clock.time(), reading(clock, totals))
    run(meter, clock, totals, {"a": 40}, 3)
    totals.clear()  # memcached restarted
    clock.advance(1.0)
    meter.observe(clock.time(), reading(clock, totals))
    assert meter.rate_where(lambda k: True) == 0.0


def test_trend_keeps_the_rate_of_each_reading() -> None:
    clock, meter, totals = FakeClock(1_000_000.0), RateMeter[str](trend_length=4), {}
    meter.observe(clock.time(), reading(clock, totals))
    run(meter, clock, totals, {"a": 10}, 6)
    run(meter, clock, totals, {"a": 10, "b": 20}, 2)
    assert meter.trend_where(lambda k: k == "b") == pytest.approx([0.0, 0.0, 20 / 5, 40 / 5])
    assert len(meter.trend_where(lambda k: k == "a")) == 4


def test_a_second_reading_at_the_same_instant_is_ignored() -> None:
    clock, meter, totals = FakeClock(1_000_000.0), RateMeter[str](), {}
    meter.observe(clock.time(), reading(clock, totals))
    meter.observe(clock.time(), reading(clock, totals))
    assert not meter.ready
