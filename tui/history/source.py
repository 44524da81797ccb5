"""Where a server's history reads come from: its store, and the prefix's layout agreed once."""

from __future__ import annotations

import threading

from tui.settings import Settings
from tui.store import Store, prefix_settings
from tui.store.layout import Layout


class HistorySource:
    """The store and its layout for queries. The layout is agreed with the prefix's meta key on the
    first query and kept: it follows from the settings and the meta key, which never change under a
    running process (a conflicting meta key is refused at start)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self._settings = settings
        self._layout: Layout | None = None
        self._lock = threading.Lock()

    def layout(self) -> Layout:
        """Raises StoreUnavailable (not kept: the next query asks again)."""
        with self._lock:
            if self._layout is None:
                self._layout = self.store.open_prefix(prefix_settings(self._settings), "reading the prefix's metadata for a query")
            return self._layout
