"""The incomplete window, explained: each gap's buckets, their times and why they could not be read
whole. Opened with ``i`` while the type table's border says "incomplete"."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.window import WindowView


def gaps_text(view: WindowView) -> Text:
    """One line per gap, after a line saying what a gap means for the counts."""
    text = Text(
        f"{view.label}: counts are LOW by whatever these buckets held.\n\n",
        style="bold",
    )
    if not view.incomplete:
        text.append("Every bucket of the window was read whole.", style="green")
    for gap in view.incomplete:
        part = gap.to_json(view.bucket_seconds)
        span = (
            f"bucket {gap.first}"
            if gap.first == gap.last
            else f"buckets {gap.first}–{gap.last}"
        )
        text.append(f"{span}", style="bold red")
        text.append(f"  {part['from']} → {part['to']}\n    {gap.why}\n")
    text.append(
        "\nA writer that still holds these counts writes them back; press escape to close.",
        style="dim",
    )
    return text


class IncompleteScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,i,q", "dismiss", "close")]

    def __init__(self, view: WindowView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="gaps"):
            yield Static(gaps_text(self.view))

    def on_mount(self) -> None:
        self.query_one("#gaps").border_title = "Incomplete window"
        self.query_one("#gaps").focus()
