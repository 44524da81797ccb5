"""The ``/`` filter's input: one line above the tracking-id table, shown while typing."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterInput(Input):
    """Filters as you type; ``enter`` keeps the filter, ``escape`` clears it (both hand focus back
    to the table: the app does that on :class:`Input.Submitted` and :class:`FilterInput.Cleared`)."""

    BINDINGS = [Binding("escape", "clear_filter", "clear filter", id="filter-clear")]

    class Cleared(Message):
        """The user dropped the filter."""

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())
