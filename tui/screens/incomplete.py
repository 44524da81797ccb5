"""The incomplete window, explained: each gap's buckets, their times and why they could not be read
whole, for the counts and for the distinct visitors. Opened with ``i`` while the type table's
border says "incomplete"."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.components.snapshot import Live
from tui.components.visitors import MARK, live_gaps, live_only_gaps, visitor_gaps
from tui.window import Gap, WindowView


def gaps_text(view: WindowView, live: Live | None = None) -> Text:
    """One line per gap, after a line saying what a gap means: for the counts, then for the
    visitors (a lost sketch leaves the counts whole, so the two lists are apart), then for the
    live visitors (read over ``live_minutes``, another span than the window)."""
    visitors, lost_live = visitor_gaps(view), live_gaps(live)
    text = Text()
    sketches = bool(visitors or lost_live)
    if view.incomplete or not sketches:
        text.append(f"{view.label}: counts are LOW by whatever these buckets held.\n\n", style="bold")
    if not view.incomplete:
        text.append("Every bucket of the window was read whole" + (": the counts are not low.\n" if sketches else ".\n"), style="green")
    _append_gaps(text, view.incomplete, view.bucket_seconds)
    if visitors:
        text.append(
            f"\n{view.label}: visitors (marked{MARK}) may be LOW by whoever these sketch values held.\n\n",
            style="bold",
        )
        _append_gaps(text, visitors, view.bucket_seconds)
    if live is not None and lost_live:
        only_live = live_only_gaps(view, live)
        whose = "these sketch values" if only_live else "the parts above"
        text.append(
            f"\nlive, last {live.seconds / 60:g} min: live visitors (marked{MARK}) may be LOW by whoever {whose} held.\n\n",
            style="bold",
        )
        _append_gaps(text, only_live, view.bucket_seconds)
    if view.incomplete:
        text.append("\nA writer that still holds these counts writes them back.", style="dim")
    if sketches:
        text.append("\nA lost sketch cannot be rebuilt from the counts: its figures stay marked until its buckets leave the window.", style="dim")
    text.append("\nPress escape to close.", style="dim")
    return text


def _append_gaps(text: Text, gaps: Sequence[Gap], bucket_seconds: int) -> None:
    for gap in gaps:
        part = gap.to_json(bucket_seconds)
        span = f"bucket {gap.first}" if gap.first == gap.last else f"buckets {gap.first}–{gap.last}"
        text.append(span, style="bold red")
        text.append(f"  {part['from']} → {part['to']}\n    {gap.why}\n")


class IncompleteScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,i,q", "dismiss", "close")]

    def __init__(self, view: WindowView, live: Live | None = None) -> None:
        super().__init__()
        self.view = view
        self.live = live

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="gaps"):
            yield Static(gaps_text(self.view, self.live))

    def on_mount(self) -> None:
        self.query_one("#gaps").border_title = "Incomplete window"
        self.query_one("#gaps").focus()
