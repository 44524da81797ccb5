"""Export files, and plain tables as CSV or JSON: what the dashboard's ``e`` writes.

Exports go to ``$XDG_DATA_HOME/eventdash/exports/`` (by default ``~/.local/share/eventdash/exports/``),
each in a new file named after what it holds and when, never over an existing one. A query's result
(the history screen's table) is written by :mod:`tui.history.export`, as ``eventdash query`` and the
HTTP API write it. The dashboard's other tables (the summary, the tracking ids) are a :class:`Table`:
rows under named columns plus a few facts (what, as of when, which window, whether part of it could
not be read). CSV is one header line and the rows; JSON is the Allezon shape
``{"columns": [...], "rows": [[...], ...]}`` with the facts beside it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("csv", "json")
#: Characters kept in a file name; anything else (a tracking id may hold ``/``) becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: A CSV cell starting with one of these is read as a formula by spreadsheets (CSV injection): such
#: text cells get a leading ``'``, as OWASP advises. JSON keeps every value as it is.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Exports written in one second with the same name get ``-2``, ``-3``, ...; past this, give up.
MAX_SAME_NAME = 1000

Cell = str | int | float | bool | None


@dataclass(frozen=True)
class Table:
    """Rows under ``columns``, and facts about them for the JSON (``what``, ``asOf``, ...)."""

    columns: tuple[str, ...]
    rows: Sequence[Sequence[Cell]]
    facts: Mapping[str, object] = field(default_factory=dict)


def csv_cell(value: Cell) -> Cell:
    """A cell as CSV holds it: booleans as ``true``/``false``, text a spreadsheet would run as a
    formula with a leading ``'`` (also for a query's CSV: a posted tracking id is anyone's text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(table: Table) -> str:
    """A header line, then one line per row (``\\n`` line ends, as :mod:`tui.history.export` writes a query)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([csv_cell(v) for v in row] for row in table.rows)
    return out.getvalue()


def to_json(table: Table) -> str:
    """``{"columns": [...], "rows": [...], <facts>}`` on one line, UTF-8 as is."""
    document = {"columns": list(table.columns), "rows": [list(r) for r in table.rows], **table.facts}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


def render(table: Table, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"export format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return to_csv(table) if fmt == "csv" else to_json(table)


def export_dir() -> Path:
    """``$XDG_DATA_HOME/eventdash/exports`` (a relative or empty value is ignored, per the XDG
    spec), else ``~/.local/share/eventdash/exports``."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "eventdash" / "exports"


def file_stem(what: str, now: float) -> str:
    """``eventdash-<what>-<UTC time>``, with only file-name-safe characters."""
    safe = _UNSAFE.sub("_", what).strip("._") or "table"
    return f"eventdash-{safe[:100]}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"


def write_export(text: str, fmt: str, what: str, now: float, directory: Path | None = None) -> Path:
    """Write ``text`` to a new ``.fmt`` file in ``directory`` (default :func:`export_dir`, made if
    missing) and return its path. Raises OSError (with the path) if it cannot be written."""
    folder = directory if directory is not None else export_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_stem(what, now)
    for n in range(1, MAX_SAME_NAME + 1):
        path = folder / (f"{stem}.{fmt}" if n == 1 else f"{stem}-{n}.{fmt}")
        try:
            with open(path, "x", encoding="utf-8", newline="") as out:
                out.write(text)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{folder / stem}.{fmt}: {MAX_SAME_NAME} exports of that name already exist")
