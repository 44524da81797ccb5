"""``--scenario`` and ``--backfill`` in a run: the flags (refused in one line naming them), the
generator under a seeded drop and spike, the backfilled past against its events log, and the demo
of issue 14 end to end: a real headless process whose drop is flagged and then resolved."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.oracle import read_log, recount, rows
from tests.proc import Eventdash
from tests.test_hostile_input import PROPERTY, outcome
from tui.clock import FakeClock
from tui.events import Event
from tui.pipeline import Pipeline
from tui.pipeline.generator import Generator
from tui.scenarios import parse_scenarios
from tui.settings import Settings
from tui.store import Store

SITE = "INF-yj562hjojbtez"  # the first of the default tracking ids


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and config directory: no settings file leaks in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


# -- the flags ------------------------------------------------------------------------------------


@PROPERTY
@given(flag=st.sampled_from(["--scenario", "--backfill"]), text=st.text(max_size=60) | st.from_regex(r"(spike|drop|diurnal|zipf|\d+[smh]?)(:[^:]{0,12}){0,5}", fullmatch=True))
def test_any_scenario_or_backfill_text_is_taken_or_refused_in_one_line_naming_the_flag(home: Path, flag: str, text: str) -> None:
    plan, code, stderr = outcome(["--headless", "--backend", "memory", f"{flag}={text}"])
    assert code in (0, 2)
    if code == 2:
        assert flag in stderr, stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--scenario", "drop:signup:INF-nope:10s"], "--scenario: the generator never makes the id 'INF-nope' of drop:signup; its ids are the settings' tracking_ids: INF-yj562hjojbtez,"),
        (["--tracking-ids", "500", "--scenario", "spike:*:INF-nope:x2:10s"], "--tracking-ids 500 makes 500 ids, the first INF-"),
        (["--scenario", "spike:signup:*:x5:60s@30x"], "--scenario 'spike:signup:*:x5:60s@30x': the offset '30x' must be a number with s, m or h"),
        (["--backfill", "1d"], "--backfill: '1d' must be 0 or a number with s, m or h"),
        (["--backfill", "2h"], "--backfill: 7200 s is longer than the single buckets are kept (retention_hours.x1 = 1 h)"),
        (["--no-generate", "--scenario", "diurnal"], "--scenario: shapes the generated traffic, and nothing is generated here"),
        (["--no-generate", "--backfill", "1m"], "--backfill: shapes the generated traffic"),
    ],
)
def test_bad_scenarios_and_backfills_exit_2_naming_the_flag(home: Path, argv: list[str], expected: str) -> None:
    plan, code, stderr = outcome(["--headless", "--backend", "memory", *argv])
    assert code == 2 and expected in stderr, stderr


def test_scenarios_and_backfill_reach_the_run_and_zipf_is_the_setting(home: Path) -> None:
    plan, code, _ = outcome(["--headless", "--backend", "memory", "--zipf", "2", "--scenario", "zipf:1.3", "--scenario", f"drop:signup:{SITE}:2m@30s", "--backfill", "30m"])
    assert code == 0 and plan is not None
    assert plan.settings.zipf == 1.3  # the scenario wins over --zipf: one Zipf draw, the factory's
    assert plan.options.scenarios == tuple(parse_scenarios([f"drop:signup:{SITE}:2m@30s"]))
    assert plan.options.backfill == 1800
    default, _, _ = outcome(["--headless", "--backend", "memory"])
    assert default is not None and default.options.backfill is None and default.options.scenarios == ()


# -- the generator under scenarios ----------------------------------------------------------------


def generated(specs: list[str], seconds: int = 40, rate: float = 1000, seed: int = 7) -> tuple[list[Event], int]:
    """Events a seeded generator makes over ``seconds`` of a fake clock, and the live start (ms)."""
    clock = FakeClock()
    generator = Generator(Settings(events_per_second=rate), clock, seed, scenarios=parse_scenarios(specs))
    generator.start(clock.monotonic())
    start_ms = int(clock.time() * 1000)
    events: list[Event] = []
    for _ in range(seconds * 20):
        clock.advance(0.05)
        made, _ = generator.make(clock.monotonic())
        events.extend(made)
    return events, start_ms


def per_second(events: list[Event], start_ms: int, etype: str, tid: str | None = None) -> Counter[int]:
    return Counter((e.ts_ms - start_ms) // 1000 for e in events if e.type == etype and (tid is None or e.tracking_id == tid))


def test_a_seeded_drop_empties_its_traffic_inside_the_window_only() -> None:
    events, start = generated([f"drop:signup:{SITE}:10s@10s"])
    site = per_second(events, start, "signup", SITE)
    assert all(site[s] == 0 for s in range(10, 20))
    assert all(site[s] > 5 for s in [*range(10), *range(20, 40)])  # about 20 a second outside it
    others = per_second(events, start, "signup", "INF-3gbfcjjdsd6vhvo")
    assert sum(others[s] for s in range(10, 20)) > 150  # other ids, and other types of this id, untouched
    assert sum(per_second(events, start, "review", SITE)[s] for s in range(10, 20)) > 150


def test_a_x5_spike_multiplies_its_traffic_and_the_rest_is_unchanged() -> None:
    """A whole factor repeats each event exactly (tolerance 0): inside the window the spiked
    traffic is five times the same seed's traffic without the scenario; everything else is equal."""
    base, start = generated([])
    spiked, _ = generated([f"spike:review:{SITE}:x5:10s@10s"])
    inside = [s for s in range(10, 20)]
    before = per_second(base, start, "review", SITE)
    after = per_second(spiked, start, "review", SITE)
    assert all(after[s] == 5 * before[s] for s in inside) and sum(before[s] for s in inside) > 150
    assert all(after[s] == before[s] for s in range(40) if s not in inside)
    assert per_second(spiked, start, "signup") == per_second(base, start, "signup")


def test_a_scenario_run_is_reproducible_by_seed() -> None:
    specs = [f"spike:*:{SITE}:x2.5:5s@5s", "drop:signup:*:5s@15s", "diurnal:20s"]
    one, _ = generated(specs, seconds=25)
    two, _ = generated(specs, seconds=25)
    other, _ = generated(specs, seconds=25, seed=8)
    key = [(e.type, e.tracking_id, e.ts_ms, e.visitor_id) for e in one]
    assert key == [(e.type, e.tracking_id, e.ts_ms, e.visitor_id) for e in two]
    assert key != [(e.type, e.tracking_id, e.ts_ms, e.visitor_id) for e in other]


# -- the backfill ---------------------------------------------------------------------------------


def test_a_backfill_is_counted_into_the_past_exactly_as_its_events_log(store: Store, clock: FakeClock) -> None:
    """Ten minutes before the live start, the drop (which counts from the live start) not in it:
    the store's single buckets over that span recount the events log exactly."""
    settings = Settings(events_per_second=100, backend="memory")
    log = io.StringIO()
    pipeline = Pipeline(settings, store, clock=clock, seed=3, events_log=log, scenarios=parse_scenarios(["drop:signup:*:60s"]))
    assert not pipeline.holds_data(600)
    now_ms = int(clock.time() * 1000)
    made = pipeline.backfill(600)
    assert made == 60_000  # the rate over the span: the drop is in the future, the past is steady
    docs = [json.loads(line) for line in log.getvalue().splitlines()]
    logged = rows(docs)
    assert len(logged) == made and now_ms - 600_000 <= min(r[0] for r in logged) < now_ms - 599_000
    assert now_ms - 1000 < max(r[0] for r in logged) < now_ms
    buckets = range((now_ms - 600_000) // 10_000, now_ms // 10_000 + 1)
    counts, unknown = pipeline.reader.read_closed_buckets(buckets)
    assert not unknown
    assert len([b for b in buckets if counts.get(b)]) == 60  # every bucket of the past holds counts
    stored: dict[str, Counter[str]] = {t: Counter() for t in ("signup", "user-event", "review")}
    for by_type in counts.values():
        for etype, by_id in by_type.items():
            stored[etype].update(by_id)
    assert {t: {"totalEventsCaptured": sum(c.values()), "eventsCapturedByTrackingIds": dict(sorted(c.items()))} for t, c in stored.items()} == recount(logged)
    assert pipeline.holds_data(600)


# -- the demo, end to end -------------------------------------------------------------------------

FOR_BUCKETS = 3


def test_the_demo_drop_is_flagged_within_for_buckets_and_resolved_after_it(tmp_path: Path) -> None:
    """``--scenario drop:signup:SITE:8s@3s`` on 1 s buckets with a scaled baseline: the backfill
    primes it, so the drop fires within for_buckets + 2 buckets of its start and resolves after its
    end. Where the drop began and ended is read from the events log, not from the code's clock."""
    settings = tmp_path / "demo.json"
    settings.write_text(json.dumps({
        "bucket_seconds": 1, "window_minutes": 1, "events_per_second": 1000,
        "anomaly": {"warmup_seconds": 20, "baseline_seconds": 60, "for_buckets": FOR_BUCKETS, "keep_firing_for_buckets": 3, "min_count": 5},
    }))
    log = tmp_path / "events.ndjson"
    run = Eventdash(
        "--headless", "--backend", "memory", "--settings", str(settings), "--seed", "1",
        "--scenario", f"drop:signup:{SITE}:8s@3s", "--events-log", str(log),
    )
    try:
        run.wait_for(r"backfilled 1 min of traffic before going live: 60,000 events .*--backfill 0 skips it")
        run.wait_for(rf"alert firing: drop of signup {SITE} since \d\d:\d\d:\d\dZ \(0 vs [\d.]+ expected\)", timeout=40)
        run.wait_for(rf"alert resolved: drop of signup {SITE}", timeout=40)
    finally:
        assert run.stop() == 0
    lines = run.json_lines()
    stamps = sorted(ts for ts, etype, tid in rows(read_log(log)) if etype == "signup" and tid == SITE)
    gap, at = max((b - a, a) for a, b in zip(stamps, stamps[1:]))
    assert 7_500 < gap < 8_500  # the drop, the only long silence of a site with ~20 signups a second
    drop_start, drop_end = at, at + gap
    def ours(alert: dict) -> bool:
        return (alert["type"], alert["id"], alert["direction"]) == ("signup", SITE, "drop")

    firing = [i for i, line in enumerate(lines) if any(ours(a) and a["state"] == "firing" for a in line["alerts"])]
    fired = next(a for a in lines[firing[0]]["alerts"] if ours(a))
    assert fired["firedAtMs"] // 1000 - drop_start // 1000 <= FOR_BUCKETS + 2
    assert fired["sinceMs"] // 1000 >= drop_start // 1000 and fired["observed"] == 0
    assert firing == list(range(firing[0], firing[-1] + 1))  # firing on every line until it resolved: no flapping
    gone = lines[firing[-1] + 1]  # the first line after it resolved (the run went on until the stderr said so)
    assert not any(ours(a) for a in gone["alerts"]) and gone["anomaly"]["judgedThroughMs"] > drop_end
    assert all(line["anomaly"]["priming"] is False for line in lines[1:])  # the backfill primed it at once
    assert lines[-1]["final"] is True


def test_a_backfill_without_an_events_log_counts_events_and_their_visitors(clock: FakeClock) -> None:
    """Without a log the past is made without documents; the store still counts every event, and
    the visitors are real ones (sessions: fewer than the events), under a wave that shapes the past."""
    from tui.store.memory import MemoryStore

    pipeline = Pipeline(Settings(events_per_second=100), MemoryStore(clock), clock=clock, seed=4, scenarios=parse_scenarios(["diurnal:1m"]))
    made = pipeline.backfill(300)
    assert abs(made - 30_000) < 300  # the wave (five whole periods) keeps the mean
    view = pipeline.reader.refresh()
    assert view.total == made
    assert view.visitors is not None and view.visitors.total is not None and 0 < view.visitors.total.value < made / 2
