"""The dashboard: pilot tests press keys and check state; snapshot tests pin what the screen shows.

Everything is deterministic: a frozen clock, a seeded history in the embedded store, no refresh
timer (``live=False``: each change re-reads synchronously), and Textual pinned in pyproject.toml.
Update the SVGs after an intended change with ``pytest tests/test_app.py --snapshot-update``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import DataTable, Markdown
from textual.widgets.data_table import ColumnKey
from textual.widgets._toast import Toast

from tui.app import EventDashApp
from tui.clock import FakeClock
from tui.components.ranking import TOP_N
from tui.components.sparklines import ZeroBasedBars, bucket_columns
from tui.components.store_panel import MIN_WIDTH as PANEL_WIDTH
from tui.components.visitors import VisitorsTips
from tui.ingest.decode import IngestEvent
from tui.pipeline import Pipeline
from tui.pipeline.reader import MAX_VISITOR_IDS
from tui.screens.help import HelpScreen
from tui.screens.incomplete import IncompleteScreen
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import MemcachedStore, MemoryStore
from tui.store.sketches import sketch_key
from tui.window import OTHER_ID

START = 1_795_435_200.0  # 2026-11-23T08:00:00Z
IDS = ("INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo", "INF-ixpktk3itsk86", "INF-1bi5qk0zocqcz", "INF-8d1ovm2tx0kqe")


def make_app(history_seconds: int = 290, settings_path: Path | None = None, **options: Any) -> EventDashApp:
    """An app over ``history_seconds`` of seeded events at 40/s, flushed, on a frozen clock;
    ``options`` change the settings (e.g. ``generated_ids``, ``max_tracking_ids``)."""
    clock = FakeClock(START)
    settings = Settings(events_per_second=40, tracking_ids=IDS, backend="memory", **options)
    pipeline = Pipeline(settings, MemoryStore(clock), clock=clock, seed=42, writer_id="writer-a", writer_name="demo-host-4242")
    for second in range(history_seconds):
        clock.advance(1.0 + (second % 7) * 0.1)  # an uneven history, so the sparklines have shape
        pipeline.step()
    pipeline.writer.flush()
    # by-id reads are never deferred here, however slow a loaded machine makes them: snapshots stay exact
    return EventDashApp(pipeline, clock=clock, live=False, settings_path=settings_path, by_id_fast_seconds=math.inf)


async def shown(pilot) -> None:  # type: ignore[no-untyped-def]
    pilot.app.refresh_now()
    await pilot.pause()


def run_for(app: EventDashApp, seconds: int) -> None:
    """Generate, flush and refresh once a second for ``seconds`` on the frozen clock."""
    for _ in range(seconds):
        app.clock.advance(1.0)  # type: ignore[attr-defined]
        app.pipeline.step()
        app.pipeline.writer.flush()
        app.refresh_now()


async def live(pilot) -> None:  # type: ignore[no-untyped-def]
    """Shown, with five seconds of refreshes behind it so rates and trends have readings."""
    pilot.app.refresh_now()
    run_for(pilot.app, 5)
    await pilot.pause()


def screen_lines(app: EventDashApp) -> list[str]:
    """The text on the terminal, line by line, as a person sees it."""
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


def cell(app: EventDashApp, table: str, row: str, column: str) -> str:
    return str(app.query_one(f"#{table}", DataTable).get_cell(row, column))


# -- pilot tests: keys change state ----------------------------------------------------------------


async def test_plus_and_minus_change_the_generators_rate() -> None:
    app = make_app(10)
    async with app.run_test() as pilot:
        await shown(pilot)
        await pilot.press("plus")
        assert app.pipeline.settings.events_per_second == 80
        assert app.pipeline.generator._pacer.rate == 80
        await pilot.press("minus", "minus")
        assert app.pipeline.settings.events_per_second == 20


async def test_a_rate_out_of_range_is_refused_with_a_notice_not_a_crash() -> None:
    app = make_app(10)
    async with app.run_test() as pilot:
        for _ in range(15):  # 40 * 2**15 is over the 200,000 events/s limit
            await pilot.press("plus")
        assert app.pipeline.settings.events_per_second == 40 * 2**12
        assert any("at most 200,000" in n.message for n in app._notifications)


async def test_window_keys_change_the_window_of_the_summary_at_once() -> None:
    app = make_app(400)
    async with app.run_test() as pilot:
        await shown(pilot)
        before = int(cell(app, "types", "all", "events").replace(",", ""))
        await pilot.press("left_square_bracket")
        assert app.pipeline.settings.window_minutes == 4
        assert app.last is not None and app.last.view is not None
        assert app.last.view.window_seconds == 240
        after = int(cell(app, "types", "all", "events").replace(",", ""))
        assert after < before
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert app.last.view.window_seconds == 360
        for _ in range(6):
            await pilot.press("left_square_bracket")
        assert app.pipeline.settings.window_minutes == 1  # 0 is refused
        assert any("must be more than 0 minutes" in n.message for n in app._notifications)


async def test_space_pauses_generation_and_resumes_it() -> None:
    app = make_app(10)
    clock: FakeClock = app.clock  # type: ignore[assignment]
    async with app.run_test() as pilot:
        await pilot.press("space")
        generated = app.pipeline.status().generated
        clock.advance(5)
        app.pipeline.step()
        assert app.pipeline.status().generated == generated
        assert app.pipeline.paused
        await pilot.press("p")
        clock.advance(5)
        app.pipeline.step()
        assert app.pipeline.status().generated == generated + 200


async def test_quit_stops_the_generator_flushes_everything_and_exits_zero() -> None:
    app = make_app(10)
    clock: FakeClock = app.clock  # type: ignore[assignment]
    clock.advance(3)
    app.pipeline.step()  # counted, not yet flushed
    generated = app.pipeline.status().generated
    async with app.run_test() as pilot:
        await pilot.press("q")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert app.return_code == 0
    assert app.pipeline.paused
    assert app.pipeline.reader.read_view().total == generated


async def test_type_selection_follows_the_key_and_the_type_table() -> None:
    app = make_app(60)
    async with app.run_test() as pilot:
        await shown(pilot)
        assert app.selected == "signup"
        await pilot.press("t")
        assert app.selected == "user-event"
        tids = app.query_one("#tids", DataTable)
        total = sum(int(str(tids.get_cell(t, "events")).replace(",", "")) for t in IDS)
        assert total == int(cell(app, "types", "user-event", "events").replace(",", ""))
        await pilot.click("#types", offset=(3, 4))  # the review row
        assert app.selected == "review"
        await pilot.press("t")
        assert app.selected == "all"
        assert [c.value for c in tids.columns][:5] == ["tid", "signup", "user-event", "review", "total"]


async def test_refresh_updates_cells_in_place_and_keeps_the_cursor() -> None:
    app = make_app(60)
    async with app.run_test() as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", DataTable)
        tids.focus()
        await pilot.press("down", "down")
        key = tids.ordered_rows[tids.cursor_row].key
        app.clock.advance(20)  # type: ignore[attr-defined]
        app.pipeline.step()
        app.pipeline.writer.flush()
        await shown(pilot)
        assert tids.row_count == len(IDS)
        assert tids.ordered_rows[tids.cursor_row].key == key


async def test_sort_key_orders_tracking_ids_by_name_or_count() -> None:
    app = make_app(60)
    async with app.run_test() as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", DataTable)
        counts = [int(str(tids.get_row_at(i)[1]).replace(",", "")) for i in range(tids.row_count)]
        assert counts == sorted(counts, reverse=True)
        await pilot.press("s")
        names = [str(tids.get_row_at(i)[0]) for i in range(tids.row_count)]
        assert names == sorted(IDS)


async def test_help_screen_opens_and_closes() -> None:
    app = make_app(10)
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_save_writes_rate_and_window_back(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    app = make_app(10, settings_path=path)
    async with app.run_test() as pilot:
        await pilot.press("plus", "right_square_bracket", "w")
    saved = path.read_text()
    assert '"events_per_second": 80' in saved and '"window_minutes": 6' in saved


async def test_palette_offers_every_dashboard_key() -> None:
    app = make_app(10)
    async with app.run_test():
        titles = {c.title for c in app.get_system_commands(app.screen)}
    assert {"Rate ×2", "Rate ÷2", "Window +1 min", "Window -1 min", "Pause / resume", "Help"} <= titles


async def test_too_small_terminal_shows_a_message_instead_of_crashing() -> None:
    app = make_app(10)
    async with app.run_test(size=(60, 20)) as pilot:
        await shown(pilot)
        assert app.screen.has_class("-too-small")
        assert "needs at least 80×24" in str(app.query_one("#too-small").render())


# -- the dashboard's rough edges (issue 9) ----------------------------------------------------------


async def test_help_scrolls_to_its_last_line_at_80x24() -> None:
    app = make_app(10)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        help_view = app.screen.query_one("#help")
        assert help_view.max_scroll_y > 0  # longer than the screen, so it must scroll
        await pilot.press("end")
        await pilot.pause()
        assert help_view.scroll_y == help_view.max_scroll_y
        assert any("to close this help" in line for line in screen_lines(app))


async def test_help_heading_follows_the_current_window() -> None:
    app = make_app(10)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("right_square_bracket", "right_square_bracket", "question_mark")
        await pilot.pause()
        source = app.screen.query_one(Markdown).source
    assert 'What "last 7 min ±10 s" means' in source
    assert "last 5 min" not in source


async def test_80x24_fits_the_tables_header_status_and_footer() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await live(pilot)
        for name in ("types", "tids"):
            table = app.query_one(f"#{name}", DataTable)
            assert table.virtual_size.width <= table.size.width + 1, f"{name} is cut"  # +1: the cursor's cell
        lines = screen_lines(app)
        status = app.query_one("#status").region
        assert lines[status.y].rstrip().endswith("ms"), lines[status.y]  # nothing cut at the end
        assert "UTC" in lines[0]
        assert "▏" not in lines[-1] and lines[-1].rstrip().endswith("quit"), lines[-1]
        await pilot.press("t", "t", "t")  # the all-types matrix: every column, the total included
        tids = app.query_one("#tids", DataTable)
        assert tids.virtual_size.width <= tids.size.width
        assert any("total" in line and "review" in line for line in screen_lines(app))


async def test_no_table_is_cut_at_any_width_for_a_type_or_all_types() -> None:
    """The visitors columns make the tables wider: what does not fit gives way, nothing is cut."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await live(pilot)
        for keys in ((), ("t", "t", "t")):
            await pilot.press(*keys)
            for width in (80, 90, 100, 102, 104, 110, 120, 140):  # 102, 104: the matrix beside the key hints
                await pilot.resize_terminal(width, 30)
                await shown(pilot)
                for name in ("types", "tids"):
                    table = app.query_one(f"#{name}", DataTable)
                    if table.display and app.query_one("#left" if name == "types" else "#right").display:
                        assert table.virtual_size.width <= table.size.width + 1, f"{name} is cut at {width} ({app.selected})"
                columns = {str(c.value) for c in app.query_one("#tids", DataTable).columns}
                assert "visitors" in columns
                # live: the first extra; at 80 it fits only in the all-types matrix (full width then)
                if app.selected == "all" or width >= 100:
                    assert "live" in columns, (width, app.selected)


async def test_the_left_column_is_as_wide_as_the_type_table_needs() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await live(pilot)
        types = app.query_one("#types", DataTable)
        # ... or as its key hints need, when the type table gave up columns for the visitors
        assert app.query_one("#left").size.width <= max(types.virtual_size.width + 3, PANEL_WIDTH)
        assert any(line.startswith(" ^p  all commands w   save settings") for line in screen_lines(app))  # not wrapped


async def test_rates_are_shown_right_after_start_not_after_a_bucket() -> None:
    app = make_app(0)  # an empty store
    async with app.run_test(size=(100, 30)) as pilot:
        app.refresh_now()
        run_for(app, 3)
        await pilot.pause()
        assert float(cell(app, "types", "all", "rate")) == pytest.approx(40, abs=1)
        assert str(app.query_one("#types", DataTable).columns["rate"].label) == "ev/s 5s"


async def test_rates_follow_plus_within_seconds_everywhere() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await live(pilot)
        await pilot.press("plus")
        run_for(app, 5)
        await pilot.pause()
        assert float(cell(app, "types", "all", "rate")) == pytest.approx(80, abs=2)
        spark_rates = [float(str(app.query_one(f"#spark-value-{t}").render()).removesuffix("/s")) for t in ("signup", "user-event", "review")]
        types_rates = [float(cell(app, "types", t, "rate")) for t in ("signup", "user-event", "review")]
        assert spark_rates == types_rates


async def test_at_120x40_ids_get_shares_rates_and_trends_and_at_140_share_bars() -> None:
    """The visitors columns take 20 cells: at 120 the type table's share gives way to the ids'
    trends, and the share bar, which draws the share once more, comes at 140."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await live(pilot)
        tids = app.query_one("#tids", DataTable)
        assert {"visitors", "share", "rate", "trend"} <= {str(c.value) for c in tids.columns}
        assert tids.virtual_size.width <= tids.size.width + 1
        await pilot.resize_terminal(140, 40)
        await pilot.pause()
        assert {"bar", "rate", "trend"} <= {str(c.value) for c in tids.columns}
        assert "share" in {str(c.value) for c in app.query_one("#types", DataTable).columns}
        top = tids.ordered_rows[0].key
        assert "█" in str(tids.get_cell(top, "bar"))
        assert str(tids.get_cell(top, "trend")).strip()
        assert tids.virtual_size.width <= tids.size.width + 1


def test_each_bucket_gets_the_same_number_of_columns() -> None:
    for buckets in (31, 37, 43):  # 5, 6 and 7 minutes of 10 s buckets
        columns = bucket_columns(list(range(1, buckets + 1)), 95)
        runs = [sum(1 for value, _ in columns if value == b) for b in range(1, buckets + 1)]
        assert len(set(runs)) == 1, runs
        assert [filling for _, filling in columns][-runs[-1] :] == [True] * runs[-1]
    many = bucket_columns(list(range(361)), 50)  # an hour: several buckets a column, the newest alone
    assert len(many) <= 50 and many[-1] == (360, True)


async def test_sparklines_have_a_time_axis_that_follows_the_window() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await live(pilot)
        await pilot.press("right_square_bracket")
        await pilot.pause()
        axis = str(app.query_one("#spark-axis").render())
        assert axis.split()[0] == "-6m" and axis.split()[-1] == "now"


def test_the_still_filling_bucket_is_drawn_dim() -> None:
    from rich.console import Console
    from rich.style import Style

    bars = ZeroBasedBars([10, 10, 2], Style(color="green"))
    console = Console(width=6, height=1)
    segments = [s for s in console.render(bars, console.options.update(width=6, height=1)) if s.text.strip()]
    assert [bool(s.style and s.style.dim) for s in segments] == [False, False, False, False, True, True]


async def test_footer_says_resume_while_paused_and_offers_sort() -> None:
    app = make_app(10)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.active_bindings["space"].binding.description == "pause"
        assert app.active_bindings["s"].binding.show
        await pilot.press("space")
        assert app.active_bindings["space"].binding.description == "resume"
        assert any("space resume" in line for line in screen_lines(app))
        await pilot.press("space")
        assert app.active_bindings["space"].binding.description == "pause"


async def test_tab_is_hinted_and_the_palette_has_one_help_entry() -> None:
    app = make_app(10)
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        assert any("tab next table" in line for line in screen_lines(app))
        titles = [c.title for c in app.get_system_commands(app.screen)]
    assert titles.count("Help") == 1 and "Keys" not in titles


async def test_plain_words_embedded_store_and_the_writers_name() -> None:
    app = make_app(10)
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(pilot)
        text = "\n".join(screen_lines(app))
    assert "embedded store" in text and "demo-host-4242" in text
    assert "memory" not in text and "writer-a" not in text


async def test_save_goes_to_the_given_file_and_keeps_the_status_line_visible(tmp_path: Path) -> None:
    path = tmp_path / "config" / "eventdash" / "settings.json"  # the directory does not exist yet
    app = make_app(10, settings_path=path)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await shown(pilot)
        await pilot.press("w")
        for _ in range(20):  # the toast is mounted a few message-loop turns later
            await pilot.pause()
            if toasts := list(app.screen.query(Toast)):
                break
        assert toasts and str(path) in str(toasts[0].render())
        status = app.query_one("#status").region
        assert all(not t.region.overlaps(status) for t in toasts)
        assert "generated" in screen_lines(app)[status.y]
    assert '"events_per_second": 40' in path.read_text()


async def test_status_line_says_when_the_generator_falls_behind() -> None:
    app = make_app(10)
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(pilot)
        assert app.last is not None
        behind = replace(app.last.status, configured_rate=20_000, measured_rate=14_200, behind=True)
        app.apply(replace(app.last, status=behind))
        await pilot.pause()
        line = screen_lines(app)[app.query_one("#status").region.y]
    assert "behind: producing 14,200/s of the configured 20,000/s" in line


# -- many tracking ids: the top, the / filter, (other), an incomplete window ----------------------


def many_ids_app(history_seconds: int = 290) -> EventDashApp:
    """600 generated ids with Zipf traffic: more ids than the table shows."""
    return make_app(history_seconds, generated_ids=600, zipf=1.1)


def row_ids(table: DataTable) -> list[str]:  # type: ignore[type-arg]
    return [str(row.key.value) for row in table.ordered_rows]


async def test_the_table_shows_the_top_ids_by_count_and_says_how_many_more() -> None:
    app = many_ids_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", DataTable)
        by_tid = app.last.view.summary["signup"].by_tracking_id  # type: ignore[union-attr]
        assert len(by_tid) > TOP_N  # the point of the test: more ids than rows
        assert tids.row_count == TOP_N
        counts = [by_tid.get(tid, 0) for tid in row_ids(tids)]
        assert counts == sorted(counts, reverse=True)
        assert min(counts) >= sorted(by_tid.values(), reverse=True)[TOP_N - 1]  # none of the top left out
        assert tids.border_subtitle == f"top {TOP_N} of {len(by_tid):,} ids · by count"


async def test_a_refresh_updates_rows_in_place_and_keeps_the_cursor_on_its_id() -> None:
    app = many_ids_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", DataTable)
        tids.focus()
        await pilot.press(*["down"] * 30)
        key = tids.ordered_rows[tids.cursor_row].key
        rows = {row.key for row in tids.ordered_rows}
        run_for(app, 20)  # counts move, the order changes
        await pilot.pause()
        assert tids.ordered_rows[tids.cursor_row].key == key
        assert len(rows & {row.key for row in tids.ordered_rows}) > TOP_N // 2  # the same rows, not a new table


async def test_slash_finds_ids_outside_the_top_in_any_case_enter_keeps_escape_clears() -> None:
    app = many_ids_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", DataTable)
        by_tid = app.last.view.summary["signup"].by_tracking_id  # type: ignore[union-attr]
        rare = min(by_tid, key=lambda t: (by_tid[t], t))
        assert rare not in row_ids(tids)
        needle = rare[4:12]
        await pilot.press("slash", *needle.upper())
        await pilot.pause()
        matching = [t for t in by_tid if needle.lower() in t.lower()]
        assert rare in row_ids(tids)
        assert set(row_ids(tids)) <= set(matching)
        assert f"/{needle.upper()}" in str(tids.border_title)
        assert str(tids.border_subtitle).startswith(f"{len(row_ids(tids))} match")
        await pilot.press("enter")
        assert app.focused is tids and rare in row_ids(tids)  # kept, focus back on the table
        run_for(app, 2)  # refreshes keep the filter
        await pilot.pause()
        assert rare in row_ids(tids) and tids.row_count < TOP_N
        await pilot.press("slash", "escape")
        assert app.focused is tids
        assert tids.row_count == TOP_N and "/" not in str(tids.border_title)


async def test_slash_is_in_the_footer_the_palette_and_the_help() -> None:
    app = make_app(10)
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        assert any("/ find" in line for line in screen_lines(app))
        assert "Find tracking ids" in [c.title for c in app.get_system_commands(app.screen)]
        await pilot.press("question_mark")
        assert "| `/` |" in app.screen.query_one(Markdown).source


async def test_other_is_a_distinct_row_and_the_status_line_says_why() -> None:
    app = make_app(60, max_tracking_ids=3)
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", DataTable)
        assert OTHER_ID in row_ids(tids)
        name = tids.get_cell(OTHER_ID, "tid")
        assert "dim" in str(name.style) and "italic" in str(name.style)  # type: ignore[union-attr]
        other = app.pipeline.status().other_events
        assert other > 0
        assert f"{other:,} events under (other): more than max_tracking_ids ids" in str(app.query_one("#status").render())


def evict_a_minute(app: EventDashApp) -> None:
    """Delete every stored count of one minute in the middle of the window, as an eviction would."""
    store: MemoryStore = app.store  # type: ignore[assignment]
    minute = int(START + 120) // 60
    lost = [k for k in store._items if f":s6:{minute}:" in k or any(f":s1:{minute * 6 + i}:" in k for i in range(6))]
    assert lost
    for key in lost:
        store.delete(key)


async def test_an_incomplete_window_is_shown_in_red_and_i_lists_each_gap() -> None:
    app = make_app()
    evict_a_minute(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(pilot)
        view = app.last.view  # type: ignore[union-attr]
        assert view is not None and view.incomplete
        gaps = len(view.incomplete)
        assert Text.from_markup(str(app.query_one("#types").border_subtitle)).plain == f"incomplete: {gaps} gap{'s' if gaps > 1 else ''} — press i"
        await pilot.press("i")
        assert isinstance(app.screen, IncompleteScreen)
        text = "\n".join(screen_lines(app))
        assert view.incomplete[0].why[:30] in text
        await pilot.press("escape")
        assert not isinstance(app.screen, IncompleteScreen)


async def test_every_face_prints_the_views_label() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(pilot)
        view = app.last.view  # type: ignore[union-attr]
        wide = replace(view, bound_seconds=60)  # the old edge rounded to a coarser level
        app.apply(replace(app.last, view=wide))  # type: ignore[arg-type]
        await pilot.pause()
        assert app.query_one("#types").border_subtitle == "last 5 min ±60 s"
        assert app.query_one("#sparks").border_title == "Events per bucket · last 5 min ±60 s"
        await pilot.press("question_mark")
        assert 'What "last 5 min ±60 s" means' in app.screen.query_one(Markdown).source


# -- distinct visitors ---------------------------------------------------------------------------


def visitors_app(extra_ids: int = 0) -> EventDashApp:
    """No generated history: known visitors in the current bucket. IDS[0]: 30 signups by v0..v9 and
    20 reviews by v5..v14 (15 visitors of either); IDS[1]: 12 user-events by 12 others.
    ``extra_ids`` more ids with events, so that some fall beyond the busiest read for visitors."""
    app = make_app(0)
    now_ms = int(app.clock.time() * 1000)
    events = [IngestEvent("signup", IDS[0], now_ms, f"v{i % 10}") for i in range(30)]
    events += [IngestEvent("review", IDS[0], now_ms, f"v{5 + i % 10}") for i in range(20)]
    events += [IngestEvent("user-event", IDS[1], now_ms, f"w{i}") for i in range(12)]
    # the extra ids: 2 signups each for the first that fill the busiest with IDS[0] and IDS[1],
    # then 1 each: those are left out
    busy = MAX_VISITOR_IDS - 2
    events += [IngestEvent("signup", f"INF-x{i:012d}", now_ms, f"x{i}") for i in range(extra_ids) for _ in range(1 if i >= busy else 2)]
    app.pipeline.writer.ingest(events)
    app.pipeline.writer.flush()
    return app


async def test_the_visitors_columns_show_the_distinct_visitors_of_known_events() -> None:
    app = visitors_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        types = {t: cell(app, "types", t, "visitors") for t in ("signup", "user-event", "review", "all")}
        assert types == {"signup": "≈10", "user-event": "≈12", "review": "≈10", "all": "≈27"}  # 15 + 12: not 10 + 12 + 10
        assert cell(app, "types", "signup", "events") == "30"
        assert cell(app, "tids", IDS[0], "visitors") == "≈10"  # signup selected: its signup visitors
        assert cell(app, "tids", IDS[1], "visitors") == "0"  # no signups: no visitors, exactly
        await pilot.press("t", "t", "t")  # all types: of any type
        assert cell(app, "tids", IDS[0], "visitors") == "≈15"
        assert cell(app, "tids", IDS[1], "visitors") == "≈12"
        assert app.query_one("#types").border_subtitle == "last 5 min ±10 s"  # nothing incomplete


def evict_signup_sketch(app: EventDashApp) -> str:
    """Delete the current bucket's signup sketch of IDS[0]'s shard, as memcached evicts it (the
    counts of that shard are still there); its key."""
    layout = app.pipeline.reader.layout()
    bucket = int(app.clock.time()) // layout.bucket_seconds
    key = sketch_key(layout, ("d", 1, bucket, "signup", layout.shard(IDS[0])))
    store: MemoryStore = app.store  # type: ignore[assignment]
    assert store.get_many([key])
    store.delete(key)
    return key


async def test_an_evicted_sketch_flags_the_visitors_incomplete_and_i_says_why() -> None:
    app = visitors_app()
    key = evict_signup_sketch(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        view = app.last.view  # type: ignore[union-attr]
        assert not view.incomplete and view.visitors is not None and view.visitors.incomplete  # the counts are whole
        assert Text.from_markup(str(app.query_one("#types").border_subtitle)).plain == "visitors incomplete — press i"
        assert cell(app, "types", "signup", "events") == "30"  # counts unmarked
        assert cell(app, "types", "all", "visitors").endswith(" !")  # every figure may be low
        assert cell(app, "tids", IDS[0], "visitors") == "— !"  # its sketch is gone: no figure, marked
        assert any("visitors incomplete — press i" in line for line in screen_lines(app))  # whole, at 80 columns
        await pilot.press("i")
        assert isinstance(app.screen, IncompleteScreen)
        text = "\n".join(screen_lines(app))
        assert "visitors (marked !) may be LOW" in text
        assert f"visitors: {key} is missing (evicted?)" in " ".join(text.split())  # wrapped at 80


async def test_ids_beyond_the_busiest_show_a_dash_and_the_help_says_why() -> None:
    app = visitors_app(extra_ids=MAX_VISITOR_IDS + 5)
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        assert app.last.view.visitors.omitted == 7  # type: ignore[union-attr]
        left_out = f"INF-x{MAX_VISITOR_IDS:012d}"
        await pilot.press("slash", *"00100", "enter")  # the filter finds it outside the top 200
        await pilot.pause()
        assert cell(app, "tids", left_out, "visitors") == "—"
        assert cell(app, "tids", "INF-x000000000100", "visitors") == "≈1"  # one of the busiest
        await pilot.press("question_mark")
        source = " ".join(app.screen.query_one(Markdown).source.split())  # as read, not as wrapped
    assert f"{MAX_VISITOR_IDS:,} busiest ids" in source and "shows `—`" in source
    assert "Not the sum of the types" in source and "±2.3 %" in source and "HyperLogLog" in source


async def test_hovering_a_visitors_figure_gives_its_range() -> None:
    app = visitors_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        types = app.query_one("#types", VisitorsTips)
        x = 1 + sum(types.columns[ColumnKey(k)].get_render_width(types) for k in ("type", "events")) + 2  # in the visitors column
        await pilot.hover("#types", offset=(x, 1))  # the header
        assert "±2.3 % at 95 %" in str(types.tooltip) and "Not the sum of the types" in str(types.tooltip)
        await pilot.hover("#types", offset=(x, 2))  # signup
        assert str(types.tooltip).startswith("≈10 distinct visitors: 95 % between 10 and 10")
        await pilot.hover("#types", offset=(2, 2))  # the type's name: no tip
        assert types.tooltip is None


# -- snapshots -------------------------------------------------------------------------------------


async def _ready(pilot) -> None:  # type: ignore[no-untyped-def]
    await live(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_default_view(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=size, run_before=_ready)


def test_snapshot_after_rate_up_and_window_up(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["plus", "right_square_bracket"], terminal_size=(100, 30), run_before=_ready)


def test_snapshot_paused(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["space"], terminal_size=(100, 30), run_before=_ready)


def test_snapshot_help(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["question_mark"], terminal_size=(100, 30), run_before=_ready)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_help_scrolled_to_the_end(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["question_mark", "end"], terminal_size=size, run_before=_ready)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_all_types(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["t", "t", "t"], terminal_size=size, run_before=_ready)


def test_snapshot_selected_type_and_all_types(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["t", "t", "t"], terminal_size=(120, 30), run_before=_ready)


def test_snapshot_backend_down_header(snap_compare) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(START)
    down = Server("127.0.0.1", 1)  # nothing listens on port 1 of loopback: refused at once
    settings = Settings(tracking_ids=IDS, backend="memcached", memcached=MemcachedSettings((down,)))
    pipeline = Pipeline(settings, MemcachedStore([down], "x:"), clock=clock, seed=1, writer_id="writer-b", writer_name="writer-b")
    assert snap_compare(EventDashApp(pipeline, clock=clock, live=False), terminal_size=(100, 30), run_before=_ready)


def test_snapshot_filter_in_use_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(many_ids_app(), press=["slash", "x", "y"], terminal_size=(80, 24), run_before=_ready)


def test_snapshot_other_row(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(max_tracking_ids=3), terminal_size=(120, 40), run_before=_ready)


def test_snapshot_incomplete_window(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    evict_a_minute(app)
    assert snap_compare(app, terminal_size=(100, 30), run_before=_ready)


async def test_slow_by_id_reads_are_deferred_while_the_series_stays_live() -> None:
    """At 100,000 ids a by-id read of the window takes about a second: the dashboard then reads it
    only as often as keeps it to 5 % of the time, and refreshes the series every time."""
    app = make_app(60)
    app.by_id_fast_seconds = 0.0  # every by-id read counts as slow
    pipeline, clock = app.pipeline, app.clock
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        before = app.last.view.summary["signup"].total
        now_ms = int(clock.time() * 1000)
        pipeline.writer.ingest([("signup", IDS[0], now_ms)] * 50)  # new events, the clock frozen
        pipeline.writer.flush()
        await shown(pilot)
        view = app.last.view
        assert view.summary["signup"].total == before  # the counts by id kept from the last by-id read
        assert sum(view.series["signup"]) == before + 50  # the series read now, with the new events
        assert "· as of " in str(app.query_one("#tids", DataTable).border_subtitle)


# -- live visitors ---------------------------------------------------------------------------------


def live_app() -> EventDashApp:
    """A 30-minute window, so that it holds events older than live_minutes (7): IDS[0] has 30
    signups by v0..v9 and 20 reviews by v5..v14 now (15 live visitors) and 10 user-events by
    o0..o9 20 minutes ago (25 visitors in the window); IDS[1] only 12 user-events by w0..w11 20
    minutes ago (12 in the window, none live)."""
    app = make_app(0, window_minutes=30)
    now_ms = int(app.clock.time() * 1000)
    old_ms = now_ms - 20 * 60 * 1000
    events = [IngestEvent("signup", IDS[0], now_ms, f"v{i % 10}") for i in range(30)]
    events += [IngestEvent("review", IDS[0], now_ms, f"v{5 + i % 10}") for i in range(20)]
    events += [IngestEvent("user-event", IDS[0], old_ms, f"o{i}") for i in range(10)]
    events += [IngestEvent("user-event", IDS[1], old_ms, f"w{i}") for i in range(12)]
    app.pipeline.writer.ingest(events)
    app.pipeline.writer.flush()
    return app


async def test_the_live_column_counts_the_last_live_minutes_only_of_every_type() -> None:
    app = live_app()
    assert app.pipeline.settings.live_seconds == 7 * 60
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        # signup selected: the live column still counts every type, over 7 minutes, not the window
        assert cell(app, "tids", IDS[0], "visitors") == "≈10"
        assert cell(app, "tids", IDS[0], "live") == "≈15"
        assert cell(app, "tids", IDS[1], "live") == "0"  # read: no events in the last 7 minutes
        assert Text.from_markup(str(app.query_one("#types").border_title)).plain == "Event types · live ≈15"
        assert cell(app, "types", "all", "visitors") == "≈37"  # the window: 15 + 10 old + 12 old
        await pilot.press("t", "t", "t")  # all types: the window's visitors of any type beside the live ones
        await shown(pilot)
        assert cell(app, "tids", IDS[0], "visitors") == "≈25"
        assert cell(app, "tids", IDS[0], "live") == "≈15"  # the 20-minute-old visitors do not count
        assert cell(app, "tids", IDS[1], "visitors") == "≈12"
        assert cell(app, "tids", IDS[1], "live") == "0"
        # an id the live read did not ask for (ranked after it) shows a dash, never 0
        app.apply(replace(app.last, live=replace(app.last.live, ids=frozenset({IDS[0]}))))  # type: ignore[arg-type]
        await pilot.pause()
        assert cell(app, "tids", IDS[1], "live") == "—"
        tids = app.query_one("#tids", VisitorsTips)
        assert "the last 7 min" in tids.live_header_tip() and "live_minutes" in tids.live_header_tip()
        await pilot.press("question_mark")
        source = " ".join(app.screen.query_one(Markdown).source.split())
    assert "**live** (tracking ids): the id's distinct visitors of *every* type in the last 7 min" in source
    assert "`live_minutes` in the settings file sets the span" in source


async def test_a_slow_live_read_is_kept_until_due_unless_the_ranking_shows_ids_it_did_not_read() -> None:
    """At 100,000 ids the live visitors of 200 ranked ids took ~90 ms every refresh: a slow read is
    kept for took / LIVE_SHARE, new live visitors showing once it is due; another selection whose
    rows it did not read is read at once."""
    from tui.app import LIVE_SHARE

    app = live_app()
    clock, reader = app.clock, app.pipeline.reader
    live_reads: list[float] = []
    read_visitors = reader.read_visitors

    def slow(ids, series, window_seconds=None, **kw):  # type: ignore[no-untyped-def]
        if window_seconds == app.pipeline.settings.live_seconds:
            live_reads.append(clock.time())
            clock.advance(0.05)  # the read takes 50 ms of the (frozen) clock
        return read_visitors(ids, series, window_seconds, **kw)

    reader.read_visitors = slow  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("tab", "slash", *IDS[0][4:8], "enter")  # the filter leaves IDS[0] alone
        await shown(pilot)
        assert len(live_reads) == 1 and cell(app, "tids", IDS[0], "live") == "≈15"
        now_ms = int(clock.time() * 1000)
        app.pipeline.writer.ingest([IngestEvent("review", IDS[0], now_ms, "new-visitor")])
        app.pipeline.writer.flush()
        clock.advance(1.0)
        await shown(pilot)
        assert len(live_reads) == 1 and cell(app, "tids", IDS[0], "live") == "≈15"  # kept: due in 2.5 s
        clock.advance(0.05 / LIVE_SHARE)
        await shown(pilot)
        assert len(live_reads) == 2 and cell(app, "tids", IDS[0], "live") == "≈16"  # due: read again
        await pilot.press("t")  # another type, the same filtered rows: still the kept read
        await shown(pilot)
        assert len(live_reads) == 2
        await pilot.press("slash", "ctrl+u", "enter")  # no filter: IDS[1] too, which it did not read
        await shown(pilot)
        assert len(live_reads) == 3 and cell(app, "tids", IDS[1], "live") == "0"


async def test_a_lost_live_sketch_marks_the_live_figures_and_i_lists_it() -> None:
    app = live_app()
    evict_signup_sketch(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        assert app.last.live is not None and app.last.live.read.incomplete  # type: ignore[union-attr]
        assert Text.from_markup(str(app.query_one("#types").border_title)).plain.endswith(" !")
        assert "live" not in {str(c.value) for c in app.query_one("#tids", DataTable).columns}  # gives way at 80 for a type
        await pilot.press("t", "t", "t")  # the all-types matrix takes the whole width: live fits
        await shown(pilot)
        assert cell(app, "tids", IDS[0], "live") == "≈10 !"  # its reviewers only: low, and marked
        assert cell(app, "tids", IDS[1], "live") == "— !"  # no figure, and it may be the one lost
        await pilot.press("i")
        assert isinstance(app.screen, IncompleteScreen)
        text = " ".join(" ".join(screen_lines(app)).split())
        assert "live, last 7 min: live visitors (marked !) may be LOW" in text


async def test_hovering_a_live_figure_gives_its_range_and_span() -> None:
    app = live_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", VisitorsTips)
        x = 1 + sum(tids.columns[ColumnKey(k)].get_render_width(tids) for k in ("tid", "events", "visitors")) + 2  # in the live column
        await pilot.hover("#tids", offset=(x, 1))  # the header
        assert "in the last 7 min" in str(tids.tooltip) and "live_minutes" in str(tids.tooltip)
        row = 2 + tids.get_row_index(IDS[0])
        await pilot.hover("#tids", offset=(x, row))
        assert str(tids.tooltip).startswith("≈15 distinct visitors in the last 7 min: 95 % between 15 and 15")
