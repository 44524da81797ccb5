"""Anomaly detection: the alert state machine exactly, floors, lazy series, seasons, settings, and
the scenario test at CI scale (seeded, fake clock: buckets are numbers, no real time passes)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.anomaly_sim import Sim, run, zipf_rates
from tui.anomaly import (
    DROP,
    FIRING,
    PENDING,
    RESOLVED,
    SPIKE,
    AnomalySettings,
    Detector,
    build_anomaly_settings,
)
from tui.anomaly.alerts import INACTIVE, AlertTrack
from tui.anomaly.settings import check_anomaly_settings
from tui.settings import SettingsError

B0 = 170_000_000  # a bucket index (10 s buckets: Nov 2023)
QUICK = AnomalySettings(warmup_seconds=0, season_seconds=30 * 86_400 - 30 * 86_400 % 24)


def steady(detector: Detector, first: int, buckets: int, counts: dict[str, int], etype: str = "signup") -> list:
    out = []
    for b in range(first, first + buckets):
        out += detector.close_bucket(b, {etype: dict(counts)})
    return out


# --------------------------------------------------------------------------------------------------
# The state machine, exactly.


def run_track(directions: list[str | None], for_buckets: int, keep: int) -> list[tuple[int, str]]:
    track = AlertTrack()
    out = []
    for i, d in enumerate(directions):
        changed = track.step(d, i, 1.0, 1.0, for_buckets, keep)
        if changed:
            out.append((i, changed))
    return out


@pytest.mark.parametrize(
    ("directions", "for_buckets", "keep", "expected"),
    [
        # held for 3: fires at the third bucket; keep 2: resolves at the third quiet bucket
        ("SSS...", 3, 2, [(2, FIRING), (5, RESOLVED)]),
        ("SS.SS.", 3, 2, []),  # never held long enough: pending, cleared, pending, cleared
        ("S", 1, 0, [(0, FIRING)]),
        ("S.", 1, 0, [(0, FIRING), (1, RESOLVED)]),
        ("SSS.S.S.S...", 3, 2, [(2, FIRING), (11, RESOLVED)]),  # comes and goes: one alert, no flapping
        ("SSDDD", 3, 0, [(4, FIRING)]),  # turned round while pending: a new pending of the other way
        ("SSSDDDDD", 3, 1, [(2, FIRING), (4, RESOLVED), (7, FIRING)]),  # a drop after a spike: counted once the spike resolved
        ("SSS..SSS", 3, 1, [(2, FIRING), (4, RESOLVED), (7, FIRING)]),
    ],
)
def test_alert_fires_after_for_and_resolves_after_keep_firing_for_exactly(directions, for_buckets, keep, expected) -> None:
    seq = [{"S": SPIKE, "D": DROP, ".": None}[c] for c in directions]
    assert run_track(seq, for_buckets, keep) == expected


@given(
    st.lists(st.sampled_from([None, SPIKE, DROP]), max_size=60),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=5),
)
@hsettings(max_examples=300, deadline=None)
def test_state_machine_obeys_for_and_keep_firing_for_on_any_sequence(seq, for_buckets, keep) -> None:
    """Fires only where the last ``for`` buckets deviated the same way; resolves only where the
    last ``keep + 1`` did not deviate that way; alternates fire, resolve; and every run of ``for``
    equal deviations outside an alert fires."""
    events = run_track(seq, for_buckets, keep)
    firing_dir = None
    for i, kind in events:
        if kind == FIRING:
            assert firing_dir is None
            firing_dir = seq[i]
            assert i + 1 >= for_buckets and len(set(seq[i + 1 - for_buckets: i + 1])) == 1
        else:
            assert firing_dir is not None and i >= keep
            assert all(d != firing_dir for d in seq[i - keep: i + 1])
            firing_dir = None
    # completeness: replay and check that no run of `for` equal deviations was ignored while inactive
    fired = {i for i, kind in events if kind == FIRING}
    resolved = {i for i, kind in events if kind == RESOLVED}
    active, run_dir, run_len = False, None, 0
    for i, d in enumerate(seq):
        if active:
            if i in resolved:
                active = False
            run_dir, run_len = None, 0
            continue
        run_len = run_len + 1 if d is not None and d == run_dir else (1 if d is not None else 0)
        run_dir = d
        if run_len >= for_buckets:
            assert i in fired, f"a run of {for_buckets} {d} ending at {i} did not fire"
            active, run_dir, run_len = True, None, 0
        else:
            assert i not in fired


def test_detector_fires_and_resolves_at_the_promised_buckets() -> None:
    """Steady 100 per bucket, then nothing for 12 buckets: with for 3 and keep 6 the drop fires at
    the third empty bucket and resolves at the seventh normal one; ``since`` is the first empty."""
    d = Detector(QUICK, 10)
    assert steady(d, B0, 50, {"INF-a": 100}) == []
    drop_at = B0 + 50
    changes = steady(d, drop_at, 12, {})
    assert sorted((a.state, a.type, a.id or "", a.direction) for a in changes) == [(FIRING, "signup", "", DROP), (FIRING, "signup", "INF-a", DROP)]
    assert {a.fired_at for a in changes} == {drop_at + 2} and {a.since for a in changes} == {drop_at}
    # neither the two pending zeros nor the firing ones were learned: the baseline is still 100
    assert [a.observed for a in changes] == [0, 0] and changes[0].expected == pytest.approx(100)
    back = drop_at + 12
    changes = steady(d, back, 10, {"INF-a": 100})
    assert {(a.state, a.resolved_at) for a in changes} == {(RESOLVED, back + 6)}
    assert d.alerts() == []


def test_a_pending_deviation_is_learned_only_when_it_clears_without_firing() -> None:
    """Two buckets of x5 (for is 3) are held out while pending, so the third still passes k; a
    deviation that clears after two buckets is learned after all, in order."""
    d = Detector(QUICK, 10)
    steady(d, B0, 50, {"INF-a": 100})
    series = d.series[("signup", "INF-a")]
    steady(d, B0 + 50, 2, {"INF-a": 500})
    assert series.level == pytest.approx(100) and series.held == [500, 500]
    steady(d, B0 + 52, 1, {"INF-a": 100})  # cleared: the two spikes and this bucket are learned
    assert series.held is None and series.n == 53 and series.level == pytest.approx((100 * 50 + 500 * 2 + 100) / 53)


def test_a_deviation_that_comes_and_goes_keeps_one_alert() -> None:
    """Hysteresis in the detector: a spike that stops for a bucket or two at a time does not flap."""
    d = Detector(QUICK, 10)
    steady(d, B0, 50, {"INF-a": 100})
    pattern = [500, 500, 500, 100, 500, 100, 100, 500, 500, 100, 500] * 3
    changes = []
    for i, c in enumerate(pattern):
        changes += d.close_bucket(B0 + 50 + i, {"signup": {"INF-a": c}})
    states = [a.state for a in changes if a.id == "INF-a"]
    assert states == [FIRING]
    assert [a.state for a in d.alerts() if a.id] == [FIRING]


def test_pending_is_shown_and_cleared_without_an_announcement() -> None:
    d = Detector(QUICK, 10)
    steady(d, B0, 50, {"INF-a": 100})
    assert d.close_bucket(B0 + 50, {"signup": {"INF-a": 0}}) == []
    assert {(a.id, a.state) for a in d.alerts()} == {("INF-a", PENDING), (None, PENDING)}
    assert d.close_bucket(B0 + 51, {"signup": {"INF-a": 100}}) == []
    assert d.alerts() == []


# --------------------------------------------------------------------------------------------------
# Floors, lazy series, unknown buckets, seasons.


def test_quiet_series_never_alert_below_the_floor() -> None:
    """A site at 2 per bucket going to zero, or up to 9 (x4.5, under min_count 10), is not flagged;
    up to 30 is."""
    d = Detector(QUICK, 10)
    steady(d, B0, 60, {"INF-q": 2, "INF-big": 200})
    assert steady(d, B0 + 60, 20, {"INF-big": 200}) == []
    assert steady(d, B0 + 80, 40, {"INF-q": 2, "INF-big": 200}) == []
    assert steady(d, B0 + 120, 20, {"INF-q": 9, "INF-big": 200}) == []
    fired = steady(d, B0 + 140, 5, {"INF-q": 30, "INF-big": 200})
    assert [(a.id, a.direction) for a in fired] == [("INF-q", SPIKE)]


def test_a_series_left_out_of_the_counts_learns_the_same_zeros_as_one_given_zeros() -> None:
    """The lazy path (an id absent from a bucket's counts) equals the dense one (an explicit 0)."""
    short_season = dataclasses.replace(QUICK, season_seconds=2400)  # 10-bucket slots: many roll over
    lazy, dense = Detector(short_season, 10), Detector(short_season, 10)
    for i in range(401):
        c = 3 if i % 37 == 0 or i < 20 or i == 400 else 0
        lazy.close_bucket(B0 + i, {"signup": ({"INF-s": c} if c else {}) | {"INF-big": 50}})
        dense.close_bucket(B0 + i, {"signup": {"INF-s": c, "INF-big": 50}})
    a, b = lazy.series[("signup", "INF-s")], dense.series[("signup", "INF-s")]
    assert a.level == pytest.approx(b.level, rel=1e-9) and a.n == b.n
    assert a.profile is not None and list(a.profile) == pytest.approx(list(b.profile or []), rel=1e-5)


def test_unknown_buckets_are_not_taken_for_a_drop() -> None:
    """Buckets the store reported incomplete, or that the reader jumped over, are not zeros."""
    d = Detector(QUICK, 10)
    steady(d, B0, 50, {"INF-a": 100})
    for b in range(B0 + 50, B0 + 60):
        d.skip_bucket(b)
    assert steady(d, B0 + 60, 5, {"INF-a": 100}) == []
    assert d.close_bucket(B0 + 100, {"signup": {"INF-a": 100}}) == []  # a jump of 35 buckets
    assert d.alerts() == []
    with pytest.raises(ValueError, match="not after"):
        d.close_bucket(B0 + 100, {})


def test_a_new_series_is_not_judged_before_its_warm_up() -> None:
    d = Detector(AnomalySettings(warmup_seconds=100), 10)  # 10 buckets
    steady(d, B0, 5, {"INF-a": 100})
    assert steady(d, B0 + 5, 4, {}) == []  # 9 buckets: still warming up, a drop is not judged
    assert d.alerts() == []
    d.close_bucket(B0 + 9, {})  # the tenth bucket completes the warm-up
    assert d.alerts() == []
    d.close_bucket(B0 + 10, {})  # and the next one is judged
    assert {(a.id, a.state) for a in d.alerts()} == {("INF-a", PENDING), (None, PENDING)}


def test_the_same_hour_on_previous_days_is_expected() -> None:
    """Traffic that falls from 100 to 20 at noon every day is flagged on the first day, when no
    season is known, and not from the third day on, when the hour of the day is."""
    s = AnomalySettings(warmup_seconds=0)
    d = Detector(s, 300)  # 288 buckets a day
    day0 = 1_700_006_400 // 300 // 288 * 288  # a bucket at midnight UTC
    fired_by_day: dict[int, int] = {}
    for day in range(4):
        for i in range(288):
            count = 100 if i < 144 else 20
            for alert in d.close_bucket(day0 + day * 288 + i, {"signup": {"INF-a": count}}):
                if alert.state == FIRING and alert.id:
                    fired_by_day[day] = fired_by_day.get(day, 0) + 1
    assert fired_by_day.get(0) == 1
    assert 2 not in fired_by_day and 3 not in fired_by_day


def test_a_lasting_change_is_relearned_and_resolves() -> None:
    s = dataclasses.replace(QUICK, relearn_after_seconds=600)
    d = Detector(s, 10)
    steady(d, B0, 50, {"INF-a": 100})
    changes = steady(d, B0 + 50, 80, {"INF-a": 500})
    assert [(a.state, a.reason) for a in changes if a.id] == [(FIRING, ""), (RESOLVED, "relearned")]
    assert steady(d, B0 + 130, 20, {"INF-a": 500}) == []
    assert d.series[("signup", "INF-a")].level == pytest.approx(500, rel=0.05)


def test_series_beyond_max_series_are_counted_as_untracked() -> None:
    d = Detector(dataclasses.replace(QUICK, max_series=5), 10)
    d.close_bucket(B0, {"signup": {f"INF-{i}": 1 for i in range(10)}})
    assert d.untracked == 5 and len(d.series) == 6
    assert ("signup", None) in d.series  # the type's own series is always kept


def test_quiet_ids_are_forgotten() -> None:
    d = Detector(QUICK, 10)
    d.close_bucket(B0, {"signup": {"INF-once": 1, "INF-big": 100}})
    steady(d, B0 + 1, 200, {"INF-big": 100})
    assert ("signup", "INF-once") not in d.series and ("signup", "INF-big") in d.series


def test_alert_json_has_the_fields_the_dashboard_api_and_webhook_show() -> None:
    d = Detector(QUICK, 10)
    steady(d, B0, 50, {"INF-a": 100})
    alert = next(a for a in steady(d, B0 + 50, 3, {}) if a.id)
    doc = alert.to_json()
    assert doc["type"] == "signup" and doc["id"] == "INF-a" and doc["direction"] == DROP and doc["state"] == FIRING
    assert doc["sinceMs"] == (B0 + 50) * 10_000 and doc["since"].endswith("Z")
    assert doc["observed"] == 0 and doc["expected"] == pytest.approx(100)
    assert INACTIVE not in {a.state for a in d.alerts()}


# --------------------------------------------------------------------------------------------------
# Settings.


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"k": 1}, "anomaly.k: must be more than 1 and at most 1,000, got 1"),
        ({"k": "3"}, "anomaly.k: expected a number"),
        ({"for_buckets": 0}, "anomaly.for_buckets: must be from 1 to 10,000 buckets, got 0"),
        ({"for_buckets": 2.5}, "anomaly.for_buckets: expected a whole number, got 2.5"),
        ({"keep_firing_for_buckets": -1}, "anomaly.keep_firing_for_buckets: must be from 0"),
        ({"min_count": float("nan")}, "anomaly.min_count: expected a finite number"),
        ({"id_floor": 0}, "anomaly.id_floor: must be more than 0"),
        ({"enabled": 1}, "anomaly.enabled: expected true or false, got 1"),
        ({"season_seconds": 1000}, "anomaly.season_seconds: 1000 s is not a whole number of 24 slots"),
        ({"for_bucket": 3}, "anomaly: unknown key 'for_bucket'; did you mean 'for_buckets'?"),
        ({"webhook_url": "ftp://x/"}, "anomaly.webhook_url: \"ftp://x/\" must be an http:// or https:// URL"),
        ({"webhook_url": "http://h:99999/"}, "anomaly.webhook_url: \"http://h:99999/\" is not a usable URL"),
        ({"webhook_url": "http://h/\r\nX: y"}, "anomaly.webhook_url: "),
        ({"webhook_retries": 10**30}, "anomaly.webhook_retries: must be from 0 to 100 retries"),
        ({"baseline_seconds": 60}, "anomaly.baseline_seconds: 60 s is under two buckets of 60 s"),
        ({"season_seconds": 1200}, "anomaly.season_seconds: 1200 s gives 50 s slots, shorter than bucket_seconds (60 s)"),
    ],
)
def test_bad_anomaly_settings_are_refused_naming_the_field(raw, message) -> None:
    with pytest.raises(SettingsError) as info:
        build_anomaly_settings(raw, bucket_seconds=60)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_defaults_pass_their_own_checks() -> None:
    assert check_anomaly_settings(AnomalySettings(), 10) == AnomalySettings()
    assert build_anomaly_settings({"k": 4, "webhook_url": "http://127.0.0.1:9/h"}).k == 4.0


# --------------------------------------------------------------------------------------------------
# The scenario test at CI scale: the goals over seeded runs of scenario-shaped traffic.


def goals_met(runs: list, least: int) -> None:
    """The issue's goals over seeded runs: >= 95 % of all injected spikes and drops flagged within 2
    buckets of what ``for`` allows, and in every run at most 1 false alert (an id's alert matching
    no injection, or any alert of the whole type) per hour per 1,000 series; no flapping."""
    injected = sum(len(r.injected) for r in runs)
    in_time = sum(r.detected_in_time for r in runs)
    assert injected >= least
    assert in_time / injected >= 0.95, [(r.sim.seed, r.late_or_missed) for r in runs if r.late_or_missed]
    for r in runs:
        assert r.false_per_hour_per_1000 <= 1.0, (r.sim.seed, r.false_keys)
        assert r.flaps == 0 and r.type_alerts == 0, r.sim.seed


def test_scenarios_meet_the_goals_before_the_season_is_known() -> None:
    """The default 10 s buckets, the first 4 hours (no day of history yet, the recent baseline
    alone): 300 Zipf ids under a daily wave, 40 spikes (x5) and drops (to 0) per seed on random
    ids, three seeds. Traffic from tui.scenarios (tests/anomaly_sim.py); bench/anomaly.py runs
    1,000 series over 50 hours."""
    goals_met([run(Sim(series=300, hours=4, injections=40, seed=seed), AnomalySettings(), Detector) for seed in (1, 2, 3)], 120)


def test_scenarios_meet_the_goals_once_the_hour_of_the_day_is_known() -> None:
    """28 hours of 100 ids at 10 s buckets: from hour 25 on, buckets are judged against the same
    hour of the day before as well, and a real day's wave does not alert; 60 injections over two
    seeds, some of them in those last hours."""
    runs = [run(Sim(series=100, hours=28, injections=30, seed=seed), AnomalySettings(), Detector) for seed in (1, 2)]
    goals_met(runs, 60)
    assert any(i.first * 10 > 25 * 3600 for r in runs for i in r.injected)  # some judged with the season


def test_the_simulated_traffic_is_the_scenarios_traffic() -> None:
    """The simulation's ids take their share of the traffic from the generator's Zipf draw, which the
    ``zipf`` scenario sets (the wave and the windows are ScenarioPlan.multiplier itself)."""
    sim = Sim(series=50, hours=1, injections=0, zipf=1.1)
    rates = zipf_rates(sim)
    assert rates[0] == pytest.approx(sim.top) and rates[9] / rates[0] == pytest.approx(1 / 10**1.1)
