"""The Textual dashboard: the app holds the pipeline, the keys and the refresh loop; the widgets in
``tui.components`` each show their part of a :class:`~tui.components.snapshot.Snapshot`.

The pipeline's writer thread generates and flushes; a thread worker reads the window and the last
few buckets, publishes the summary keys and probes the store once per refresh, then posts an
immutable snapshot as a message. The UI thread only applies snapshots, so it never waits on
memcached. Tables are updated cell by cell inside ``batch_update()`` and never cleared on a
refresh, so the cursor and scroll stay where the user left them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from tui import EVENT_TYPES
from tui.clock import Clock, SystemClock
from tui.components.alert_marks import flags_for
from tui.components.alerts_panel import AlertsPanel
from tui.components.exports import summary_table, tids_table
from tui.components.filter_input import FilterInput
from tui.components.format import rate
from tui.components.header import Header
from tui.components.ingest_panel import IngestPanel
from tui.components.ranking import Ranking, rank
from tui.components.snapshot import Live, Recent, Snapshot
from tui.components.sparklines import Sparks
from tui.components.status import StatusLine
from tui.components.store_panel import MIN_WIDTH as PANEL_WIDTH
from tui.components.store_panel import StorePanel
from tui.components.tids_table import TidsTable, preferred_extras
from tui.components.types_table import ALL, TypesTable
from tui.components.visitors import live_gaps, visitor_gaps
from tui.history.export_files import render
from tui.history.source import HistorySource
from tui.pipeline import Pipeline
from tui.rates import RATE_SPAN_SECONDS, RateMeter
from tui.screens.alerts import AlertHistoryScreen
from tui.screens.export import export
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen
from tui.screens.incomplete import IncompleteScreen
from tui.settings import SettingsError, save_settings
from tui.shutdown import describe_crash
from tui.store import Store, StoreUnavailable
from tui.watch import StoreWatch
from tui.window import WindowView, bucket_of, window_label

if TYPE_CHECKING:  # aiohttp is loaded only with --listen
    from tui.service.embedded import EmbeddedServer

MIN_WIDTH, MIN_HEIGHT = 80, 24
#: The sparklines' least height (app.tcss): below it they give way to the alerts panel.
SPARKS_MIN_HEIGHT = 6
#: Textual's own palette entry that opens its key panel; ours ("Help") already lists every key.
TEXTUAL_KEYS_COMMAND = "Keys"
#: A by-id read of the window slower than this is not repeated every refresh (see _read_window) ...
BY_ID_FAST_SECONDS = 0.1
#: ... but only as often as keeps such reads to this share of the time (a second every 20 s).
BY_ID_SHARE = 0.05
#: A read of the live visitors slower than this is not repeated every refresh (see _live_for) ...
LIVE_FAST_SECONDS = 0.02
#: ... but only as often as keeps it to this share of the time: 200 ranked ids at 100,000 ids took
#: ~90 ms, 9 % of a core every second, for a figure over 7 minutes that moves slowly.
LIVE_SHARE = 0.01


class Refreshed(Message):
    """Posted by the read worker with a new snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class StoreChanged(Message):
    """Posted from the writer thread when flushes start failing or work again: refresh at once."""


class EventDashApp(App[int]):
    """The dashboard. ``live=False`` (tests) leaves refreshing to :meth:`refresh_now`."""

    CSS_PATH = "app.tcss"
    TITLE = "eventdash"
    BINDINGS = [
        Binding("plus,equals_sign", "faster", "rate×2", id="rate-up", key_display="+"),
        Binding("minus", "slower", "rate÷2", id="rate-down", key_display="-"),
        Binding("right_square_bracket", "wider", "win+", id="window-up", key_display="]"),
        Binding("left_square_bracket", "narrower", "win-", id="window-down", key_display="["),
        # One key, two bindings: check_action shows the one that applies, so the footer says what
        # space will do now.
        Binding("space,p", "pause", "pause", id="pause", key_display="space"),
        Binding("space,p", "resume", "resume", id="resume", key_display="space"),
        Binding("t", "next_type", "type", id="next-type"),
        Binding("s", "toggle_sort", "sort", id="sort"),
        Binding("slash", "filter", "find", id="filter", key_display="/"),
        Binding("escape", "clear_filter", "clear /", id="clear-filter", show=False),
        Binding("i", "incomplete", "gaps", id="incomplete"),
        Binding("h", "history", "history", id="history", show=False),  # as e: listed in the panel
        # no room in the footer either: the alerts panel's border names both
        Binding("a", "toggle_alerts", "alerts", id="alerts", show=False),
        Binding("A", "alert_history", "alert history", id="alert-history", show=False),
        Binding("e", "export", "export", id="export", show=False),  # no room in the footer at 80 columns: in the panel
        Binding("w", "save_settings", "save", id="save", show=False),
        Binding("question_mark", "help", "help", id="help", key_display="?"),
        Binding("q", "quit", "quit", id="quit"),
    ]
    #: Palette entries: action -> (title, help).
    COMMANDS_HELP: dict[str, tuple[str, str]] = {
        "faster": ("Rate ×2", "Double the generation rate"),
        "slower": ("Rate ÷2", "Halve the generation rate"),
        "wider": ("Window +1 min", "Lengthen the window by one minute"),
        "narrower": ("Window -1 min", "Shorten the window by one minute"),
        "toggle_pause": ("Pause / resume", "Stop or restart the generator; the display keeps refreshing"),
        "next_type": ("Next event type", "Show the next type's tracking ids (or all types)"),
        "toggle_sort": ("Sort tracking ids", "By count or by name"),
        "filter": ("Find tracking ids", "Filter by part of an id: every id of the type is searched, not only the top"),
        "incomplete": ("Incomplete window", "Which buckets (or visitor sketches) of the window could not be read, and why"),
        "toggle_alerts": ("Alerts panel", "Show or hide the active alerts (shown by itself while one fires)"),
        "alert_history": ("Alert history", "When the selected alert (or every alert) fired and resolved, observed against expected"),
        "history": ("History", "The selected type's (or tracking id's) events per minute, hour, ... over the last hour, day, week"),
        "export": ("Export table", "Write the focused table (summary or tracking ids, with the filter) to a CSV or JSON file"),
        "save_settings": ("Save rate and window", "Write them to the settings file"),
        "help": ("Help", "Every key, the columns, and what the ± approximation means"),
    }

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        clock: Clock | None = None,
        settings_path: Path | None = None,
        live: bool = True,
        duration: float | None = None,
        by_id_fast_seconds: float = BY_ID_FAST_SECONDS,
        ingest: EmbeddedServer | None = None,
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        #: ``--listen``: the in-process server feeding the same writer (its panel shows what it takes in).
        self.ingest = ingest
        self.store: Store = pipeline.store
        self.clock = clock or SystemClock()
        self.settings_path = settings_path
        self.live = live
        self.duration = duration
        self.last: Snapshot | None = None
        self.meter: RateMeter[tuple[str, str]] = RateMeter()
        self._watch = StoreWatch()
        #: One line naming an unexpected failure inside the dashboard (None while it works).
        self.failure: str | None = None
        #: The last by-id read of the window and when it was read (wall time); see _read_window.
        self._by_id: tuple[WindowView, float] | None = None
        self._by_id_due = 0.0
        self._ids_kept = False  # the last refresh kept the counts by id of an earlier one
        self._reading = threading.Lock()  # held by the refresh that is reading
        self._ranked: tuple[tuple[int, str, str], Ranking] | None = None  # (for which read and view, the ranking)
        self.by_id_fast_seconds = by_id_fast_seconds
        #: The last live read and when (monotonic) it is due again; see _live_for.
        self._live: Live | None = None
        self._live_due = 0.0

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(id="header")
        with Vertical(id="main"):
            with Horizontal(id="top"):
                with Vertical(id="left"):
                    yield TypesTable(id="types", cursor_type="row")
                    yield StorePanel("", id="details")
                    if self.ingest is not None:
                        yield IngestPanel("", id="ingest")
                with Vertical(id="right"):
                    yield FilterInput(placeholder="part of a tracking id (enter: keep, escape: clear)", id="filter", compact=True)
                    yield TidsTable(id="tids")
            yield AlertsPanel(id="alerts")
            yield Sparks(id="sparks")
        yield StatusLine("", id="status")
        yield Static("", id="too-small")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def selected(self) -> str:
        """The type whose tracking ids are shown, or ``all``."""
        return self.query_one(TidsTable).selected

    @property
    def configured_ids(self) -> tuple[str, ...]:
        """Ids listed at zero before their first event: the generator's list, unless it makes its own."""
        settings = self.pipeline.settings
        return () if settings.generated_ids else settings.tracking_ids

    @property
    def sort_by_count(self) -> bool:
        return self.query_one(TidsTable).sort_by_count

    def on_mount(self) -> None:
        self._tids = self.query_one(TidsTable)  # read by the worker thread: selection and filter
        for table in (self._tids, self.query_one(TypesTable)):
            table.lg_k = self.pipeline.settings.sketch_lg_k  # the ± in the visitors column's tip
        self._fit(self.size.width, self.size.height)
        if self.live:
            self.set_interval(self.pipeline.settings.refresh_seconds, self.refresh_data)
            self.pipeline.writer.on_store_change = lambda: self.post_message(StoreChanged())  # thread-safe
            if self.ingest is not None:
                self.set_interval(self.pipeline.settings.refresh_seconds, self.show_ingest)
            self.refresh_data()
        if self.duration is not None:
            self.set_timer(self.duration, lambda: self.exit(0))

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        """Below 80×24 the tables cannot fit: say so instead of drawing a broken layout."""
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "-too-small")
        self.query_one("#too-small", Static).update(
            f"eventdash needs at least {MIN_WIDTH}×{MIN_HEIGHT}; this terminal is {width}×{height}.\nEnlarge it, or press q to quit."
        )
        self._size_columns(width)

    def _size_columns(self, screen_width: int | None = None) -> None:
        """The left column is as wide as the type table needs (and its key hints below). The type
        table's rate is shown if the tracking-id table's counts, visitors and live visitors still
        fit beside it, its share if the id's share, rate and trend do too (at 80 columns both give
        way to the visitors columns, and the ids' live column to those of a type; at 120 the share
        gives way to the trends). When the tracking-id matrix (all
        types) cannot fit beside even the narrowest type table, the matrix takes the whole width:
        it has a column per type. ``screen_width``: the new one while a resize is handled
        (``self.size`` is still the old one then)."""
        screen_width = self.size.width if screen_width is None else screen_width
        types, tids = self.query_one(TypesTable), self.query_one(TidsTable)
        left = self.query_one("#left")
        view = self.last.view if self.last is not None else None
        needed = 0
        if view is not None and tids.ranking is not None:
            # the live column too: it ranks above the type table's rate and share
            needed = tids.base_width(tids.ranking.rows, view) + tids.live_cells() + tids.spare(len(tids.ranking.rows)) + 2  # its borders
        room = screen_width - needed
        types.fit((room, room - preferred_extras(tids.selected)))  # its rate, then its share
        width = max(types.content_width, PANEL_WIDTH)
        if left.styles.width is None or left.styles.width.value != width:
            left.styles.width = width
        matrix_only = False
        if tids.selected == ALL and needed:
            matrix_only = width + needed > screen_width
        if matrix_only and types.has_focus:
            tids.focus()
        self.screen.set_class(matrix_only, "-matrix-only")

    def _room_for_alerts(self) -> None:
        """On a short terminal (80×24 with two alerts) the sparklines give way to the alerts panel
        while it is shown, rather than both being cut: the alerts are what matters then."""
        panel = self.query_one(AlertsPanel)
        room = self.query_one("#main").size.height - self.query_one("#top").outer_size.height
        panel.screen.set_class(panel.shown and room - panel.height_needed < SPARKS_MIN_HEIGHT, "-alerts-over-sparks")  # not a modal's

    # -- reading (off the UI thread) ------------------------------------------------------------

    def take_snapshot(self) -> Snapshot:
        """Read the window and the last few buckets, publish the summary keys, probe the store.
        Blocking: not for the UI thread."""
        health = self.store.health()
        view, recent, error, ranking, live = None, None, None, None, None
        try:
            view = self._read_window()
            if not self._ids_kept:  # per-id rates read by id too: with the counts, not in between
                recent = self._read_recent(view.as_of, view.bucket_seconds)
        except StoreUnavailable as exc:
            error = str(exc)
        if view is not None:  # the top ids, ranked here rather than on the UI thread, once per by-id read
            wanted = (id(self._by_id[0]) if self._by_id else 0, self._tids.selected, self._tids.needle)
            if self._ranked is None or self._ranked[0] != wanted or not self._ids_kept:
                self._ranked = (wanted, rank(view, self._tids.selected, self._tids.needle, self.configured_ids))
            ranking = self._ranked[1]
            try:
                live = self._live_for(ranking)
            except StoreUnavailable as exc:
                error = error or str(exc)
        watch = self.pipeline.anomalies
        if watch is not None:  # judges the buckets closed since the last refresh (none, most refreshes)
            try:
                watch.poll()
            except StoreUnavailable as exc:
                error = error or str(exc)
        anomalies = watch.status() if watch is not None else None
        return Snapshot(self.clock.time(), view, recent, self.pipeline.status(), health, error, ranking, live, anomalies)

    def _live_for(self, ranking: Ranking) -> Live:
        """The live visitors of the ranked ids: read every refresh while that is quick; a slow read
        (hundreds of ranked ids at 100,000) is kept until it would take at most :data:`LIVE_SHARE`
        of the time, unless the ranking now shows ids it did not read (another type or filter)."""
        now = self.clock.monotonic()
        kept = self._live
        if kept is None or now >= self._live_due or not kept.ids.issuperset(ranking.rows) or kept.seconds != self.pipeline.settings.live_seconds:
            kept = self._live = self._read_live(ranking)
            took = self.clock.monotonic() - now
            self._live_due = now + (took / LIVE_SHARE if took > LIVE_FAST_SECONDS else 0.0)
        return kept

    def _read_live(self, ranking: Ranking) -> Live:
        """Distinct visitors over ``live_minutes`` (whole buckets, as the API's /live reads them),
        every type united: over every id, and for the ranked ids only (at most TOP_N, in one round
        trip), so the cost grows with the rows shown, not with the prefix's ids. Read apart from
        the window (as often as :meth:`_live_for` says): the span is minutes, not the window, so
        the window's kept by-id read cannot stand in for it."""
        seconds = self.pipeline.settings.live_seconds
        ids = list(ranking.rows)
        read = self.pipeline.reader.read_visitors(ids, EVENT_TYPES, seconds, total=True, per_series=False)
        return Live(read, frozenset(ids), seconds)

    def _read_window(self) -> WindowView:
        """The window by id, and its per-bucket series. Reading by id grows with the ids in the
        window (about a second at 100,000); the series does not. So when a by-id read is slow, it
        is repeated only once it would take at most :data:`BY_ID_SHARE` of the time, and the
        refreshes in between read the series alone and keep the last counts by id (their time is
        on the tracking-id table). Below ``by_id_fast_seconds`` every refresh reads both. The
        distinct visitors are read with the counts by id (they need them as evidence) and kept
        with them."""
        now = self.clock.monotonic()
        if self._by_id is None or now >= self._by_id_due or self._by_id[0].window_seconds != self.pipeline.settings.window_seconds:
            started = time.perf_counter()
            full = self.pipeline.reader.refresh(series=True, visitors=True)
            took = time.perf_counter() - started
            self._by_id = (full, self.clock.time())
            self._by_id_due = now + (took / BY_ID_SHARE if took > self.by_id_fast_seconds else 0.0)
            self._ids_kept = False
            return full
        self._ids_kept = True
        cached, _ = self._by_id
        fresh = self.pipeline.reader.read_view(series=True, ids=False)
        gaps = tuple(sorted(set(cached.incomplete) | set(fresh.incomplete), key=lambda g: (g.first, g.why)))
        return dataclasses.replace(cached, as_of=fresh.as_of, buckets=fresh.buckets, series=fresh.series, incomplete=gaps)

    @property
    def ids_as_of(self) -> float | None:
        """When the counts by id on screen were read, if the last refresh kept them."""
        return self._by_id[1] if self._by_id is not None and self._ids_kept else None

    def _read_recent(self, now: float, bucket_seconds: int) -> Recent:
        """Every writer's counts per tracking id in the buckets the rate meter compares: those that
        cover the last rate span, one spare for a late flush, and the current one."""
        current = bucket_of(int(now * 1000), bucket_seconds)
        buckets = range(current - ceil(RATE_SPAN_SECONDS / bucket_seconds) - 1, current + 1)
        counts = self.pipeline.reader.read_buckets(buckets)
        return {
            b: {(t, tid): n for t, by_tid in counts.get(b, {}).items() for tid, n in by_tid.items()}
            for b in buckets
        }

    @work(thread=True, group="read")
    def refresh_data(self) -> None:
        """One read at a time: a refresh due while a slow read runs (the first by-id read of a
        window of 100,000 ids takes seconds) is skipped, never started beside it, so slow reads
        cannot pile up and hold a core."""
        if not self._reading.acquire(blocking=False):
            return
        try:
            snapshot = self.take_snapshot()
        finally:
            self._reading.release()
        self.post_message(Refreshed(snapshot))

    def refresh_now(self) -> None:
        """Read and show synchronously (tests and snapshots, where the clock and store are fixed)."""
        self.apply(self.take_snapshot())

    def on_refreshed(self, message: Refreshed) -> None:
        self.apply(message.snapshot)

    def on_store_changed(self, _: StoreChanged) -> None:
        self.refresh_data()

    # -- showing a snapshot ------------------------------------------------------------------------

    def apply(self, snap: Snapshot) -> None:
        self.last = snap
        if snap.recent is not None:
            self.meter.observe(snap.now, snap.recent)
        for notice in self._watch.observe(snap.health, snap.status.store_error or snap.read_error, snap.now):
            self.notify(notice.text, severity=notice.severity, timeout=8)
        with self.batch_update():
            self.query_one(Header).show(snap)
            self.query_one(StorePanel).show(snap, self.pipeline)
            flags = flags_for(snap.anomalies.alerts if snap.anomalies is not None else (), self.size.width)
            self.query_one(AlertsPanel).show(snap.anomalies, snap.now, flags.short)
            if snap.view is not None:
                self.query_one(TypesTable).show(snap.view, self.meter, snap.live, flags)
                tids = self.query_one(TidsTable)
                tids.flags = flags
                tids.ids_as_of = self.ids_as_of  # counts by id are read less often at many ids
                tids.show(snap.view, self.meter, self.configured_ids, snap.ranking, snap.live)
                self.query_one(Sparks).show(snap.view, self.meter)
            self.query_one(StatusLine).show(snap)
            self._size_columns()
        self.call_after_refresh(self._room_for_alerts)  # with the tables' new heights

    # -- keys ----------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer pause or resume, whichever applies, so the footer names what space does now."""
        if action == "pause":
            return not self.pipeline.paused
        if action == "resume":
            return self.pipeline.paused
        if action == "clear_filter":
            return bool(self._tids.needle)
        if action == "incomplete":
            view = self.last.view if self.last is not None else None
            live = self.last.live if self.last is not None else None
            return view is not None and bool(view.incomplete or visitor_gaps(view) or live_gaps(live))
        return True

    def _change(self, what: str, change: Callable[[], None]) -> None:
        """Apply a live change through the same checks as the settings file; refuse with a notice."""
        try:
            change()
        except SettingsError as exc:
            self.notify(str(exc), title=f"{what} unchanged", severity="error")
            return
        self.refresh_bindings()
        if self.live:
            self.refresh_data()
        else:
            self.refresh_now()

    def action_faster(self) -> None:
        self._change("Rate", lambda: self.pipeline.set_rate(self.pipeline.settings.events_per_second * 2))

    def action_slower(self) -> None:
        self._change("Rate", lambda: self.pipeline.set_rate(self.pipeline.settings.events_per_second / 2))

    def action_wider(self) -> None:
        self._change("Window", lambda: self.pipeline.set_window(self.pipeline.settings.window_minutes + 1))

    def action_narrower(self) -> None:
        self._change("Window", lambda: self.pipeline.set_window(self.pipeline.settings.window_minutes - 1))

    def action_pause(self) -> None:
        self._change("Generator", self.pipeline.pause)

    def action_resume(self) -> None:
        self._change("Generator", self.pipeline.resume)

    def action_toggle_pause(self) -> None:
        """The palette's single entry for both."""
        self._change("Generator", self.pipeline.resume if self.pipeline.paused else self.pipeline.pause)

    def action_next_type(self) -> None:
        choices = (*EVENT_TYPES, ALL)
        self.select(choices[(choices.index(self.selected) + 1) % len(choices)])

    def select(self, selection: str) -> None:
        """Show ``selection``'s tracking ids (a type, or ``all``) and put the type cursor on it."""
        types = self.query_one(TypesTable)
        index = types.get_row_index(selection)
        if types.cursor_row != index:
            types.move_cursor(row=index, animate=False)
        self.query_one(TidsTable).select(selection)
        self._size_columns()

    @on(DataTable.RowHighlighted, "#types")
    def _type_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.select(str(event.row_key.value))

    def action_toggle_sort(self) -> None:
        self.query_one(TidsTable).toggle_sort()

    # -- the / filter -------------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter's input above the tracking-id table, with the current filter, and type."""
        self.query_one("#right").add_class("-filtering")
        self.query_one(FilterInput).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._tids.set_filter(event.value.strip())
        self._size_columns()

    @on(Input.Submitted, "#filter")
    def _filter_kept(self, _: Input.Submitted) -> None:
        self._close_filter()

    @on(FilterInput.Cleared)
    def _filter_cleared(self, _: FilterInput.Cleared) -> None:
        self._close_filter()

    def action_clear_filter(self) -> None:
        """``escape`` on the table drops a kept filter too."""
        self.query_one(FilterInput).action_clear_filter()

    def _close_filter(self) -> None:
        self.query_one("#right").remove_class("-filtering")
        self._tids.focus()
        self.refresh_bindings()

    def action_incomplete(self) -> None:
        if self.last is not None and self.last.view is not None:
            self.push_screen(IncompleteScreen(self.last.view, self.last.live))

    def action_history(self) -> None:
        """``h``: the selected type's history (every type's for "all types"): of the id under the
        cursor while the tracking-id table has focus, else of all its ids."""
        tids, row = self._tids, self._tids.cursor_row
        tid = str(tids.ordered_rows[row].key.value) if tids.has_focus and 0 <= row < tids.row_count else None
        source = HistorySource(self.store, self.pipeline.settings)
        live = self.pipeline.settings.refresh_seconds if self.live else None
        self.push_screen(HistoryScreen(source, self.clock.time, None if self.selected == ALL else self.selected, tid, live))

    def action_toggle_alerts(self) -> None:
        self.query_one(AlertsPanel).toggle()
        self._room_for_alerts()

    def action_alert_history(self) -> None:
        """``A``: the transitions of the alert under the alerts panel's cursor, else of every alert."""
        watch = self.pipeline.anomalies
        live = self.pipeline.settings.refresh_seconds if self.live else None
        series = self.query_one(AlertsPanel).selected()
        self.push_screen(AlertHistoryScreen(watch.status if watch is not None else lambda: None, self.clock.time, series, live))

    @on(DataTable.RowSelected, "#alerts-table")
    def _alert_chosen(self, _: DataTable.RowSelected) -> None:
        """``enter`` on a row of the alerts panel: that alert's history."""
        self.action_alert_history()

    def action_export(self) -> None:
        """``e``: the type table while it has focus, else the tracking-id table with its filter."""
        view, ranking = self.last.view if self.last else None, self._tids.ranking
        if view is None or ranking is None:
            self.notify("Nothing read yet to export", severity="warning")
        elif self.query_one(TypesTable).has_focus:
            table = summary_table(view, self.meter)
            export(self, partial(render, table), len(table.rows), "summary", "the summary", self.clock.time)
        else:
            live = self.last.live if self.last is not None else None
            table = tids_table(view, ranking, [str(row.key.value) for row in self._tids.ordered_rows], live)
            what = "all types" if ranking.selection == ALL else ranking.selection
            export(self, partial(render, table), len(table.rows), f"tracking-ids-{ranking.selection}", f"tracking ids of {what}", self.clock.time)

    def action_save_settings(self) -> None:
        if self.settings_path is None:
            self.notify("No settings file to save to", severity="warning")
            return
        try:
            save_settings(self.pipeline.settings, self.settings_path)
        except (SettingsError, OSError) as exc:
            self.notify(str(exc), title="Not saved", severity="error")
            return
        settings = self.pipeline.settings
        self.notify(
            f"rate {rate(settings.events_per_second)}/s and window {settings.window_minutes:g} min saved to {self.settings_path}",
            title="Settings saved",
        )

    def action_quit(self) -> None:
        """Stop generating and flush every pending count (off the UI thread), then exit 0."""
        self.query_one(StatusLine).update(Text("stopping: flushing every pending count…", style="bold"))
        self._shut_down()

    def show_ingest(self) -> None:
        """The ingest panel: the server's counters now (no I/O) and the lag from the last read."""
        if self.ingest is not None:
            view = self.last.view if self.last is not None else None
            self.query_one(IngestPanel).show(self.ingest.reading(), None if view is None else view.lag_seconds)

    @work(thread=True, exclusive=True, group="quit")
    def _shut_down(self) -> None:
        if self.ingest is not None:
            self.ingest.stop()  # 503 from now on, requests in flight finish: nothing after the last flush
        flushed = self.pipeline.stop()
        self.call_from_thread(self.exit, 0 if flushed else 1)

    def _handle_exception(self, error: Exception) -> None:
        """Textual would print a long traceback when the app closes; a user gets one line naming the
        failure instead (the traceback goes to the crash log), and the CLI flushes and exits 1.
        This overrides a private hook of Textual's, which is pinned in pyproject.toml."""
        self.failure = describe_crash("the dashboard", error)
        super()._handle_exception(error)
        self._exit_renderables.clear()

    def action_help(self) -> None:
        settings = self.pipeline.settings
        view = self.last.view if self.last is not None else None
        if view is not None and view.window_seconds == settings.window_seconds:
            label = view.label  # the true ±, wider where the old edge rounds to a coarser level
        else:
            label = window_label(settings.window_minutes, settings.bucket_seconds)
        self.push_screen(HelpScreen(label, settings))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette (ctrl+p) offers every key of the dashboard beside Textual's own commands,
        with one help entry: ours, not Textual's key panel as well."""
        yield from (c for c in super().get_system_commands(screen) if c.title != TEXTUAL_KEYS_COMMAND)
        for action, (title, help_text) in self.COMMANDS_HELP.items():
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))
