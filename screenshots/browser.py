"""Regenerate ``screenshots/browser.png``: ``python screenshots/browser.py``.

The real ``eventdash web`` (seeded, embedded store) on a free loopback port, opened in Debian's
headless Chromium exactly as tests/test_web.py opens it; the shot is taken once the window holds
``EVENTS`` events, so a few buckets show in the sparklines. Nothing is edited by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.browser import open_in_chromium, web_server  # the test's server and browser
from tests.conftest import wait_until

RATE, EVENTS = 500, 12_000  # about 24 s of generation


def main() -> None:
    with web_server("--backend", "memory", "--seed", "1", "--rate", str(RATE)) as server, open_in_chromium(server.url, 1200, 760) as tab:
        tab.wait_for_text("INF-")
        generated = re.compile(r"([\d,]+) generated")

        def enough() -> bool:
            found = generated.search(tab.screen())
            return found is not None and int(found.group(1).replace(",", "")) >= EVENTS

        wait_until(enough, timeout=3 * EVENTS / RATE, what=f"{EVENTS:,} events generated")
        tab.page.screenshot(path=str(HERE / "browser.png"))
    print("screenshots/browser.png")


if __name__ == "__main__":
    main()
