"""The dashboard's widgets, one module each; they show a :class:`~tui.components.snapshot.Snapshot`."""
