"""The alert history screen (``A``, or ``enter`` on a row of the alerts panel): the announced
transitions (fired, resolved) of one series, or of every series, oldest first with the cursor on
the newest, as :attr:`AnomalyStatus.history` keeps them. It reads the watch's status snapshot (no
I/O), again at every refresh while the dashboard is live, adding rows in place. Keys and how to
read it are in ``alerts.md`` beside this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.resources import files

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from tui.anomaly import FIRING, Alert, SeriesKey
from tui.anomaly.watch import AnomalyStatus
from tui.components.alert_marks import badge, cell_style
from tui.components.alerts_panel import ALL_IDS, ago
from tui.components.format import num
from tui.components.unchanged import set_content
from tui.screens.help import MarkdownScreen

HELP_FILE = "alerts.md"
#: (key, label); 120 columns fit them all.
COLUMNS = (
    ("when", "when (UTC)"), ("alert", "alert"), ("type", "type"), ("id", "tracking id"), ("since", "since"),
    ("observed", "observed"), ("expected", "expected"), ("reason", "reason"),
)


def help_markdown() -> str:
    """alerts.md, read from the package (package data, like help.md)."""
    return files("tui.screens").joinpath(HELP_FILE).read_text(encoding="utf-8")


def stamp(ms: int | None) -> str:
    """A bucket start with its date: an alert can fire one day and resolve (relearned) the next."""
    return "–" if ms is None else time.strftime("%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def transition_key(alert: Alert) -> str:
    """A transition's row key: its series, what happened and when (each happens once)."""
    return f"{alert.type}\t{alert.id or ''}\t{alert.state}\t{alert.fired_at}\t{alert.resolved_at}"


def transition_cells(alert: Alert) -> dict[str, Text | str]:
    """One announced transition: when it was announced, fired or resolved (and why: relearned),
    the series, and the bucket's count against the baseline's at that moment."""
    fired = alert.state == FIRING
    event = Text(" fired", style=cell_style(alert)) if fired else Text(" resolved", style="green")
    return {
        "when": stamp(alert.at_ms(alert.fired_at if fired else alert.resolved_at)),
        "alert": Text.assemble(badge(alert), event),
        "type": alert.type,
        "id": alert.id if alert.id is not None else Text(ALL_IDS, style="italic"),
        "since": stamp(alert.at_ms(alert.since)),
        "observed": num(round(alert.observed, 1), ","),
        "expected": num(round(alert.expected, 1), ","),
        "reason": Text(alert.reason or "–", style="bold" if alert.reason else "dim"),
    }


def title(series: SeriesKey | None, status: AnomalyStatus | None, shown: int, now: float) -> Text:
    """Whose transitions these are, how many, and the series' alert now if it has one."""
    if series is None:
        what = "every series"
    else:
        what = f"{series[0]} · {series[1] if series[1] is not None else ALL_IDS}"
    text = Text.assemble(("Alert history", "bold"), f" · {what} · {shown} transition{'s' if shown != 1 else ''}")
    if status is None:
        return text.append(" · anomaly detection is off", style="dim")
    active = [a for a in status.alerts if series is None or (a.type, a.id) == series]
    if series is not None and active:
        alert = active[0]
        since_ms = alert.at_ms(alert.since) or 0
        text.append(" · now ").append_text(badge(alert)).append(f" {alert.state} for {ago(now - since_ms / 1000)}")
    elif series is not None:
        text.append(" · no alert now", style="green")
    elif active:
        text.append(f" · {len(active)} active now")
    if not shown:
        text.append(" · none announced yet: an alert is listed once it fires", style="dim")
    return text


class AlertHistoryScreen(ModalScreen[None]):
    """See the module docstring. ``status`` gives the watch's latest snapshot (None: detection
    off); ``series`` is the alert's (type, id), or None for every series; ``live_seconds``: reread
    this often (None in tests, where the clock is frozen)."""

    BINDINGS = [
        Binding("question_mark", "help", "help", id="alerts-help", key_display="?"),
        Binding("escape,q,A", "dismiss", "close", id="alerts-close", key_display="esc"),
    ]

    def __init__(
        self,
        status: Callable[[], AnomalyStatus | None],
        now: Callable[[], float],
        series: SeriesKey | None,
        live_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.status = status
        self.now = now
        self.series = series
        self.live_seconds = live_seconds

    def compose(self) -> ComposeResult:
        yield Static("", id="alerts-title")
        yield DataTable(id="alerts-history", cursor_type="row", cursor_foreground_priority="renderable")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#alerts-history", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.show()
        table.focus()
        self.call_after_refresh(self._to_newest)  # once the table knows its height, so it scrolls there
        if self.live_seconds is not None:
            self.set_interval(self.live_seconds, self.show)

    def show(self) -> None:
        """Add the transitions announced since, drop those the history no longer keeps; a row,
        once announced, never changes, so rows are only added (at the end) or removed."""
        status = self.status()
        history = status.history if status is not None else ()
        wanted = {transition_key(a): a for a in history if self.series is None or (a.type, a.id) == self.series}
        table = self.query_one("#alerts-history", DataTable)
        for gone in [key for key in table.rows if key.value not in wanted]:
            table.remove_row(gone)
        at_end = table.cursor_row >= table.row_count - 1
        for key, alert in wanted.items():
            if key not in table.rows:
                table.add_row(*transition_cells(alert).values(), key=key)
        if at_end:
            self._to_newest()  # follow the news, as a log does
        set_content(self.query_one("#alerts-title", Static), title(self.series, status, len(wanted), self.now()))

    def _to_newest(self) -> None:
        table = self.query_one("#alerts-history", DataTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def action_help(self) -> None:
        self.app.push_screen(MarkdownScreen(help_markdown()))
