"""eventdash: live web-analytics event counts over a sliding window.

The package is split so that the domain (``events``, ``window``, ``store``, ``pipeline``,
``settings``, ``headless``, ...) never imports Textual; only the UI does: ``app``, ``screens``,
``components`` and ``web``. The import-linter contract in ``pyproject.toml`` says which is which,
and ``tests/test_layering.py`` runs it.
"""

__version__ = "0.1.0"

#: The three event types, in display order. ``signup`` is the sample's ``formsubmit`` event.
EVENT_TYPES: tuple[str, ...] = ("signup", "user-event", "review")

#: The DOM interactions a tracker script reports; each counts as a ``user-event``.
TRACKER_ACTIONS: tuple[str, ...] = (
    "click", "dblclick", "contextmenu", "scroll", "pageview", "mousemove", "hover",
    "focus", "blur", "input", "change", "submit", "keypress", "keydown", "keyup", "copy", "paste",
)  # fmt: skip
#: A posted ``value.event`` -> its counted type, unless the settings' ``event_types`` say otherwise.
#: ``formsubmit`` is the brief's sign-up sample, ``click`` its user-event sample.
DEFAULT_EVENT_TYPES: dict[str, str] = {"formsubmit": "signup", "review": "review", **{a: "user-event" for a in TRACKER_ACTIONS}}
