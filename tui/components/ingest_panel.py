"""With ``--listen``: what the in-process server takes in — accepted/s, rejected/s by reason, the
spool's depth and age, and the lag (now minus the newest counted event)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from tui.components.format import rate

if TYPE_CHECKING:  # the dashboard loads aiohttp only with --listen
    from tui.service.embedded import IngestReading


class IngestPanel(Static):
    def show(self, reading: IngestReading, lag_seconds: float | None) -> None:
        rejected = sum(reading.rejected_per_second.values())
        rows: list[tuple[str, Text | str]] = [
            ("listening", reading.url),
            ("accepted", f"{rate(reading.accepted_per_second)}/s · {reading.accepted_total:,} in all"),
            ("rejected", Text(f"{rate(rejected)}/s · {reading.rejected_total:,} in all", style="red" if rejected else "")),
        ]
        for reason, per_second in sorted(reading.rejected_per_second.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append(("", Text(f"{reason} {rate(per_second)}/s", style="red")))
        age = f", oldest {reading.spool_age:.1f} s" if reading.spool_depth else ""
        rows.append(("spool", f"{reading.spool_depth:,} to write{age}"))
        rows.append(("lag", "no events in the window" if lag_seconds is None else f"newest event {lag_seconds:.0f} s ago"))
        self.update(Text("\n").join(Text.assemble((f"{label:<10}", "bold"), value) for label, value in rows))
