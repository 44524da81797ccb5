"""eventdash: live web-analytics event counts over a sliding window.

The package is split so that the domain (``events``, ``window``, ``store``, ``engine``,
``settings``) never imports Textual; only ``app`` and ``widgets`` do. ``tests/test_layering.py``
enforces that.
"""

__version__ = "0.1.0"

#: The three event types, in display order. ``signup`` is the sample's ``formsubmit`` event.
EVENT_TYPES: tuple[str, ...] = ("signup", "user-event", "review")
