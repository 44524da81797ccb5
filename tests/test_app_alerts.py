"""Anomalies in the dashboard: a series whose traffic leaves its baseline is coloured and badged in
the tables, listed in the alerts panel, and its transitions are one key away.

The alerts are real: the seeded generator over the embedded store on a frozen clock, plus extra
sign-ups of two ids that the test starts and stops, judged by the pipeline's own AnomalyWatch (the
one the dashboard polls). Nothing of the widgets is mocked; as in test_app.py, there is no refresh
timer and every snapshot is deterministic.
"""

from __future__ import annotations

import math

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Markdown

from tui.anomaly import DROP, FIRING, RESOLVED, SPIKE, Alert
from tui.anomaly.watch import AnomalyStatus, AnomalyWatch
from tui.app import EventDashApp
from tui.clock import FakeClock
from tui.components.alerts_panel import MAX_ROWS, AlertsPanel, ago
from tui.events import Event
from tui.pipeline import Pipeline
from tui.screens.alerts import AlertHistoryScreen
from tui.settings import Settings
from tui.store import MemoryStore

from tests.test_app import IDS, START, cell, screen_lines, shown

#: Its sign-ups stop being boosted: a drop. Its sign-ups are boosted from then on: a spike.
DROPPING, SPIKING = IDS[0], IDS[1]
#: Extra sign-ups per second: 60 (then 0) per 10 s bucket on top of ~11, and 120 on top of ~11.
BOOST, FLOOD = 6, 12
#: Seconds of steady traffic before the change: more than the default warm-up of 600 s.
STEADY_SECONDS = 700


def drive(pipeline: Pipeline, seconds: int, extra: dict[str, int]) -> None:
    """``seconds`` of generated traffic, plus ``extra`` sign-ups per second of the given ids,
    flushed and judged each second as the dashboard's refresh would."""
    clock: FakeClock = pipeline.clock  # type: ignore[assignment]
    watch = pipeline.anomalies
    assert watch is not None
    for _ in range(seconds):
        clock.advance(1.0)
        now_ms = int(clock.time() * 1000)
        pipeline.writer.ingest([Event("signup", tid, now_ms - 1 - n, {}) for tid, count in extra.items() for n in range(count)])
        pipeline.step()
        pipeline.writer.flush()
        watch.poll()


def alerting_pipeline(changed_seconds: int = 45) -> Pipeline:
    """Steady traffic with one id boosted, then ``changed_seconds`` with that boost gone (a drop)
    and another id flooded (a spike): 45 s is long enough for both to fire (three buckets of 10 s
    and the watch's 2 s to settle), and the sign-up type as a whole stays within its baseline."""
    clock = FakeClock(START)
    settings = Settings(events_per_second=40, tracking_ids=IDS, backend="memory")
    pipeline = Pipeline(settings, MemoryStore(clock), clock=clock, seed=42, writer_id="writer-a", writer_name="demo-host-4242")
    drive(pipeline, STEADY_SECONDS, {DROPPING: BOOST})
    drive(pipeline, changed_seconds, {SPIKING: FLOOD})
    return pipeline


def alerting_app(changed_seconds: int = 45) -> EventDashApp:
    pipeline = alerting_pipeline(changed_seconds)
    return EventDashApp(pipeline, clock=pipeline.clock, live=False, by_id_fast_seconds=math.inf)


def firing(app: EventDashApp) -> list[tuple[str, str | None, str]]:
    status = app.pipeline.anomalies.status() if app.pipeline.anomalies else None
    assert status is not None
    return [(a.type, a.id, a.direction) for a in status.alerts if a.state == FIRING]


async def test_a_drop_badges_its_row_lists_it_in_the_panel_and_A_shows_its_transitions() -> None:
    app = alerting_app()
    assert sorted(firing(app)) == sorted([("signup", DROPPING, DROP), ("signup", SPIKING, SPIKE)])
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        # the tracking-id table (signup): the two ids badged, the others not
        assert cell(app, "tids", DROPPING, "tid") == f"{DROPPING} ▼ drop"
        assert cell(app, "tids", SPIKING, "tid") == f"{SPIKING} ▲ spike"
        assert cell(app, "tids", IDS[2], "tid") == IDS[2]
        tids = app.query_one("#tids", DataTable)
        assert "red" in str(tids.get_cell(DROPPING, "events").style)  # the count too, in the drop's colour
        assert cell(app, "types", "signup", "type") == "signup"  # the type itself is within its baseline
        # the panel shows itself (an alert fires) and lists both, firing, with since and expected
        panel = app.query_one(AlertsPanel)
        assert panel.display and panel.shown
        table = app.query_one("#alerts-table", DataTable)
        rows = {str(table.get_cell(k, "id")): [str(c) for c in table.get_row(k)] for k in table.rows}
        assert set(rows) == {DROPPING, SPIKING}
        dropped = rows[DROPPING]
        assert dropped[:3] == ["▼ drop", "firing", "signup"]
        assert " ago" in dropped[4] and float(dropped[6]) > 3 * float(dropped[5])  # expected over k × observed
        assert "Alerts · 2 firing" in "\n".join(screen_lines(app))
        # enter on the drop's row: its history, the fired transition only
        table.focus()
        table.move_cursor(row=table.get_row_index(next(k for k in table.rows if DROPPING in str(k.value))))
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, AlertHistoryScreen) and screen.series == ("signup", DROPPING)
        history = screen.query_one("#alerts-history", DataTable)
        assert [[str(c) for c in history.get_row_at(i)][1:4] for i in range(history.row_count)] == [["▼ drop fired", "signup", DROPPING]]
        await pilot.press("a", "plus")  # the dashboard's keys do not reach through the screen
        assert panel.shown and app.pipeline.settings.events_per_second == 40
        await pilot.press("escape")
        assert not isinstance(app.screen, AlertHistoryScreen)


async def test_the_drop_resolves_and_its_history_then_has_both_transitions() -> None:
    app = alerting_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        keep = app.pipeline.settings.anomaly.keep_firing_for_buckets
        drive(app.pipeline, (keep + 2) * app.pipeline.settings.bucket_seconds, {DROPPING: BOOST, SPIKING: FLOOD})
        await shown(pilot)
        assert ("signup", DROPPING, DROP) not in firing(app)
        assert cell(app, "tids", DROPPING, "tid") == DROPPING  # the badge is gone, in place
        # A with no panel row selected: every series' transitions, the drop's resolution last
        app.query_one("#tids").focus()
        await pilot.press("A")
        screen = app.screen
        assert isinstance(screen, AlertHistoryScreen) and screen.series is None
        history = screen.query_one("#alerts-history", DataTable)
        events = [(str(history.get_row_at(i)[3]), str(history.get_row_at(i)[1])) for i in range(history.row_count)]
        assert events.index((DROPPING, "▼ drop fired")) < events.index((DROPPING, "▼ drop resolved"))
        assert history.cursor_row == history.row_count - 1  # on the newest
        states = [a.state for a in app.pipeline.anomalies.status().history if a.id == DROPPING]  # type: ignore[union-attr]
        assert states == [FIRING, RESOLVED]


async def test_at_80x24_badges_are_arrows_nothing_is_cut_and_the_sparklines_give_way() -> None:
    app = alerting_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        await pilot.pause()
        assert cell(app, "tids", DROPPING, "tid") == f"{DROPPING} ▼"
        assert cell(app, "tids", SPIKING, "tid") == f"{SPIKING} ▲"
        for name in ("types", "tids", "alerts-table"):
            table = app.query_one(f"#{name}", DataTable)
            assert table.virtual_size.width <= table.size.width + 1, f"{name} is cut"
        lines = screen_lines(app)
        assert not app.query_one("#sparks").display and lines[-1].rstrip().endswith("quit")
        assert any("▼ drop" in line and DROPPING in line for line in lines)  # the panel spells it out
        await pilot.press("a")
        await pilot.pause()
        assert app.query_one("#sparks").display and not app.query_one(AlertsPanel).display


async def test_a_paused_generator_flags_every_type_in_the_type_table() -> None:
    """The whole type's series (id None) badges the type's row."""
    app = alerting_app(0)
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        assert not app.query_one(AlertsPanel).display  # nothing fires: no panel
        await pilot.press("space")
        drive(app.pipeline, 45, {})
        await shown(pilot)
        for etype in ("signup", "user-event", "review"):
            assert cell(app, "types", etype, "type") == f"{etype} ▼ drop"
        assert cell(app, "types", "all", "type") == "all types"
        table = app.query_one("#alerts-table", DataTable)
        assert "all ids" in {str(table.get_cell(k, "id")) for k in table.rows}


async def test_a_hides_the_panel_until_another_series_fires_and_shows_the_quiet_line() -> None:
    app = alerting_app(0)
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        panel = app.query_one(AlertsPanel)
        await pilot.press("a")  # shown on demand: the quiet line
        assert panel.display
        assert "no alerts · " in str(app.query_one("#alerts-quiet").render()) and "series watched" in str(app.query_one("#alerts-quiet").render())
        await pilot.press("a")
        assert not panel.display
        drive(app.pipeline, 45, {SPIKING: FLOOD})
        await shown(pilot)
        assert panel.display  # news: a series fired
        await pilot.press("a")
        assert not panel.display  # hidden: the same alert does not bring it back
        drive(app.pipeline, 5, {SPIKING: FLOOD})
        await shown(pilot)
        assert not panel.display


async def test_while_priming_the_panel_says_it_is_learning() -> None:
    clock = FakeClock(START)
    pipeline = Pipeline(Settings(tracking_ids=IDS, backend="memory"), MemoryStore(clock), clock=clock, seed=1)
    # one slice of the kept hour a poll (out of time budget, as at 100,000 ids): still priming after the first
    pipeline.anomalies = AnomalyWatch(
        pipeline.settings.anomaly, pipeline.settings.bucket_seconds, pipeline.reader.read_closed_buckets, clock, 3600, budget_seconds=0
    )
    app = EventDashApp(pipeline, clock=clock, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("a")
        await shown(pilot)
        assert "learning baselines…" in str(app.query_one("#alerts-quiet").render())


def test_ago_reads_in_two_units() -> None:
    assert [ago(s) for s in (5, 200, 7500, 90_000)] == ["5s", "3m 20s", "2h 05m", "1d 1h"]


# -- snapshots -------------------------------------------------------------------------------------


async def _ready(pilot) -> None:  # type: ignore[no-untyped-def]
    """Five more seconds of the flood, refreshed each, so rates and trends have readings."""
    app: EventDashApp = pilot.app
    app.refresh_now()
    for _ in range(5):
        drive(app.pipeline, 1, {SPIKING: FLOOD})
        app.refresh_now()
    await pilot.pause()


def test_snapshot_flagged_rows_and_the_alerts_panel(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(alerting_app(), terminal_size=(120, 40), run_before=_ready)


def test_snapshot_flagged_rows_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(alerting_app(), terminal_size=(80, 24), run_before=_ready)


def test_snapshot_alert_history(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(alerting_app(), press=["A"], terminal_size=(120, 30), run_before=_ready)


async def test_the_keys_are_in_the_palette_and_the_help_with_the_thresholds() -> None:
    clock = FakeClock(START)
    pipeline = Pipeline(Settings(tracking_ids=IDS, backend="memory"), MemoryStore(clock), clock=clock, seed=1)
    app = EventDashApp(pipeline, clock=clock, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Alerts panel", "Alert history"} <= titles
        assert {b.id for b in app.BINDINGS if isinstance(b, Binding)} >= {"alerts", "alert-history"}
        await pilot.press("question_mark")
        source = app.screen.query_one(Markdown).source
    assert "| `a` |" in source and "| `A`, or `enter` on a panel row |" in source
    assert "below 1/3 of it" in source and "held 3 buckets" in source and "`▼ drop`" in source


async def test_the_panel_lists_at_most_max_rows_and_counts_them_all() -> None:
    """A drop of every id at once (the generator stopped at 100,000 ids) lists the first alerts only."""
    alerts = tuple(
        Alert("signup", f"INF-{n:05d}", DROP, FIRING, since=100, fired_at=103, resolved_at=None, observed=0, expected=20, bucket_seconds=10)
        for n in range(MAX_ROWS + 50)
    )

    class PanelApp(App[None]):
        def compose(self) -> ComposeResult:
            yield AlertsPanel()

    app = PanelApp()
    async with app.run_test(size=(120, 30)) as pilot:
        panel = app.query_one(AlertsPanel)
        panel.show(AnomalyStatus(alerts=alerts, priming=False, series=len(alerts), bucket_seconds=10), START)
        await pilot.pause()
        assert panel.display and panel.table.row_count == MAX_ROWS
        assert str(panel.border_title) == f"Alerts · {MAX_ROWS + 50} firing"
        assert str(panel.border_subtitle).startswith(f"first {MAX_ROWS} of {MAX_ROWS + 50} · ")
