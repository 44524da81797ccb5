"""The domain never imports the UI: generator, window math, stores, engine and settings work and
are tested without a screen, and the headless mode does not pay for loading Textual."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tui"
UI_MODULES = {"app.py", "web.py"}  # web.py serves the UI through textual-serve
UI_PACKAGES = {"screens", "components"}  # every module under tui/screens/ and tui/components/
DOMAIN = sorted(
    p for p in PACKAGE.rglob("*.py") if p.name not in UI_MODULES and p.name != "__main__.py" and p.parent.name not in UI_PACKAGES
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_modules_import_nothing_from_textual_or_the_ui() -> None:
    assert len(DOMAIN) >= 8
    for path in DOMAIN:
        for name in imported_modules(path):
            assert not name.startswith("textual"), f"{path.name} imports {name}"
            if path.name != "cli.py":  # the CLI opens the dashboard, lazily, only when asked
                assert name not in ("tui.app", "tui.widgets"), f"{path.name} imports {name}"


def test_importing_the_domain_and_the_cli_loads_no_textual() -> None:
    code = (
        "import sys, tui.cli, tui.engine, tui.events, tui.window, tui.settings, tui.store;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
