"""The top line: the brand, where the counts live and whether that store is healthy, the time."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from tui.components.snapshot import Snapshot
from tui.components.unchanged import set_content


def store_words(backend: str, detail: str) -> str:
    """The store in plain words: the embedded store is a store, not "memory"."""
    if backend == "memory":
        return detail if detail.startswith("embedded store") else detail.replace("embedded", "embedded store", 1)
    return f"memcached {detail}"


class Header(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static("eventdash", id="brand")
        yield Static("", id="backend")
        yield Static("", id="clock")

    def show(self, snap: Snapshot) -> None:
        health, error = snap.health, snap.status.store_error
        text = store_words(health.backend, health.detail)
        if health.backend != "memory" and not health.ok:
            text += " · retrying"
        elif error is not None:
            text += " · last flush failed, retrying"
        backend = self.query_one("#backend", Static)
        set_content(backend, text)
        backend.set_class(not health.ok or error is not None, "-down")
        set_content(self.query_one("#clock", Static), time.strftime("%H:%M:%S UTC", time.gmtime(snap.now)))
