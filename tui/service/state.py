"""The state directory (``--state-dir``): what one writer keeps on disk between runs.

Layout::

    STATE_DIR/
      lock              held (flock) by the one process using the directory; holds its pid
      writer.json       {"writer_id": "…"}: the writer's identity, created once, never changed
      checkpoint.json   whatever the writer last saved with save_checkpoint (e.g. the spool
                        position that is already in the store)
      spool/            the write-ahead log (tui.service.spool)

Two processes on one state directory would both replay the same spool and count it twice, so the
second is refused (:class:`StateDirError`, exit 2). ``flock`` is released by the kernel when the
holder dies, even by ``kill -9``, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

WRITER_FILE, CHECKPOINT_FILE, LOCK_FILE, SPOOL_DIR = "writer.json", "checkpoint.json", "lock", "spool"


class StateDirError(Exception):
    """The state directory cannot be used; ``str()`` is the one-line message (exit 2)."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, never a mix:
    a temporary file is written and fsynced, renamed over ``path``, and the directory is fsynced so
    the rename itself survives a power cut."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateDir:
    """An opened, locked state directory. Close it (or let the process end) to release the lock."""

    def __init__(self, path: Path, flag: str = "--state-dir") -> None:
        self.path = path
        self._flag = flag
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateDirError(f"{flag}: cannot use {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(self._lock_fd, 32, 0).decode("ascii", "replace").strip()
            os.close(self._lock_fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise StateDirError(f"{flag}: {path} is in use by another eventdash{who}; give each process its own state directory") from None
            raise StateDirError(f"{flag}: cannot lock {path / LOCK_FILE}: {exc.strerror or exc}") from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{os.getpid()}\n".encode(), 0)
        try:
            self.writer_id = self._writer_id()
        except BaseException:
            self.close()
            raise

    @property
    def spool_path(self) -> Path:
        return self.path / SPOOL_DIR

    def _read_json(self, name: str) -> Any:
        """The parsed file, or None when it does not exist; a damaged file is an error, not a reset:
        starting over with a new identity or checkpoint could count the spool twice."""
        path = self.path / name
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateDirError(f"{self._flag}: cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise StateDirError(f"{self._flag}: {path} is damaged ({exc}); restore it or move the state directory away") from None

    def _writer_id(self) -> str:
        saved = self._read_json(WRITER_FILE)
        if saved is None:
            created = secrets.token_hex(6)
            atomic_write(self.path / WRITER_FILE, json.dumps({"writer_id": created}).encode() + b"\n")
            return created
        found = saved.get("writer_id") if isinstance(saved, dict) else None
        if not (isinstance(found, str) and found.isascii() and found.isalnum() and 0 < len(found) <= 64):
            raise StateDirError(f"{self._flag}: {self.path / WRITER_FILE} has no usable writer_id; restore it or move the state directory away")
        return found

    def load_checkpoint(self) -> Any:
        """What :meth:`save_checkpoint` last saved, or None before the first save."""
        return self._read_json(CHECKPOINT_FILE)

    def save_checkpoint(self, value: Any) -> None:
        """Save ``value`` (anything JSON can hold) atomically: a crash keeps the previous one."""
        atomic_write(self.path / CHECKPOINT_FILE, json.dumps(value, separators=(",", ":")).encode() + b"\n")

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
