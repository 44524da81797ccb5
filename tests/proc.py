"""A running ``eventdash`` subprocess whose stdout and stderr lines a test can wait for."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Eventdash:
    """Starts ``python -m tui ARGS``; reader threads collect timestamped lines of both streams.

    Every instance is remembered in :attr:`running`, so a fixture can kill what a failed test left.
    """

    running: list[Eventdash] = []

    def __init__(self, *args: str, python: Sequence[str] = ("-m", "tui")) -> None:
        """``python``: what the interpreter runs before ``args`` (a benchmark's wrapper of the CLI)."""
        self.proc = subprocess.Popen(
            [sys.executable, *python, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.lines: dict[str, list[tuple[float, str]]] = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in self.lines]
        for reader in self._readers:
            reader.start()
        Eventdash.running.append(self)

    def _read(self, name: str) -> None:
        stream = getattr(self.proc, name)
        for line in stream:
            with self._changed:
                self.lines[name].append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, stream: str = "stderr", after: float = 0.0, timeout: float = 20.0) -> float:
        """Block until a line of ``stream`` written after monotonic time ``after`` matches; return its time."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for stamp, line in self.lines[stream]:
                    if stamp >= after and regex.search(line):
                        return stamp
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not any(r.is_alive() for r in self._readers)):
                    raise AssertionError(f"no {stream} line matching {pattern!r} within {timeout} s; stderr: {self.text('stderr')[-2000:]}")
                self._changed.wait(remaining)

    def text(self, stream: str) -> str:
        with self._changed:
            return "\n".join(line for _, line in self.lines[stream])

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text("stdout").splitlines()]

    @classmethod
    def kill_all(cls) -> None:
        """Kill every process still running (after a test failed before stopping it)."""
        for instance in cls.running:
            if instance.proc.poll() is None:
                instance.proc.kill()
                instance.proc.wait()
        cls.running.clear()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code


class PtyDashboard:
    """The real dashboard in a pseudo-terminal, as a person runs it; the screen output is drained
    into :attr:`screen` so the app never blocks on a full terminal."""

    def __init__(self, *args: str, cwd: Path, columns: int = 100, lines: int = 30) -> None:
        import pty

        self.primary, secondary = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui", *args],
            stdin=secondary, stdout=secondary, stderr=secondary, cwd=cwd,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(lines), "PYTHONPATH": str(REPO)},
        )
        os.close(secondary)
        self.screen = bytearray()

    def drain(self) -> bytes:
        """Read what the dashboard drew so far (without blocking) and return all of it."""
        import select

        while select.select([self.primary], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.screen.extend(chunk)
        return bytes(self.screen)

    def exited(self) -> bool:
        self.drain()
        return self.proc.poll() is not None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.primary)
