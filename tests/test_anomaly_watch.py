"""The detector in a reading process, over both stores: it judges each closed bucket once, primes its
baselines from the buckets the store keeps, and never takes an unreadable bucket for a drop."""

from __future__ import annotations

from tui.anomaly import DROP, FIRING, RESOLVED
from tui.anomaly.watch import CATCH_UP_BUCKETS, SETTLE_SECONDS, AnomalyWatch
from tui.clock import FakeClock
from tui.pipeline import Pipeline
from tui.settings import Settings
from tui.store import Store

B = 10  # seconds per bucket
PER_BUCKET = 30  # steady signups per id per bucket


def _run(pipeline: Pipeline, clock: FakeClock, buckets: int, per_id: dict[str, int]) -> list[tuple[int, str, str | None, str]]:
    """``buckets`` buckets of traffic, flushed each, the watch polled after each; the transitions seen."""
    seen = []
    for _ in range(buckets):
        start_ms = int(clock.time() // B * B * 1000)
        events = [("signup", tid, start_ms + n, None) for tid, count in per_id.items() for n in range(count)]
        pipeline.writer.ingest(events)
        clock.advance(B)
        assert pipeline.writer.flush()
        assert pipeline.anomalies is not None
        seen += [(int(clock.time() // B), a.id or "*", a.direction, a.state) for a in pipeline.anomalies.poll()]
    return seen


def _pipeline(store: Store, clock: FakeClock) -> Pipeline:
    settings = Settings(tracking_ids=("INF-a", "INF-b"), backend="memory", bucket_seconds=B)
    return Pipeline(settings, store, clock=clock, generate=False)


def test_a_drop_to_zero_fires_after_for_buckets_and_resolves_after_keep_firing_for(store: Store, clock: FakeClock) -> None:
    clock.advance(B - clock.time() % B + SETTLE_SECONDS + 0.5)  # just past a bucket's settle time
    pipeline = _pipeline(store, clock)
    steady = {"INF-a": PER_BUCKET, "INF-b": PER_BUCKET}
    assert _run(pipeline, clock, 70, steady) == []  # warm-up and steady traffic: nothing
    dropped = _run(pipeline, clock, 8, {"INF-b": PER_BUCKET})
    settings = pipeline.settings.anomaly
    assert [(i, d, s) for _, i, d, s in dropped] == [("INF-a", DROP, FIRING)]
    fired_at = dropped[0][0]
    back = _run(pipeline, clock, settings.keep_firing_for_buckets + 3, steady)
    assert [(i, d, s) for _, i, d, s in back] == [("INF-a", DROP, RESOLVED)]
    status = pipeline.anomalies.status() if pipeline.anomalies else None
    assert status is not None and status.alerts == () and [a.state for a in status.history] == [FIRING, RESOLVED]
    # it fired at the first poll after its third zero bucket settled, and dates from the first one
    drop_began = fired_at - settings.for_buckets
    assert (status.history[0].since, status.history[0].fired_at) == (drop_began, fired_at - 1)


def test_a_second_reader_primes_from_the_kept_buckets_and_flags_the_drop_without_a_warm_up(store: Store, clock: FakeClock) -> None:
    clock.advance(B - clock.time() % B + SETTLE_SECONDS + 0.5)
    writer = _pipeline(store, clock)
    steady = {"INF-a": PER_BUCKET, "INF-b": PER_BUCKET}
    _run(writer, clock, 70, steady)
    reader = _pipeline(store, clock)  # a dashboard started now, over what the writer kept
    assert reader.anomalies is not None
    for _ in range(3):  # within its time budget, an hour of two ids primes in a poll (three if the machine is slow)
        reader.anomalies.poll()
        if not reader.anomalies.status().priming:
            break
    assert not reader.anomalies.status().priming
    sliced = AnomalyWatch(reader.settings.anomaly, B, reader.reader.read_closed_buckets, clock, 3600, budget_seconds=0)
    polls = 0
    while sliced.status().priming or polls == 0:
        assert sliced.poll() == []  # priming: the past is learned, nothing announced
        polls += 1
    assert polls == 3600 // B // CATCH_UP_BUCKETS  # out of budget, one slice a poll: never one long stall
    assert sliced.status().series == reader.anomalies.status().series
    assert reader.anomalies.status().series == 2 + 1  # both ids and the signup type
    for _ in range(4):  # both readers see the writer's drop
        start_ms = int(clock.time() // B * B * 1000)
        writer.writer.ingest([("signup", "INF-b", start_ms + n, None) for n in range(PER_BUCKET)])
        clock.advance(B)
        assert writer.writer.flush()
        reader.anomalies.poll()
    assert [(a.id, a.direction, a.state) for a in reader.anomalies.status().alerts] == [("INF-a", DROP, FIRING)]


def test_a_fresh_prefix_does_not_take_its_empty_past_for_a_baseline(store: Store, clock: FakeClock) -> None:
    """An hour of nothing before the first event is no history: the first traffic is not a spike."""
    pipeline = _pipeline(store, clock)
    assert _run(pipeline, clock, 20, {"INF-a": 5 * PER_BUCKET}) == []
    assert pipeline.anomalies is not None and pipeline.anomalies.status().alerts == ()


def test_an_unreadable_bucket_is_skipped_not_judged_as_zeros(clock: FakeClock) -> None:
    judged: list[int] = []

    def read(buckets: range) -> tuple[dict[int, dict[str, dict[str, int]]], set[int]]:
        judged.extend(buckets)
        # every bucket unreadable after the first 70: a drop to zero would fire if they were zeros
        return {b: {"signup": {"INF-a": 50}} for b in buckets if b < first + 70}, {b for b in buckets if b >= first + 70}

    settings = Settings(bucket_seconds=B).anomaly
    first = int((clock.time() - SETTLE_SECONDS) // B)
    watch = AnomalyWatch(settings, B, read, clock, kept_seconds=0)
    for _ in range(90):
        watch.poll()
        clock.advance(B)
    status = watch.status()
    assert status.alerts == () and status.history == ()
    assert status.skipped == len([b for b in judged if b >= first + 70]) > 10
