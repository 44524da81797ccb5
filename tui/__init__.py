"""eventdash: live web-analytics event counts over a sliding window.

The package is split so that the domain (``events``, ``window``, ``store``, ``pipeline``,
``settings``, ``headless``, ...) never imports Textual; only the UI does: ``app``, ``screens``,
``components`` and ``web``. The import-linter contract in ``pyproject.toml`` says which is which,
and ``tests/test_layering.py`` runs it.
"""

__version__ = "0.1.0"

#: The three event types, in display order. ``signup`` is the sample's ``formsubmit`` event.
EVENT_TYPES: tuple[str, ...] = ("signup", "user-event", "review")
