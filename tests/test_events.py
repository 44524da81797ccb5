"""The event documents and the pacer: seeded, in the brief's shape, at an exact rate."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import defaultdict
from typing import Any

import pytest

from tui import EVENT_TYPES
from tui.clock import FakeClock
from tui.events import Event, EventFactory, Pacer, iso_ms
from tui.ingest.decode import hash_email
from tui.pipeline.generator import Generator
from tui.settings import Settings

IDS = ("INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo", "INF-ixpktk3itsk86")


def test_same_seed_gives_the_same_stream() -> None:
    a = [EventFactory(IDS, seed=7).make(1_700_000_000_000 + i).doc for i in range(3)]
    b = [EventFactory(IDS, seed=7).make(1_700_000_000_000 + i).doc for i in range(3)]
    c = [EventFactory(IDS, seed=8).make(1_700_000_000_000 + i).doc for i in range(3)]
    assert a == b
    assert a != c


@pytest.mark.parametrize(("zipf", "expected"), [(0.0, "a865c8aff45854ad"), (1.1, "38d5f61d54798aa0")])
def test_a_seed_keeps_the_stream_it_made_before_the_visitor_pools(zipf: float, expected: str) -> None:
    """Everything but who made each event (visitorId, sessionId, the e-mail) is as the factory made
    it before they came from :class:`tui.visitors.Visitors` (digests taken from that version): a
    seed's types, ids and counts, and so the dashboard snapshots, stay."""
    factory = EventFactory(IDS, seed=42, zipf=zipf)
    digest = hashlib.sha256()
    for i in range(2000):
        event = factory.make(1_700_000_000_000 + i)
        value = {k: v for k, v in event.doc["value"].items() if k not in ("sessionId", "visitorId")}
        if "form" in value:
            value["form"] = {k: v for k, v in value["form"].items() if k != "email"}
        digest.update(json.dumps([event.type, event.tracking_id, event.ts_ms, value], sort_keys=True).encode())
    assert digest.hexdigest()[:16] == expected


def test_documents_have_the_samples_full_shape() -> None:
    factory = EventFactory(IDS, seed=1)
    events = [factory.make(1_575_787_377_289) for _ in range(500)]
    assert {e.type for e in events} == set(EVENT_TYPES)
    names = {e.doc["value"]["event"] for e in events}
    assert {"formsubmit", "click", "scroll", "review"} <= names
    for event in events:
        doc = event.doc
        value = doc["value"]
        assert doc["type"] == event.type and doc["path"] == "/visitors/events/"
        assert value["trackingId"] == event.tracking_id in IDS
        assert value["timestamp"] == "2019-12-08T06:42:57.289Z"
        assert re.fullmatch(r"[0-9a-f]{32}", value["fingerprint"])
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value["sessionId"])
        assert set(value["geo"]) == {"latitude", "longitude", "city", "country", "ip"}
        assert value["source"]["url"]["protocol"] == "https:"
        assert "referrer" in value and value["userId"] is None
        if event.type == "signup":
            assert value["event"] == "formsubmit" and "@" in value["form"]["email"]
        elif event.type == "review":
            assert 1 <= value["review"]["rating"] <= 5 and value["review"]["product"]["name"]
        else:
            assert value["event"] in ("click", "scroll")


def test_iso_timestamps_have_milliseconds_in_utc() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_575_787_377_289) == "2019-12-08T06:42:57.289Z"
    assert iso_ms(1_575_787_378_001) == "2019-12-08T06:42:58.001Z"


@pytest.mark.parametrize("rate", [1, 7.5, 100, 1_000, 20_000, 50_000])
def test_pacer_is_exact_over_time_at_any_rate_and_tick(rate: float) -> None:
    pacer = Pacer(rate, now=0.0)
    now = 0.0
    for tick in (0.003, 0.01, 0.0137, 0.25) * 250:  # irregular ticks, about 69 s
        now += tick
        pacer.taken(pacer.due(now))
    assert pacer.emitted == int(now * rate + 1e-9)


def test_pacer_rate_change_takes_effect_from_the_change_without_burst() -> None:
    pacer = Pacer(100, now=0.0)
    pacer.taken(pacer.due(10.0))
    assert pacer.emitted == 1_000
    pacer.set_rate(200, now=10.0)
    pacer.taken(pacer.due(15.0))
    assert pacer.emitted == 2_000


def test_pacer_pause_generates_nothing_and_resume_leaves_no_debt() -> None:
    pacer = Pacer(100, now=0.0)
    pacer.taken(pacer.due(1.0))
    pacer.pause(now=1.0)
    assert pacer.due(60.0) == 0
    assert pacer.seconds_until_next(60.0) == float("inf")
    pacer.resume(now=60.0)
    assert pacer.due(60.0) == 0
    pacer.taken(pacer.due(61.0))
    assert pacer.emitted == 200


def test_pacer_says_how_long_until_the_next_event() -> None:
    pacer = Pacer(4, now=0.0)
    assert pacer.seconds_until_next(0.0) == pytest.approx(0.25)
    assert pacer.seconds_until_next(0.3) == 0.0


# -- the visitor pools behind the generator (tui/visitors.py) -----------------------------------------


def test_visitor_pools_cost_nothing_per_id_until_it_is_drawn() -> None:
    """A million Zipf-weighted ids: linear set-up (the weights' total once, not once per id), and
    state only for the sites visited; weights and their running sums give the same visitors."""
    import itertools
    import time

    from tui.events import zipf_cdf
    from tui.visitors import Visitors

    weights = [1.0 / rank**1.1 for rank in range(1, 1_000_001)]
    started = time.perf_counter()
    visitors = Visitors(len(weights), 100, seed=1, weights=weights)
    assert time.perf_counter() - started < 2.0  # was quadratic: minutes for 100,000 ids
    same = Visitors(len(weights), 100, seed=1, cum_weights=list(itertools.accumulate(weights)))
    picks = [0, 1, 0, 999_999, 5, 0] * 50
    assert [visitors.visit(s) for s in picks] == [same.visit(s) for s in picks]
    assert len(visitors._sites) == 4
    cdf = Visitors(1_000, 100, seed=1, cum_weights=zipf_cdf(1_000, 1.1))
    assert cdf.pool_sizes == Visitors(1_000, 100, seed=1, weights=[1.0 / r**1.1 for r in range(1, 1_001)]).pool_sizes
    with pytest.raises(ValueError, match="cum_weights"):
        Visitors(2, 10, cum_weights=[2.0, 1.0])
    with pytest.raises(ValueError, match="not both"):
        Visitors(2, 10, weights=[1, 1], cum_weights=[1, 2])
    with pytest.raises(IndexError):
        Visitors(2, 10).visit(2)


# -- who makes the generated events ------------------------------------------------------------------

TEN = tuple(f"INF-site{i}" for i in range(10))
START = 1_700_000_000_000


def run_of(seed: int, seconds: int = 60, rate: int = 200, **options: Any) -> list[Event]:
    factory = EventFactory(TEN, seed=seed, events_per_second=rate, **options)
    return [factory.make(START + i * 1000 // rate) for i in range(seconds * rate)]


def test_a_sites_visitors_come_in_sessions_so_distinct_visitors_are_far_fewer_than_events() -> None:
    events = run_of(3)
    per_site: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        assert event.visitor_id == event.doc["value"]["visitorId"]
        per_site[event.tracking_id].append(event)
    assert len(per_site) == 10
    for made in per_site.values():
        visitors = {e.visitor_id for e in made}
        sessions = {e.doc["value"]["sessionId"] for e in made}
        assert len(visitors) <= len(sessions) < len(made) / 3  # sessions of about 5 events
        by_session: dict[str, set[str | None]] = defaultdict(set)
        for e in made:
            by_session[e.doc["value"]["sessionId"]].add(e.visitor_id)
        assert all(len(v) == 1 for v in by_session.values())  # a session is one visitor's
    ids = [{e.visitor_id for e in made} for made in per_site.values()]
    assert sum(map(len, ids)) == len(set().union(*ids))  # no visitor of two sites


def test_the_same_seed_gives_the_same_visitors_and_another_seed_others() -> None:
    def who(events: list[Event]) -> list[tuple[Any, ...]]:
        return [(e.visitor_id, e.doc["value"]["sessionId"], e.doc["value"].get("form", {}).get("email")) for e in events]

    first, again, other = run_of(11, seconds=5), run_of(11, seconds=5), run_of(12, seconds=5)
    assert who(first) == who(again) and [e.doc for e in first] == [e.doc for e in again]
    assert not {e.visitor_id for e in first} & {e.visitor_id for e in other}


def test_a_visitor_signs_up_with_one_email_hashed_with_the_salt_and_without_one_not_at_all() -> None:
    salted, plain = run_of(5, 30, email_salt="generator salt"), run_of(5, 30)
    emails: dict[str | None, set[str]] = defaultdict(set)
    signups = 0
    for event, same in zip(salted, plain):
        value = event.doc["value"]
        assert same.visitor_id == event.visitor_id and same.email_hash is None  # the salt changes nothing else
        if event.type == "signup":
            signups += 1
            emails[event.visitor_id].add(value["form"]["email"])
            assert event.email_hash == hash_email(value["form"]["email"], b"generator salt")
            assert value["form"]["email"] not in repr(event[:3] + event[4:])  # only the document has it
        else:
            assert event.email_hash is None and "form" not in value
    assert all(len(found) == 1 for found in emails.values())
    assert signups > len(emails)  # some visitors signed up more than once, with the same address


def test_pools_follow_the_rate_and_the_zipf_weights_of_the_ids() -> None:
    uniform = EventFactory(TEN, seed=1, events_per_second=100).visitors.pool_sizes
    assert len(set(uniform)) == 1 and uniform[0] == 7_200  # a tenth of 20 sessions/s for an hour
    assert EventFactory(TEN, seed=1, events_per_second=1000).visitors.pool_sizes[0] == 72_000
    zipf = EventFactory(TEN, seed=1, zipf=1.1, events_per_second=100).visitors.pool_sizes
    assert list(zipf) == sorted(zipf, reverse=True) and zipf[0] > 4 * zipf[-1]
    assert sum(zipf) == pytest.approx(sum(uniform), rel=0.01)


def test_the_generator_takes_its_visitors_from_the_settings() -> None:
    settings = Settings(tracking_ids=TEN, events_per_second=500, zipf=1.1, email_salt="from the settings")
    runs = []
    for _ in range(2):
        clock = FakeClock()
        log = io.StringIO()
        generator = Generator(settings, clock, seed=8, events_log=log)
        generator.start(clock.monotonic())
        clock.advance(2.0)
        events, _ = generator.make(clock.monotonic())
        generator.log(events)
        runs.append(events)
    events = runs[0]
    assert len(events) == 1000 and [e.visitor_id for e in events] == [e.visitor_id for e in runs[1]]
    assert len({e.visitor_id for e in events}) < len(events) / 3
    signups = [e for e in events if e.type == "signup"]
    assert signups and all(e.email_hash == hash_email(e.doc["value"]["form"]["email"], b"from the settings") for e in signups)
    logged = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [d["value"]["visitorId"] for d in logged] == [e.visitor_id for e in runs[1]]
    assert any("form" in d["value"] and "@" in d["value"]["form"]["email"] for d in logged)  # the local log keeps the e-mail
    assert "from the settings" not in log.getvalue()
