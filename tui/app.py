"""The Textual dashboard. The only module, with ``widgets``, that imports Textual.

The engine's writer thread generates and flushes; a thread worker reads the window, publishes the
summary keys and probes the store once per refresh, then posts an immutable :class:`Snapshot` as a
message. The UI thread only applies snapshots, so it never waits on memcached. Tables are updated
cell by cell inside ``batch_update()`` and never cleared on a refresh, so the cursor and scroll stay
where the user left them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Label, Markdown, Static

from tui import EVENT_TYPES
from tui.clock import Clock, SystemClock
from tui.engine import Engine, EngineStatus
from tui.settings import SettingsError, save_settings
from tui.store import Health, Store, StoreUnavailable
from tui.watch import StoreWatch
from tui.widgets import SparkBars
from tui.window import WindowView, window_label

MIN_WIDTH, MIN_HEIGHT = 80, 24
TALL_HEIGHT = 36
ALL = "all"  # the "all types" view of the tracking-id table


@dataclass(frozen=True)
class Snapshot:
    """Everything one refresh shows, read off the UI thread."""

    now: float
    view: WindowView | None
    status: EngineStatus
    health: Health
    read_error: str | None


class Refreshed(Message):
    """Posted by the read worker with a new snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class StoreChanged(Message):
    """Posted from the writer thread when flushes start failing or work again: refresh at once."""


HELP = """\
# eventdash — keys

| key | what it does |
|---|---|
| `+` / `-` | rate ×2 / ÷2 (takes effect within one refresh) |
| `]` / `[` | window one minute longer / shorter |
| `space` or `p` | pause / resume the generator (the display keeps refreshing) |
| `t` | next event type for the tracking-id table (signup → user-event → review → all types) |
| `tab` / arrows | move between the tables / rows; a row of the type table selects that type |
| `s` | sort tracking ids by count or by name |
| `w` | save the current rate and window to the settings file |
| `ctrl+p` | command palette: every key above, and the theme picker |
| `q` | quit: stop generating, flush every pending count, exit |

## What "last 5 min ±10 s" means

Events are counted in buckets of B seconds (10 by default) aligned to the clock. The window is the
current, still-filling bucket plus the N·60/B buckets before it. So every event of the last N minutes
is counted, plus up to one bucket of events that are at most B seconds older: the total is exact up
to that one bucket at the window's old edge, never more.

## Changing the window

Buckets are kept in the store for the window plus two buckets and a minute. Shortening the window
is exact at once. Lengthening it counts the older buckets that are still kept at once; beyond those,
the new window is only partly filled (its oldest part counts as empty) until time fills it.

Press `escape`, `?` or `q` to close this help.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Markdown(HELP, id="help")


class EventDashApp(App[int]):
    """The dashboard. ``live=False`` (tests) leaves refreshing to :meth:`refresh_now`."""

    CSS_PATH = "app.tcss"
    TITLE = "eventdash"
    BINDINGS = [
        Binding("plus,equals_sign", "faster", "rate×2", id="rate-up", key_display="+"),
        Binding("minus", "slower", "rate÷2", id="rate-down", key_display="-"),
        Binding("right_square_bracket", "wider", "win+1m", id="window-up", key_display="]"),
        Binding("left_square_bracket", "narrower", "win-1m", id="window-down", key_display="["),
        Binding("space,p", "toggle_pause", "pause", id="pause", key_display="space"),
        Binding("t", "next_type", "type", id="next-type"),
        Binding("s", "toggle_sort", "sort", id="sort", show=False),
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
        "save_settings": ("Save rate and window", "Write them to the settings file"),
        "help": ("Help", "Keys and what the ± approximation means"),
    }

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        settings_path: Path | None = None,
        live: bool = True,
        duration: float | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.store: Store = engine.store
        self.clock = clock or SystemClock()
        self.settings_path = settings_path
        self.live = live
        self.duration = duration
        self.selected = EVENT_TYPES[0]
        self.sort_by_count = True
        self.last: Snapshot | None = None
        self._watch = StoreWatch()

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="header"):
            yield Static("eventdash", id="brand")
            yield Static("", id="backend")
            yield Static("", id="clock")
        with Vertical(id="main"):
            with Horizontal(id="top"):
                with Vertical(id="left"):
                    yield DataTable(id="types", cursor_type="row", zebra_stripes=False)
                    yield Static("", id="details")
                yield DataTable(id="tids", cursor_type="row")
            with Vertical(id="sparks"):
                for etype in EVENT_TYPES:
                    with Horizontal(classes="spark-row"):
                        yield Label(etype, classes="spark-label")
                        yield SparkBars(id=f"spark-{etype}")
                        yield Label("", id=f"spark-value-{etype}", classes="spark-value")
        yield Static("", id="status")
        yield Static("", id="too-small")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        types = self.query_one("#types", DataTable)
        types.border_title = "Event types"
        for label, key in (("type", "type"), ("events", "events"), ("ev/s", "rate"), ("share", "share")):
            types.add_column(label, key=key)
        for etype in (*EVENT_TYPES, ALL):
            types.add_row(etype if etype != ALL else Text("all types", style="bold"), "", "", "", key=etype)
        self.query_one("#sparks").border_title = "Events per bucket"
        self._rebuild_tids()
        self._fit(self.size.width, self.size.height)
        if self.live:
            self.set_interval(self.engine.settings.refresh_seconds, self.refresh_data)
            self.engine.on_store_change = lambda: self.post_message(StoreChanged())  # thread-safe
            self.refresh_data()
        if self.duration is not None:
            self.set_timer(self.duration, lambda: self.exit(0))

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        """Below 80×24 the tables cannot fit: say so instead of drawing a broken layout."""
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "-too-small")
        self.screen.set_class(height >= TALL_HEIGHT, "-tall")  # room for 3-row sparklines
        self.query_one("#too-small", Static).update(
            f"eventdash needs at least {MIN_WIDTH}×{MIN_HEIGHT}; this terminal is {width}×{height}.\nEnlarge it, or press q to quit."
        )

    # -- reading (off the UI thread) ------------------------------------------------------------

    def take_snapshot(self) -> Snapshot:
        """Read the window, publish the summary keys, probe the store. Blocking: not for the UI thread."""
        health = self.store.health()
        view, error = None, None
        try:
            view = self.engine.refresh(series=True)
        except StoreUnavailable as exc:
            error = str(exc)
        return Snapshot(self.clock.time(), view, self.engine.status(), health, error)

    @work(thread=True, exclusive=True, group="read")
    def refresh_data(self) -> None:
        self.post_message(Refreshed(self.take_snapshot()))

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
        for notice in self._watch.observe(snap.health, snap.status.store_error or snap.read_error, snap.now):
            self.notify(notice.text, severity=notice.severity, timeout=8)
        with self.batch_update():
            self._show_header(snap)
            if snap.view is not None:
                self._show_types(snap.view)
                self._show_tids(snap.view)
                self._show_sparks(snap.view)
            self._show_status(snap)

    def _show_header(self, snap: Snapshot) -> None:
        health, error = snap.health, snap.status.store_error
        if health.backend == "memory":
            text = health.detail
        elif not health.ok:
            text = f"memcached {health.detail} · retrying"
        elif error is not None:
            text = f"memcached {health.detail} · last flush failed, retrying"
        else:
            text = f"memcached {health.detail}"
        backend = self.query_one("#backend", Static)
        backend.update(text)
        backend.set_class(not health.ok or error is not None, "-down")
        self.query_one("#clock", Static).update(time.strftime("%H:%M:%S UTC", time.gmtime(snap.now)))
        self._show_details(snap)

    def _show_details(self, snap: Snapshot) -> None:
        """The store panel: where the counts live and how the writer is doing."""
        settings, status = self.engine.settings, snap.status
        rows = [("store", snap.health.backend)]
        if snap.health.backend == "memcached":
            rows.append(("prefix", settings.memcached.key_prefix))
        rows.append(("writer", self.engine.writer_id if status.generating else "none (read-only)"))
        if status.restores:
            rows.append(("restores", f"{status.restores}: the store lost its data; buckets written back"))
        text = Text("\n").join(Text.assemble((f"{label:<9}", "bold"), value) for label, value in rows)
        if snap.read_error:
            text.append(f"\n{snap.read_error}", style="red")
        self.query_one("#details", Static).update(text)

    def _show_types(self, view: WindowView) -> None:
        table = self.query_one("#types", DataTable)
        total = view.total
        for etype in EVENT_TYPES:
            count = view.summary[etype].total
            table.update_cell(etype, "events", _num(count), update_width=True)
            table.update_cell(etype, "rate", _num(view.last_full_bucket_rate(etype), ".1f"))
            table.update_cell(etype, "share", _num(100 * count / total if total else 0, ".1f", "%"))
        table.update_cell(ALL, "events", _num(total, style="bold"), update_width=True)
        table.update_cell(ALL, "rate", _num(sum(view.last_full_bucket_rate(t) for t in EVENT_TYPES), ".1f", style="bold"), update_width=True)
        table.update_cell(ALL, "share", _num(100.0 if total else 0, ".1f", "%", style="bold"), update_width=True)
        table.border_subtitle = window_label(view.window_minutes, view.bucket_seconds)

    def _tid_counts(self, view: WindowView) -> dict[str, dict[str, int]]:
        """tracking id -> type -> count, over the configured ids and any other writer's."""
        tids = dict.fromkeys(self.engine.settings.tracking_ids)
        for etype in EVENT_TYPES:
            tids.update(dict.fromkeys(view.summary[etype].by_tracking_id))
        return {tid: {t: view.summary[t].by_tracking_id.get(tid, 0) for t in EVENT_TYPES} for tid in tids}

    def _rebuild_tids(self) -> None:
        """New columns for a new selection: the only time the table is cleared."""
        table = self.query_one("#tids", DataTable)
        table.clear(columns=True)
        if self.selected == ALL:
            columns = ("tid", *EVENT_TYPES, "total")
            labels = ("tracking id", *EVENT_TYPES, "total")
        else:
            columns, labels = ("tid", "events", "share"), ("tracking id", "events", "share")
        for label, key in zip(labels, columns):
            table.add_column(label, key=key)
        table.border_title = f"Tracking ids · {'all types' if self.selected == ALL else self.selected}"
        if self.last is not None and self.last.view is not None:
            self._show_tids(self.last.view)

    def _show_tids(self, view: WindowView) -> None:
        table = self.query_one("#tids", DataTable)
        counts = self._tid_counts(view)
        type_total = view.total if self.selected == ALL else view.summary[self.selected].total
        for tid, by_type in counts.items():
            if self.selected == ALL:
                values = {t: _num(by_type[t]) for t in EVENT_TYPES} | {"total": _num(sum(by_type.values()), style="bold")}
            else:
                count = by_type[self.selected]
                values = {"events": _num(count), "share": _num(100 * count / type_total if type_total else 0, ".1f", "%")}
            if tid not in table.rows:
                table.add_row(tid, *values.values(), key=tid)
            else:
                for column, value in values.items():
                    table.update_cell(tid, column, value, update_width=True)
        self._sort_tids(table, counts)

    def _sort_tids(self, table: DataTable[Any], counts: dict[str, dict[str, int]]) -> None:
        """Order by count (descending) or by name; keep the cursor on the row it was on."""

        def weight(tid: str) -> int:
            by_type = counts.get(tid, {})
            return sum(by_type.values()) if self.selected == ALL else by_type.get(self.selected, 0)

        def order(tid: str) -> tuple[int, str]:
            return (-weight(tid), tid) if self.sort_by_count else (0, tid)

        current = [str(row.key.value) for row in table.ordered_rows]
        wanted = sorted(current, key=order)
        if current == wanted:
            return
        cursor_key = current[table.cursor_row] if 0 <= table.cursor_row < len(current) else None
        table.sort("tid", key=lambda tid: order(str(tid)))
        if cursor_key is not None:
            table.move_cursor(row=table.get_row_index(cursor_key), animate=False, scroll=False)
        table.border_subtitle = "by count" if self.sort_by_count else "by name"

    def _show_sparks(self, view: WindowView) -> None:
        for etype in EVENT_TYPES:
            series = view.series[etype]
            self.query_one(f"#spark-{etype}", SparkBars).values = tuple(series)
            last_full = series[-2] if len(series) >= 2 else 0
            self.query_one(f"#spark-value-{etype}", Label).update(f"{last_full:,}/{view.bucket_seconds}s")
        self.query_one("#sparks").border_subtitle = f"{len(view.buckets)} buckets of {view.bucket_seconds} s, from zero"

    def _show_status(self, snap: Snapshot) -> None:
        """Most important first, so a narrow terminal cuts only the details at the end."""
        status = snap.status
        settings = self.engine.settings
        parts: list[Text] = []
        if not status.generating:
            parts.append(Text("read-only (--no-generate)", style="bold"))
        elif status.paused:
            parts.append(Text(f"⏸ paused · {_rate(status.configured_rate)}/s", style="bold yellow"))
        else:
            parts.append(Text.assemble(("● ", "bold green"), f"{_rate(status.configured_rate)}/s (measured {_rate(status.measured_rate)})"))
        parts.append(Text(window_label(settings.window_minutes, settings.bucket_seconds)))
        if status.generating:
            parts.append(Text(f"{status.generated:,} generated"))
        if status.store_error:
            parts.append(Text(f"{status.unflushed_buckets} buckets buffered, retrying", style="bold red"))
        elif status.last_flush_at is not None:
            flushed = time.strftime("%H:%M:%S", time.gmtime(status.last_flush_at))
            parts.append(Text(f"flushed {flushed} in {status.last_flush_ms or 0:.1f} ms"))
        if snap.health.evictions is not None:
            parts.append(Text(f"evictions {snap.health.evictions:,}", style="bold red" if snap.health.evictions else ""))
        self.query_one("#status", Static).update(Text(" │ ").join(parts))

    # -- keys ----------------------------------------------------------------------------------------

    def _change(self, what: str, change: Any) -> None:
        """Apply a live change through the same checks as the settings file; refuse with a notice."""
        try:
            change()
        except SettingsError as exc:
            self.notify(str(exc), title=f"{what} unchanged", severity="error")
            return
        if self.live:
            self.refresh_data()
        else:
            self.refresh_now()

    def action_faster(self) -> None:
        self._change("Rate", lambda: self.engine.set_rate(self.engine.settings.events_per_second * 2))

    def action_slower(self) -> None:
        self._change("Rate", lambda: self.engine.set_rate(self.engine.settings.events_per_second / 2))

    def action_wider(self) -> None:
        self._change("Window", lambda: self.engine.set_window(self.engine.settings.window_minutes + 1))

    def action_narrower(self) -> None:
        self._change("Window", lambda: self.engine.set_window(self.engine.settings.window_minutes - 1))

    def action_toggle_pause(self) -> None:
        self._change("Generator", self.engine.resume if self.engine.paused else self.engine.pause)

    def action_next_type(self) -> None:
        choices = (*EVENT_TYPES, ALL)
        self.select(choices[(choices.index(self.selected) + 1) % len(choices)])

    def select(self, selection: str) -> None:
        """Show ``selection``'s tracking ids (a type, or ``all``) and put the type cursor on it."""
        types = self.query_one("#types", DataTable)
        index = types.get_row_index(selection)
        if types.cursor_row != index:
            types.move_cursor(row=index, animate=False)
        if selection != self.selected:
            self.selected = selection
            self._rebuild_tids()

    @on(DataTable.RowHighlighted, "#types")
    def _type_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.select(str(event.row_key.value))

    def action_toggle_sort(self) -> None:
        self.sort_by_count = not self.sort_by_count
        if self.last is not None and self.last.view is not None:
            self._show_tids(self.last.view)

    def action_save_settings(self) -> None:
        if self.settings_path is None:
            self.notify("No settings file to save to", severity="warning")
            return
        try:
            save_settings(self.engine.settings, self.settings_path)
        except (SettingsError, OSError) as exc:
            self.notify(str(exc), title="Not saved", severity="error")
            return
        settings = self.engine.settings
        self.notify(
            f"rate {_rate(settings.events_per_second)}/s and window {_fmt_minutes(settings.window_minutes)} min saved to {self.settings_path}",
            title="Settings saved",
        )

    def action_quit(self) -> None:
        """Stop generating and flush every pending count (off the UI thread), then exit 0."""
        self.query_one("#status", Static).update(Text("stopping: flushing every pending count…", style="bold"))
        self._shut_down()

    @work(thread=True, exclusive=True, group="quit")
    def _shut_down(self) -> None:
        flushed = self.engine.stop()
        self.call_from_thread(self.exit, 0 if flushed else 1)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette (ctrl+p) offers every key of the dashboard beside Textual's own commands."""
        yield from super().get_system_commands(screen)
        for action, (title, help_text) in self.COMMANDS_HELP.items():
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))


def _num(value: float, spec: str = ",", suffix: str = "", style: str = "") -> Text:
    return Text(f"{value:{spec}}{suffix}", justify="right", style=style)


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def _fmt_minutes(minutes: float) -> str:
    return f"{minutes:g}"
