"""What ``serve`` and ``ingest`` are told, in plain data: no aiohttp, so the CLI can check flags
without loading the server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tui import DEFAULT_EVENT_TYPES
from tui.ingest.decode import IngestLimits
from tui.listen import Listen
from tui.settings import Settings


def retention_seconds(settings: Settings) -> int:
    """How old an event may be and still be accepted, and the longest window the API answers: the
    longest the store keeps anything (the coarsest level's retention, in the prefix's metadata)."""
    return settings.retention_seconds[-1]


@dataclass(frozen=True)
class ServiceConfig:
    """What the HTTP layer is told: retention and default window, limits, CORS, tokens."""

    retention_seconds: int
    default_minutes: float
    limits: IngestLimits = field(default_factory=IngestLimits)
    event_types: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_TYPES))
    #: Origins allowed to call from a browser, e.g. ``https://shop.example``; ``*`` allows any.
    cors_origins: tuple[str, ...] = ()
    #: Bearer tokens: secrets, so not in the repr (a config printed in a log or a traceback).
    ingest_token: str | None = field(default=None, repr=False)
    read_token: str | None = field(default=None, repr=False)
    retry_after_seconds: int = 1
    #: The key of the e-mail hash (:attr:`tui.settings.Settings.email_salt`); empty: no e-mail is
    #: hashed. A secret, so not in the repr.
    email_salt: str = field(default="", repr=False)


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``serve`` needs, checked by :func:`tui.service.options.serve_options`."""

    listen: Listen
    state_dir: Path
    config: ServiceConfig
    spool_bytes: int
    grace_seconds: float = 10.0


@dataclass(frozen=True)
class IngestOptions:
    """Everything ``ingest`` needs, checked by :func:`tui.service.options.ingest_options`."""

    file: str
    follow: bool
    state_dir: Path
    limits: IngestLimits
    spool_bytes: int
    retention_seconds: int
    event_types: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_TYPES))
    #: As :attr:`ServiceConfig.email_salt`.
    email_salt: str = field(default="", repr=False)
