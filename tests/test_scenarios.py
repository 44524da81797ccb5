"""--scenario: the strict parser (one-line errors naming the part; nothing else ever raised) and
the wrapper that shapes a seeded event stream without changing the generator."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tui.events import EventFactory
from tui.scenarios import (
    Diurnal,
    ScenarioError,
    ScenarioPlan,
    Window,
    Zipf,
    parse_scenario,
    parse_scenarios,
)

IDS = [f"INF-{i}" for i in range(10)]
START = 1_700_000_000_000


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("spike:signup:INF-a:x5:60s@30s", Window("spike", "signup", "INF-a", 5.0, 30.0, 90.0)),
        ("spike:*:*:x2.5:1m", Window("spike", None, None, 2.5, 0.0, 60.0)),
        ("drop:signup:INF-yj562hjojbtez:120s", Window("drop", "signup", "INF-yj562hjojbtez", 0.0, 0.0, 120.0)),
        ("drop:review:*:2h@0.5h", Window("drop", "review", None, 0.0, 1800.0, 9000.0)),
        ("drop:signup:site:with:colons:10s", Window("drop", "signup", "site:with:colons", 0.0, 0.0, 10.0)),
        ("diurnal", Diurnal(600.0)),
        ("diurnal:1h", Diurnal(3600.0)),
        ("zipf", Zipf(1.1)),
        ("zipf:2", Zipf(2.0)),
    ],
)
def test_specs_parse(spec, parsed) -> None:
    assert parse_scenario(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("spike:signup:*:5:60s", "--scenario 'spike:signup:*:5:60s': the factor '5' must be x and a number, e.g. x5"),
        ("spike:signup:*:x1:60s", "the factor 'x1' must be more than x1 and at most x100"),
        ("spike:signup:*:x5", "a spike is spike:<type>:<id|*>:x<factor>:<duration>[@<offset>]"),
        ("drop:click:*:60s", "the type 'click' is not one of signup, user-event, review or *"),
        ("drop:signup:*:60", "the duration '60' must be a number with s, m or h"),
        ("drop:signup:*:0s", "the duration '0s' must be more than 0 and at most 7 days"),
        ("drop:signup:*:60s@", "the offset '' must be a number with s, m or h"),
        ("drop:signup:*:60s@8d", "the offset '8d' must be a number with s, m or h"),
        ("drop:signup:*:200h", "the duration '200h' must be more than 0 and at most 7 days"),
        ("drop:signup:a b:60s", "the tracking id 'a b' contains whitespace"),
        ("drop:signup::60s", "the tracking id is empty"),
        ("diurnal:0s", "the period '0s' must be more than 0"),
        ("zipf:0", "the exponent '0' must be a number more than 0 and at most 5"),
        ("burst:signup:*:60s", "unknown kind 'burst'; use spike:"),
    ],
)
def test_bad_specs_are_refused_naming_the_part(spec, message) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


@given(st.text(max_size=80) | st.from_regex(r"(spike|drop|diurnal|zipf)(:[^:]{0,12}){0,5}", fullmatch=True))
@hsettings(max_examples=500, deadline=None)
def test_any_text_parses_or_raises_only_the_documented_error(text) -> None:
    try:
        parse_scenario(text)
    except ScenarioError as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc)


def test_zipf_twice_is_refused() -> None:
    with pytest.raises(ScenarioError, match="zipf is given more than once"):
        parse_scenarios(["zipf", "zipf:2"])


def stream(plan: ScenarioPlan, seconds: int, rate: int, seed: int = 5) -> list:
    factory = EventFactory(IDS, seed=seed)
    events = (factory.make(START + i * 1000 // rate) for i in range(seconds * rate))
    return list(plan.apply(events, START))


def per_second(events: list, etype: str | None = None, tid: str | None = None) -> Counter:
    return Counter(
        (e.ts_ms - START) // 1000 for e in events
        if (etype is None or e.type == etype) and (tid is None or e.tracking_id == tid)
    )


def test_a_drop_removes_exactly_that_traffic_for_its_time() -> None:
    plan = ScenarioPlan(parse_scenarios(["drop:signup:INF-3:20s@10s"]), IDS, seed=1)
    events = stream(plan, 40, 200)
    gone = per_second(events, "signup", "INF-3")
    assert all(gone[s] == 0 for s in range(10, 30)) and sum(gone[s] for s in range(10)) > 20
    assert sum(per_second(events, "signup", "INF-4")[s] for s in range(10, 30)) > 40  # others untouched


def test_a_spike_multiplies_that_traffic_with_new_visitors() -> None:
    plan = ScenarioPlan(parse_scenarios(["spike:review:*:x5:20s@20s"]), IDS, seed=1)
    base = stream(ScenarioPlan([], IDS), 40, 200)
    events = stream(plan, 40, 200)
    before = sum(per_second(base, "review")[s] for s in range(20, 40))
    after = sum(per_second(events, "review")[s] for s in range(20, 40))
    assert after == 5 * before  # a whole factor repeats each event exactly
    assert sum(per_second(events, "signup").values()) == sum(per_second(base, "signup").values())
    # The generator's visitors come back (sessions), so the base has repeated visitors; every
    # repeat the spike adds is a visitor of its own, in the document and in the event alike.
    spiked = [e for e in events if e.type == "review" and e.ts_ms - START >= 20_000]
    base_visitors = {e.visitor_id for e in base if e.type == "review" and e.ts_ms - START >= 20_000}
    assert all(e.visitor_id == e.doc["value"]["visitorId"] for e in spiked)
    assert len({e.visitor_id for e in spiked}) == len(base_visitors) + 4 * before


def test_the_diurnal_wave_keeps_the_mean_and_shapes_the_rate() -> None:
    plan = ScenarioPlan(parse_scenarios(["diurnal:40s"]), IDS, seed=2)
    events = stream(plan, 40, 500)
    seconds = per_second(events)
    peak = sum(seconds[s] for s in range(5, 15))  # around 10 s: 1.5 x
    trough = sum(seconds[s] for s in range(25, 35))  # around 30 s: 0.5 x
    assert 2.3 < peak / trough < 3.7
    assert abs(len(events) - 40 * 500) < 0.03 * 40 * 500


def test_zipf_is_the_factorys_one_draw_and_the_plan_leaves_it_alone() -> None:
    """``zipf`` is the settings' ``zipf`` (the CLI sets it): the plan passes events through
    unchanged, and the factory's Zipf draw makes a few ids large and many small."""
    plan = ScenarioPlan(parse_scenarios(["zipf:1.1"]), IDS, seed=3)
    assert not plan
    factory = EventFactory(IDS, seed=3, zipf=1.1)
    events = [factory.make(START + i) for i in range(10_000)]
    assert list(plan.apply(events, START)) == events
    counts = Counter(e.tracking_id for e in events)
    assert counts["INF-0"] > 2.5 * counts["INF-3"] and counts["INF-0"] > 8 * counts["INF-9"] > 0


def test_a_seeded_plan_is_reproducible() -> None:
    specs = ["zipf", "diurnal:30s", "spike:*:INF-1:x2.5:10s@5s", "drop:signup:*:5s@20s"]
    a = stream(ScenarioPlan(parse_scenarios(specs), IDS, seed=9), 30, 100)
    b = stream(ScenarioPlan(parse_scenarios(specs), IDS, seed=9), 30, 100)
    assert [(e.type, e.tracking_id, e.ts_ms) for e in a] == [(e.type, e.tracking_id, e.ts_ms) for e in b]


def test_unknown_ids_are_reported() -> None:
    plan = ScenarioPlan(parse_scenarios(["drop:signup:INF-nope:10s", "drop:signup:*:10s"]), IDS)
    assert plan.unknown_ids() == ["INF-nope"]
