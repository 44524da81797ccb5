"""Regenerate the README's screenshots from the real app: ``python screenshots/make.py``.

The app runs headlessly over the same seeded, frozen-clock history as the snapshot tests, and
Textual's own ``save_screenshot`` writes each view as SVG. Nothing is edited by hand.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.test_app import make_app, run_for  # noqa: E402  (the seeded history the snapshots use)

VIEWS: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "dashboard": ((120, 40), ()),
    "dashboard-80x24": ((80, 24), ()),
    "all-types": ((120, 32), ("t", "t", "t")),
    "all-types-80x24": ((80, 24), ("t", "t", "t")),
    "paused-faster-wider": ((100, 30), ("plus", "right_square_bracket", "space")),
    "help": ((100, 34), ("question_mark",)),
}


async def shoot(name: str, size: tuple[int, int], keys: tuple[str, ...]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        app.refresh_now()
        run_for(app, 5)  # a few refreshes, so the 5 s rates and the trends have readings
        await pilot.press(*keys)
        await pilot.pause()
        app.save_screenshot(filename=f"{name}.svg", path=str(HERE))


async def main() -> None:
    for name, (size, keys) in VIEWS.items():
        await shoot(name, size, keys)
        print(f"screenshots/{name}.svg")


if __name__ == "__main__":
    asyncio.run(main())
