"""The help screen: keys, columns and what the window's approximation means, for the current
window. Its text lives in ``help.md`` beside this module (package data), so it reads as Markdown."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui.components.ranking import TOP_N
from tui.components.visitors import MARK, NOT_READ, error_percent
from tui.pipeline.reader import MAX_VISITOR_IDS
from tui.settings import Settings
from tui.window import OTHER_ID


def help_text(label: str, settings: Settings) -> str:
    """help.md with the current window (``label``: the view's, with its true ±), bucket, sketch
    size (its ``lg_k``: the visitors' ±), live span (whole buckets, as read) and the alerts'
    thresholds of ``settings`` filled in."""
    window_minutes, bucket_seconds, anomaly = settings.window_minutes, settings.bucket_seconds, settings.anomaly
    text = files("tui.screens").joinpath("help.md").read_text(encoding="utf-8")
    values = {
        "window": label,
        "top": str(TOP_N),
        "other": OTHER_ID,
        "minutes": f"{window_minutes:g}",
        "bucket": str(bucket_seconds),
        "full_buckets": str(int(window_minutes * 60) // bucket_seconds),
        "visitors_error": f"{error_percent(settings.sketch_lg_k):.1f}",
        "lg_k": str(settings.sketch_lg_k),
        "visitor_ids": f"{MAX_VISITOR_IDS:,}",
        "not_read": NOT_READ,
        "mark": MARK.strip(),
        "live_minutes": f"{settings.live_seconds / 60:g}",
        "k": f"{anomaly.k:g}",
        "for_buckets": str(anomaly.for_buckets),
        "keep_buckets": str(anomaly.keep_firing_for_buckets),
    }
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


class MarkdownScreen(ModalScreen[None]):
    """A scrolling page of Markdown. Scrolls with the arrows, page keys, home/end and the mouse wheel."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(self.text)

    def on_mount(self) -> None:
        self.query_one("#help").focus()


class HelpScreen(MarkdownScreen):
    """The dashboard's help, for the current window."""

    def __init__(self, label: str, settings: Settings) -> None:
        super().__init__(help_text(label, settings))
