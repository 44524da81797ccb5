"""The dashboard: pilot tests press keys and check state; snapshot tests pin what the screen shows.

Everything is deterministic: a frozen clock, a seeded history in the embedded store, no refresh
timer (``live=False``: each change re-reads synchronously), and Textual pinned in pyproject.toml.
Update the SVGs after an intended change with ``pytest tests/test_app.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from tui.app import EventDashApp, HelpScreen
from tui.clock import FakeClock
from tui.engine import Engine
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import MemcachedStore, MemoryStore

START = 1_795_435_200.0  # 2026-11-23T08:00:00Z
IDS = ("INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo", "INF-ixpktk3itsk86", "INF-1bi5qk0zocqcz", "INF-8d1ovm2tx0kqe")


def make_app(history_seconds: int = 290, settings_path: Path | None = None) -> EventDashApp:
    """An app over ``history_seconds`` of seeded events at 40/s, flushed, on a frozen clock."""
    clock = FakeClock(START)
    settings = Settings(events_per_second=40, tracking_ids=IDS, backend="memory")
    engine = Engine(settings, MemoryStore(clock), clock=clock, seed=42, writer_id="writer-a")
    for second in range(history_seconds):
        clock.advance(1.0 + (second % 7) * 0.1)  # an uneven history, so the sparklines have shape
        engine.step()
    engine.flush()
    return EventDashApp(engine, clock=clock, live=False, settings_path=settings_path)


async def shown(pilot) -> None:  # type: ignore[no-untyped-def]
    pilot.app.refresh_now()
    await pilot.pause()


def cell(app: EventDashApp, table: str, row: str, column: str) -> str:
    return str(app.query_one(f"#{table}", DataTable).get_cell(row, column))


# -- pilot tests: keys change state ----------------------------------------------------------------


async def test_plus_and_minus_change_the_generators_rate() -> None:
    app = make_app(10)
    async with app.run_test() as pilot:
        await shown(pilot)
        await pilot.press("plus")
        assert app.engine.settings.events_per_second == 80
        assert app.engine._pacer.rate == 80
        await pilot.press("minus", "minus")
        assert app.engine.settings.events_per_second == 20


async def test_a_rate_out_of_range_is_refused_with_a_notice_not_a_crash() -> None:
    app = make_app(10)
    async with app.run_test() as pilot:
        for _ in range(15):  # 40 * 2**15 is over the 200,000 events/s limit
            await pilot.press("plus")
        assert app.engine.settings.events_per_second == 40 * 2**12
        assert any("at most 200,000" in n.message for n in app._notifications)


async def test_window_keys_change_the_window_of_the_summary_at_once() -> None:
    app = make_app(400)
    async with app.run_test() as pilot:
        await shown(pilot)
        before = int(cell(app, "types", "all", "events").replace(",", ""))
        await pilot.press("left_square_bracket")
        assert app.engine.settings.window_minutes == 4
        assert app.last is not None and app.last.view is not None
        assert app.last.view.window_seconds == 240
        after = int(cell(app, "types", "all", "events").replace(",", ""))
        assert after < before
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert app.last.view.window_seconds == 360
        for _ in range(6):
            await pilot.press("left_square_bracket")
        assert app.engine.settings.window_minutes == 1  # 0 is refused
        assert any("must be more than 0 minutes" in n.message for n in app._notifications)


async def test_space_pauses_generation_and_resumes_it() -> None:
    app = make_app(10)
    clock: FakeClock = app.clock  # type: ignore[assignment]
    async with app.run_test() as pilot:
        await pilot.press("space")
        generated = app.engine.status().generated
        clock.advance(5)
        app.engine.step()
        assert app.engine.status().generated == generated
        assert app.engine.paused
        await pilot.press("p")
        clock.advance(5)
        app.engine.step()
        assert app.engine.status().generated == generated + 200


async def test_quit_stops_the_generator_flushes_everything_and_exits_zero() -> None:
    app = make_app(10)
    clock: FakeClock = app.clock  # type: ignore[assignment]
    clock.advance(3)
    app.engine.step()  # counted, not yet flushed
    generated = app.engine.status().generated
    async with app.run_test() as pilot:
        await pilot.press("q")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert app.return_code == 0
    assert app.engine.paused
    assert app.engine.read_view().total == generated


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
        assert [c.value for c in tids.columns] == ["tid", "signup", "user-event", "review", "total"]


async def test_refresh_updates_cells_in_place_and_keeps_the_cursor() -> None:
    app = make_app(60)
    async with app.run_test() as pilot:
        await shown(pilot)
        tids = app.query_one("#tids", DataTable)
        tids.focus()
        await pilot.press("down", "down")
        key = tids.ordered_rows[tids.cursor_row].key
        app.clock.advance(20)  # type: ignore[attr-defined]
        app.engine.step()
        app.engine.flush()
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


# -- snapshots -------------------------------------------------------------------------------------


async def _ready(pilot) -> None:  # type: ignore[no-untyped-def]
    await shown(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_default_view(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=size, run_before=_ready)


def test_snapshot_after_rate_up_and_window_up(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["plus", "right_square_bracket"], terminal_size=(100, 30), run_before=_ready)


def test_snapshot_paused(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["space"], terminal_size=(100, 30), run_before=_ready)


def test_snapshot_help(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["question_mark"], terminal_size=(100, 30), run_before=_ready)


def test_snapshot_selected_type_and_all_types(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), press=["t", "t", "t"], terminal_size=(120, 30), run_before=_ready)


def test_snapshot_backend_down_header(snap_compare) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(START)
    down = Server("127.0.0.1", 1)  # nothing listens on port 1 of loopback: refused at once
    settings = Settings(tracking_ids=IDS, backend="memcached", memcached=MemcachedSettings((down,)))
    engine = Engine(settings, MemcachedStore([down], "x:"), clock=clock, seed=1, writer_id="writer-b")
    assert snap_compare(EventDashApp(engine, clock=clock, live=False), terminal_size=(100, 30), run_before=_ready)
