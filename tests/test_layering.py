"""The domain never imports the UI: generator, window math, stores, pipeline and settings work and
are tested without a screen, and the headless mode does not pay for loading Textual.

The contract is declared for import-linter in pyproject.toml (``[tool.importlinter]``); import-linter
builds the import graph with grimp, which sees relative and function-level imports too, so a lazy
``from . import app`` inside a function breaks it. These tests run it, so CI runs it through pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tui.settings import tomllib

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tui"
#: Modules that may import Textual: the dashboard's screens and widgets, and its browser face.
UI_MODULES = {"tui.app", "tui.screens", "tui.components", "tui.web"}
TEXTUAL = {"textual", "textual_serve", "textual_plotext"}


def contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def module_names() -> set[str]:
    """Every module of the ``tui`` package, by dotted name (packages by their own name)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def declared(patterns: list[str], name: str) -> bool:
    """``name`` is one of ``patterns`` (import-linter's ``pkg.*`` means any direct child)."""
    return any(name == p or (p.endswith(".*") and name.rpartition(".")[0] == p[:-2]) for p in patterns)


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_every_module_is_named_by_the_contract_as_domain_ui_or_cli() -> None:
    """A new module cannot escape the contract by not being listed in it."""
    domain, cli = contracts()["domain"], contracts()["cli"]
    assert TEXTUAL <= set(domain["forbidden_modules"]) and TEXTUAL <= set(cli["forbidden_modules"])
    modules = module_names()
    assert len(modules) >= 12
    for name in sorted(modules):
        if declared(cli["source_modules"], name):
            continue
        ui_module = ".".join(name.split(".")[:2])  # tui.screens.help belongs to tui.screens
        if ui_module in UI_MODULES:
            assert ui_module in domain["forbidden_modules"], (
                f"{ui_module} is a UI module: add it to forbidden_modules of the 'domain' contract in pyproject.toml"
            )
        else:
            assert declared(domain["source_modules"], name), (
                f"{name} is a domain module: add it to source_modules of the 'domain' contract in pyproject.toml"
            )


def test_importing_the_domain_and_the_cli_loads_no_textual() -> None:
    code = (
        "import sys, tui.cli, tui.pipeline, tui.events, tui.window, tui.settings, tui.store;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
