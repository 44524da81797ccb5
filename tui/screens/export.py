"""``e``: export what is on screen. A small prompt asks for the format (CSV by default: ``enter``),
then the table is written to a new file (:func:`~tui.history.export.write_export`) and a notice
names the file, or says why it could not be written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.history.export_files import export_dir, write_export


class ExportPrompt(ModalScreen[str | None]):
    """Answers ``csv``, ``json`` or None (cancelled)."""

    BINDINGS = [
        Binding("enter,c", "choose('csv')", "CSV", id="export-csv"),
        Binding("j", "choose('json')", "JSON", id="export-json"),
        Binding("escape,q", "choose(None)", "cancel", id="export-cancel"),
    ]

    def __init__(self, what: str, rows: int) -> None:
        super().__init__()
        self.what = what
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = Text.assemble(
            ("Export ", "bold"), (self.what, "bold"), f" ({self.rows:,} rows)\n\n",
            ("enter", "bold"), " or ", ("c", "bold"), ": CSV    ", ("j", "bold"), ": JSON    ", ("escape", "bold"), ": cancel\n\n",
            (f"to {export_dir()}", "dim"),
        )
        yield Static(text, id="export-prompt")

    def on_mount(self) -> None:
        self.query_one("#export-prompt").border_title = "Export"

    def action_choose(self, fmt: str | None) -> None:
        self.dismiss(fmt)


def export(app: App[Any], render: Callable[[str], str], rows: int, what: str, label: str, now: Callable[[], float]) -> None:
    """Ask for the format, write what ``render(format)`` gives and notify with the file's path (or
    the error). ``rows``: how many, for the prompt and the notice."""

    def write(fmt: str | None) -> None:
        if fmt is None:
            return
        try:
            path = write_export(render(fmt), fmt, what, now())
        except OSError as exc:
            app.notify(str(exc), title="Not exported", severity="error")
            return
        app.notify(f"{label}: {rows:,} rows written to {path}", title="Exported", timeout=10)

    app.push_screen(ExportPrompt(label, rows), write)
