"""The dashboard's history screen (``h``) and export (``e``), issue 12: pilot tests press the keys and
check the files and the numbers; snapshot tests pin the 60-minute and 24-hour views at 80×24 and
120×40 over a seeded day of history in the embedded store, on a frozen clock."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.test_app import IDS, START, evict_a_minute, make_app, screen_lines, shown
from tui.app import EventDashApp
from tui.clock import FakeClock
from tui.components.history_chart import column_groups, nice_top
from tui.pipeline import Pipeline
from tui.history.export import to_csv as query_csv
from tui.history.export_files import Table, export_dir, to_csv, write_export
from tui.history.query import Query
from tui.history.ranges import ZOOMS, id_filter, read_range
from tui.history.source import HistorySource
from tui.screens.history import HistoryScreen
from tui.settings import Settings
from tui.store import MemoryStore

DAY = 86_400


def day_app() -> EventDashApp:
    """A day of seeded events (a daily wave, about 20 a minute) ending at START, in the embedded
    store, and the clock frozen 40 s into the next minute. Each minute's events fall in its first
    10 s bucket (fewer values to write, the same counts per minute and hour)."""
    clock = FakeClock(START - DAY)
    settings = Settings(events_per_second=40, tracking_ids=IDS, backend="memory")
    pipeline = Pipeline(settings, MemoryStore(clock), clock=clock, seed=42, writer_id="writer-a", writer_name="demo-host-4242")
    rng = random.Random(7)
    events = []
    for minute in range(DAY // 60 + 1):
        wave = 1 + 0.6 * math.sin(2 * math.pi * minute / 1440)
        for _ in range(round(rng.randint(10, 30) * wave)):
            ts = int((START - DAY + minute * 60 + rng.random() * 10) * 1000)
            events.append((rng.choice(("signup", "user-event", "review")), rng.choice(IDS), ts))
    clock.advance(DAY + 40)
    pipeline.writer.ingest(events)
    pipeline.writer.flush(everything=True)
    return EventDashApp(pipeline, clock=clock, live=False, by_id_fast_seconds=math.inf)


async def opened(pilot, *keys: str) -> HistoryScreen:  # type: ignore[no-untyped-def]
    """Press ``keys`` (the last one opens or changes the history screen) and wait for its read."""
    await pilot.press(*keys)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, HistoryScreen)
    return screen


async def exported(pilot, *keys: str) -> Path:  # type: ignore[no-untyped-def]
    """Press ``keys`` (ending at the format prompt's answer); the file the notice names."""
    await pilot.press(*keys)
    await pilot.pause()
    notices = [n.message for n in pilot.app._notifications if "written to" in n.message]
    assert notices, [n.message for n in pilot.app._notifications]
    path = Path(notices[-1].rpartition("written to ")[2])
    assert path.exists()
    return path


# -- e: export ---------------------------------------------------------------------------------------


async def test_e_writes_the_summary_to_the_csv_file_its_notice_names() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(pilot)
        app.query_one("#types").focus()
        path = await exported(pilot, "e", "enter")
        view = app.last.view  # type: ignore[union-attr]
    assert path.parent == export_dir() and path.suffix == ".csv" and "summary" in path.name
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["type"] for r in rows] == ["signup", "user-event", "review", "all"]
    assert {r["type"]: int(r["events"]) for r in rows} == {**{t: s.total for t, s in view.summary.items()}, "all": view.total}
    assert {r["incomplete"] for r in rows} == {"false"}
    read = view.visitors
    assert read is not None  # the dashboard reads the visitors with the window
    expected = {**{t: read.series_totals[t] for t in read.series_totals}, "all": read.total}
    assert {r["type"]: int(r["visitors"]) for r in rows} == {t: round(e.value) for t, e in expected.items() if e is not None}
    assert all(int(r["visitors_lower"]) <= int(r["visitors"]) <= int(r["visitors_upper"]) for r in rows)
    assert {r["visitors_incomplete"] for r in rows} == {"false"}


async def test_e_writes_the_filtered_tracking_ids_as_json() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(pilot)
        await pilot.press("tab", "slash", "y", "j", "enter")
        path = await exported(pilot, "e", "j")
        tids = app.query_one("#tids", DataTable)
        shown_ids = [str(r.key.value) for r in tids.ordered_rows]
        by_tid = app.last.view.summary["signup"].by_tracking_id  # type: ignore[union-attr]
        visitors = app.last.view.visitors.by_series["signup"]["INF-yj562hjojbtez"]  # type: ignore[union-attr]
        live = app.last.live  # type: ignore[union-attr]
        assert live is not None
    document = json.loads(path.read_text())
    assert document["filter"] == "yj" and document["type"] == "signup" and path.suffix == ".json"
    assert document["columns"] == [
        "tracking_id", "type", "events", "share_percent", "incomplete",
        "visitors", "visitors_lower", "visitors_upper", "visitors_incomplete", "live_visitors",
    ]
    assert [r[0] for r in document["rows"]] == shown_ids == ["INF-yj562hjojbtez"]
    assert document["rows"][0][2] == by_tid["INF-yj562hjojbtez"]
    assert document["rows"][0][5] == round(visitors.value) and document["rows"][0][5] <= document["rows"][0][2]  # no more visitors than events
    assert document["rows"][0][9] == round(live.read.by_id["INF-yj562hjojbtez"].value) and document["liveSeconds"] == live.seconds


async def test_escape_at_the_format_prompt_writes_nothing() -> None:
    app = make_app(10)
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(pilot)
        await pilot.press("e", "escape")
        await pilot.pause()
    assert not export_dir().exists() or not list(export_dir().iterdir())


def test_exports_never_overwrite_and_keep_file_names_safe(tmp_path: Path) -> None:
    table = Table(("tracking_id", "count"), [("=HYPERLINK(1)", 3), ("-2", 1)])
    first = write_export(to_csv(table), "csv", "tracking-ids-../../etc/x", 0.0, tmp_path)
    second = write_export(to_csv(table), "csv", "tracking-ids-../../etc/x", 0.0, tmp_path)
    assert first.parent == second.parent == tmp_path and first != second
    assert first.name == "eventdash-tracking-ids-.._.._etc_x-19700101T000000Z.csv"  # one name in tmp_path, no path
    assert first.read_bytes().decode() == second.read_bytes().decode() == "tracking_id,count\n'=HYPERLINK(1),3\n'-2,1\n"


def test_the_export_directory_follows_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert export_dir() == tmp_path / "eventdash" / "exports"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert export_dir() == Path.home() / ".local" / "share" / "eventdash" / "exports"
    assert to_csv(Table(("a",), [(True,)])) == "a\ntrue\n"


# -- h: the history screen ----------------------------------------------------------------------------


async def test_h_shows_the_last_hour_per_minute_of_the_id_under_the_cursor() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        screen = await opened(pilot, "tab", "h")
        tid = screen.tracking_id
        assert screen.etype == "signup" and tid == str(app.query_one("#tids", DataTable).ordered_rows[0].key.value)
        view = screen.view
        assert view is not None and view.step_seconds == 60 and len(view.steps) == 60
        assert view.steps[-1].filling and not any(s.filling for s in view.steps[:-1])
        expected = app.pipeline.reader.read_one("signup", tid, 3600).summary["signup"].by_tracking_id.get(tid, 0)  # type: ignore[arg-type]
        assert view.total == expected > 0
        table = screen.query_one("#history-table", DataTable)
        assert table.row_count == 60
        assert sum(int(str(table.get_row_at(i)[1]).strip(" !").replace(",", "")) for i in range(60)) == expected
        assert f"History · signup · {tid} · 1h per 1m" in screen_lines(app)[0]


async def test_h_from_the_type_table_shows_all_ids_of_the_type() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        app.query_one("#types").focus()
        screen = await opened(pilot, "h")
        assert screen.tracking_id is None and screen.view is not None
        assert screen.view.total == app.pipeline.reader.read_view(window_seconds=3600).summary["signup"].total
        await pilot.press("escape")
        assert not isinstance(app.screen, HistoryScreen)


async def test_zoom_and_step_keys_change_the_range() -> None:
    app = day_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        screen = await opened(pilot, "h")
        assert screen.view is not None and (screen.view.zoom.name, len(screen.view.steps)) == ("1h", 60)
        await opened(pilot, "minus")
        assert (screen.view.zoom.name, screen.view.step_seconds, len(screen.view.steps)) == ("6h", 600, 36)
        await opened(pilot, "4")
        assert (screen.view.zoom.name, screen.view.step_seconds, len(screen.view.steps)) == ("24h", 3600, 24)
        newest = screen.view.steps[-1].start_ms
        await opened(pilot, "left")
        assert screen.pages_back == 1 and screen.view.steps[-1].start_ms == newest - DAY * 1000
        assert not any(s.filling for s in screen.view.steps)
        assert "still filling" not in str(screen.query_one("#history-chart").border_subtitle)
        await opened(pilot, "n")
        assert screen.pages_back == 0 and screen.view.steps[-1].start_ms == newest
        await opened(pilot, "plus", "plus", "plus")
        assert screen.view.zoom.name == "5m" and screen.view.step_seconds == 10


async def test_number_keys_zoom_about_the_range_end_as_plus_and_minus_do() -> None:
    """``1``-``5`` keep the range's end, as ``+``/``-`` do: 12 h back, ``2`` shows an hour 12 h
    back (not 2 h back), and ``4`` the day that holds it, the last one."""
    app = day_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        screen = await opened(pilot, "h", "3")
        await opened(pilot, "left", "left")
        assert screen.view is not None and (screen.view.zoom.name, screen.pages_back) == ("6h", 2)
        end = screen.view.end_ms
        await opened(pilot, "2")
        assert (screen.view.zoom.name, screen.pages_back) == ("1h", 12)
        assert abs(screen.view.end_ms - end) < 600_000  # the same end, to the 6 h zoom's 10 min step
        await opened(pilot, "4")
        assert (screen.view.zoom.name, screen.pages_back) == ("24h", 0) and screen.view.steps[-1].filling


async def test_a_re_read_keeps_the_tables_cursor_on_its_step() -> None:
    """The live range is read again every refresh: scrolled down the table, the user stays there
    (the refill used to put the cursor and the scroll back on top every second); at the newest row
    the cursor follows now."""
    app = day_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        screen = await opened(pilot, "h")
        table = screen.query_one("#history-table", DataTable)
        await pilot.press(*["down"] * 40)
        key, scroll = table.ordered_rows[40].key, table.scroll_y
        assert table.cursor_row == 40 and scroll > 0

        async def reread() -> None:
            screen.load()
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()

        await reread()
        assert (table.cursor_row, table.scroll_y) == (40, scroll)
        app.clock.advance(60)  # a new minute: a new step on top, the oldest gone
        await reread()
        assert table.ordered_rows[table.cursor_row].key == key and table.cursor_row == 41
        await pilot.press("ctrl+home")
        app.clock.advance(60)
        await reread()
        assert table.cursor_row == 0 and table.ordered_rows[0].key.value == str(screen.view.steps[-1].start_ms)  # type: ignore[union-attr]


def test_a_range_past_the_steps_retention_is_read_at_a_coarser_step() -> None:
    app = day_app()
    source = HistorySource(app.pipeline.store, app.pipeline.settings)
    now = app.clock.time()
    recent = read_range(source, "signup", None, ZOOMS[0], 0, now)
    assert recent.step_seconds == 10 and recent.note is None
    old = read_range(source, "signup", None, ZOOMS[0], 24, now)  # 2 h back: 10 s buckets are gone
    assert old.step_seconds == 60 and old.steps
    assert old.note == "per 1m: 10 s buckets are kept for 1 h; the range's start 11-23 09:55 UTC needs step 1m or coarser"
    gone = read_range(source, "signup", None, ZOOMS[4], 2, now)  # 14 days back
    assert not gone.steps and "longest retention" in (gone.note or "")


async def test_an_incomplete_minute_is_red_in_the_chart_and_marked_in_the_table() -> None:
    app = make_app()
    evict_a_minute(app)  # the minute's counts by id: one id's history reads them (all ids' reads the heads)
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        screen = await opened(pilot, "tab", "h")
        assert screen.view is not None and screen.view.gaps
        bad = [s for s in screen.view.steps if s.incomplete]
        assert len(bad) == 1 and bad[0].start_ms == int(START + 120) // 60 * 60_000
        table = screen.query_one("#history-table", DataTable)
        assert any(str(table.get_row_at(i)[1]).endswith("!") for i in range(table.row_count))
        assert "incomplete: 1 step in red" in str(screen.query_one("#history-chart").border_subtitle)


async def test_e_on_the_history_screen_writes_what_eventdash_query_prints() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        screen = await opened(pilot, "tab", "h")
        path = await exported(pilot, "e", "enter")
        view = screen.view
    assert view is not None and view.result is not None and "history-signup" in path.name
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [int(r["count"]) for r in rows] == [s.count for s in view.steps]
    assert rows[-1]["bucket"] == "2026-11-23T12:06:00.000Z" and rows[-1]["incomplete"] == "false"
    assert path.read_text() == query_csv(view.result)  # byte for byte what `eventdash query --format csv` prints


def test_an_id_with_glob_characters_matches_only_itself() -> None:
    query = Query(0, 60_000, 60, (), id_filter("INF-[ab]*"))
    assert query.wants_id("INF-[ab]*") and not query.wants_id("INF-a") and not query.wants_id("INF-[ab]x")


def test_chart_columns_cover_every_step_once() -> None:
    for steps, width in ((60, 56), (24, 56), (168, 46), (30, 90)):
        groups = column_groups(steps, width)
        assert len(groups) <= width
        covered = sorted({i for g in groups for i in g})
        assert covered == list(range(steps))
        assert len({len(g) for g in groups[1:-1]}) <= 1  # alike, but the oldest (partial) and the filling one
    assert [nice_top(p) for p in (0, 3, 187, 200, 201, 9_999)] == [2, 5, 200, 200, 500, 10_000]


async def test_h_and_e_are_in_the_footer_the_palette_and_the_help() -> None:
    from textual.widgets import Markdown

    app = make_app(10)
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        text = "\n".join(screen_lines(app))
        assert "h   history" in text and "e   export table" in text  # in the panel of keys the footer has no room for
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "History" in titles and "Export table" in titles
        await pilot.press("question_mark")
        source = app.screen.query_one(Markdown).source
        assert "| `h` |" in source and "| `e` |" in source


# -- snapshots ----------------------------------------------------------------------------------------


async def _history(pilot) -> None:  # type: ignore[no-untyped-def]
    await shown(pilot)
    await opened(pilot, "tab", "h")


async def _day(pilot) -> None:  # type: ignore[no-untyped-def]
    await _history(pilot)
    await opened(pilot, "4")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_history_last_hour(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(day_app(), terminal_size=size, run_before=_history)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_history_last_day(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(day_app(), terminal_size=size, run_before=_day)
