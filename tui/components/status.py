"""The bottom line: is the generator keeping up, what it made, and how the last flush went."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.components.format import rate
from tui.components.snapshot import Snapshot
from tui.components.unchanged import set_content
from tui.pipeline.generator import RATE_SAMPLE_SECONDS


class StatusLine(Static):
    def show(self, snap: Snapshot) -> None:
        """Most important first, so a narrow terminal cuts only the details at the end."""
        status = snap.status
        parts: list[Text] = []
        if status.behind:
            parts.append(
                Text(f"behind: producing {rate(status.measured_rate)}/s of the configured {rate(status.configured_rate)}/s", style="bold reverse red")
            )
        if not status.generating:
            parts.append(Text("generator off · counting what is posted (--listen)" if status.writing else "read-only (--no-generate)", style="bold"))
        elif status.paused:
            parts.append(Text(f"⏸ paused · {rate(status.configured_rate)}/s set", style="bold yellow"))
        elif not status.behind:
            parts.append(Text.assemble(("● ", "bold green"), f"{rate(status.configured_rate)}/s set, made {rate(status.measured_rate)}/s ({RATE_SAMPLE_SECONDS:g} s)"))
        if status.generating:
            parts.append(Text(f"{status.generated:,} generated"))
        if status.store_error:
            parts.append(Text(f"{status.unflushed_events:,} events buffered, retrying", style="bold red"))
        elif status.last_flush_ms is not None:
            parts.append(Text(f"flushed in {status.last_flush_ms:.1f} ms"))
        if status.other_events:
            parts.append(Text(f"{status.other_events:,} events under (other): more than max_tracking_ids ids", style="bold yellow"))
        if snap.health.evictions is not None:
            parts.append(Text(f"evictions {snap.health.evictions:,}", style="bold red" if snap.health.evictions else ""))
        set_content(self, Text(" │ ").join(parts))
