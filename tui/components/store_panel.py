"""Under the type table: which store and writer this is, and the keys the footer has no room for."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.components.snapshot import Snapshot
from tui.components.unchanged import set_content
from tui.pipeline import Pipeline

#: Two hints a line: (key, what) pairs.
HINTS = ((("tab", "next table"), ("s", "sort ids")), (("h", "history"), ("e", "export table")), (("^p", "all commands"), ("w", "save settings")))
#: Cells the hints need unwrapped (the first of a line is padded to 17), with the panel's padding:
#: the left column is never narrower, even when the type table gives up columns.
MIN_WIDTH = 17 + max(4 + len(what) for line in HINTS for _, what in line[1:]) + 2


class StorePanel(Static):
    def show(self, snap: Snapshot, pipeline: Pipeline) -> None:
        rows = [("store", "embedded store" if snap.health.backend == "memory" else "memcached")]
        if snap.health.backend == "memcached":
            rows.append(("prefix", pipeline.settings.memcached.key_prefix))
        rows.append(("writer", pipeline.writer.writer_name if snap.status.writing else "none (read-only)"))
        if snap.status.restores:
            rows.append(("restores", f"{snap.status.restores}: the store lost its data; buckets written back"))
        text = Text("\n").join(Text.assemble((f"{label:<9}", "bold"), value) for label, value in rows)
        if snap.read_error:
            text.append(f"\n{snap.read_error}", style="red")
        text.append("\n\n")
        text.append(Text("\n").join(Text.assemble(*(_hint(pair, width) for pair, width in zip(line, (17, 0)) if pair)) for line in HINTS))
        set_content(self, text)


def _hint(pair: tuple[str, str], width: int) -> Text:
    key, what = pair
    return Text.assemble((f"{key:<4}", "bold"), f"{what:<{max(0, width - 4)}}")
