"""``python -m tui`` is the same as the ``eventdash`` command."""

from tui.cli import main

raise SystemExit(main())
