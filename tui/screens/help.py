"""The help screen: keys, columns and what the window's approximation means, for the current
window. Its text lives in ``help.md`` beside this module (package data), so it reads as Markdown."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui.window import window_label


def help_text(window_minutes: float, bucket_seconds: int) -> str:
    """help.md with the current window and bucket filled in."""
    text = files("tui.screens").joinpath("help.md").read_text(encoding="utf-8")
    values = {
        "window": window_label(window_minutes, bucket_seconds),
        "minutes": f"{window_minutes:g}",
        "bucket": str(bucket_seconds),
        "full_buckets": str(int(window_minutes * 60) // bucket_seconds),
    }
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


class HelpScreen(ModalScreen[None]):
    """Scrolls with the arrows, page keys, home/end and the mouse wheel."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def __init__(self, window_minutes: float, bucket_seconds: int) -> None:
        super().__init__()
        self.text = help_text(window_minutes, bucket_seconds)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(self.text)

    def on_mount(self) -> None:
        self.query_one("#help").focus()
