"""The flags of ``eventdash serve`` and ``eventdash ingest``, and their checks (one line, exit 2).

Tokens may come from the environment (``EVENTDASH_INGEST_TOKEN``, ``EVENTDASH_READ_TOKEN``) so that
they do not show in ``ps``; a flag wins over the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tui.ingest.decode import IngestLimits
from tui.listen import Listen, ListenError, parse_host, parse_port
from tui.service.config import (
    IngestOptions,
    ServeOptions,
    ServiceConfig,
    retention_seconds,
)
from tui.service.spool import DEFAULT_CAPACITY
from tui.settings import Settings

DEFAULT_LISTEN = "127.0.0.1:8080"
LIMITS = IngestLimits()


class ServiceUsageError(ValueError):
    """A bad ``serve`` or ``ingest`` flag; ``str()`` names it."""


def default_state_dir(command: str) -> Path:
    """``$XDG_STATE_HOME/eventdash/COMMAND`` (by default ``~/.local/state/eventdash/COMMAND``)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        base = str(Path.home() / ".local" / "state")
    return Path(base) / "eventdash" / command


def _common(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--state-dir", metavar="DIR", default=None, help=f"spool, writer id and checkpoints (default {default_state_dir(command)}); one process per directory")
    parser.add_argument("--max-body-bytes", metavar="N", type=int, default=LIMITS.body_bytes, help=f"largest body, as sent and after gzip (default {LIMITS.body_bytes:,})")
    parser.add_argument("--max-events-per-request", metavar="N", type=int, default=LIMITS.events_per_request, help=f"most events in one body (default {LIMITS.events_per_request:,})")
    parser.add_argument("--spool-mb", metavar="MB", type=int, default=DEFAULT_CAPACITY >> 20, help=f"spool capacity; when full, posts get 429 (default {DEFAULT_CAPACITY >> 20})")


def add_parsers(commands: Any, store_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """``serve`` and ``ingest`` with their flags and the store flags."""
    serve = commands.add_parser("serve", help="the HTTP ingest and read API (POST /visitors/events/, GET /api/v1/...)", description="Accept events over HTTP into a durable spool and answer the read API.")
    serve.add_argument("--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN, help=f"where to listen (default {DEFAULT_LISTEN}; anything but loopback is reachable by others)")
    serve.add_argument("--cors-origin", metavar="ORIGIN", action="append", default=[], help="an origin browsers may post from, e.g. https://shop.example (repeatable; * for any)")
    serve.add_argument("--ingest-token", metavar="TOKEN", default=os.environ.get("EVENTDASH_INGEST_TOKEN"), help="require this token on POST (or set EVENTDASH_INGEST_TOKEN)")
    serve.add_argument("--read-token", metavar="TOKEN", default=os.environ.get("EVENTDASH_READ_TOKEN"), help="require this token on the read API and /metrics (or set EVENTDASH_READ_TOKEN)")
    _common(serve, "serve")
    store_options(serve)
    ingest = commands.add_parser("ingest", help="count NDJSON events from a file or stdin (--follow: like tail -F)", description="Read NDJSON events through the same checks as serve, into the same kind of spool.")
    ingest.add_argument("file", metavar="FILE", nargs="?", default="-", help="NDJSON file, or - for stdin (default)")
    ingest.add_argument("--follow", action="store_true", help="keep reading as the file grows, across truncation and rotation, until a stop signal")
    _common(ingest, "ingest")
    store_options(ingest)


def _limits(args: argparse.Namespace) -> IngestLimits:
    if not 1 <= args.max_body_bytes <= 64 << 20:
        raise ServiceUsageError(f"--max-body-bytes: must be from 1 to {64 << 20:,}, got {args.max_body_bytes}")
    if not 1 <= args.max_events_per_request <= 100_000:
        raise ServiceUsageError(f"--max-events-per-request: must be from 1 to 100,000, got {args.max_events_per_request}")
    if not 1 <= args.spool_mb <= 1 << 20:
        raise ServiceUsageError(f"--spool-mb: must be from 1 to {1 << 20:,}, got {args.spool_mb}")
    return IngestLimits(body_bytes=args.max_body_bytes, events_per_request=args.max_events_per_request)


def _state_dir(args: argparse.Namespace, command: str) -> Path:
    if args.state_dir is None:
        return default_state_dir(command)
    if not args.state_dir or "\0" in args.state_dir:
        raise ServiceUsageError("--state-dir: give a directory path")
    return Path(args.state_dir)


def _listen(text: str) -> Listen:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ServiceUsageError(f"--listen: expected HOST:PORT such as {DEFAULT_LISTEN} or [::1]:8080, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ServiceUsageError(f"--listen: write an IPv6 address in brackets, e.g. [::1]:8080, got {text!r}")
    try:
        host, number = parse_host(host, "--listen"), parse_port(port, "--listen")
    except ListenError as exc:
        raise ServiceUsageError(str(exc)) from None
    shown = f"[{host}]" if ":" in host else host
    return Listen(host, number, f"http://{shown}:{number}")


def _token(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    if not (value.isascii() and value.isprintable() and " " not in value and 16 <= len(value) <= 512):
        raise ServiceUsageError(f"{flag}: a token is 16 to 512 printable ASCII characters without spaces")
    return value


def _origin(text: str) -> str:
    if text == "*":
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment or not text.isascii():
        raise ServiceUsageError(f"--cors-origin: expected an origin such as https://shop.example (scheme and host, no path) or *, got {text!r}")
    return text


def serve_options(args: argparse.Namespace, settings: Settings) -> ServeOptions:
    limits = _limits(args)
    config = ServiceConfig(
        retention_seconds=retention_seconds(settings),
        default_minutes=settings.window_minutes,
        limits=limits,
        event_types=dict(settings.event_types),
        cors_origins=tuple(_origin(o) for o in args.cors_origin),
        ingest_token=_token(args.ingest_token, "--ingest-token"),
        read_token=_token(args.read_token, "--read-token"),
        email_salt=settings.email_salt,
    )
    return ServeOptions(_listen(args.listen), _state_dir(args, "serve"), config, args.spool_mb << 20)



def dashboard_serve_options(listen: str, state_dir: str | None, settings: Settings) -> ServeOptions:
    """``eventdash --listen HOST:PORT [--state-dir DIR]``: the dashboard's in-process server, with
    serve's defaults for the limits and the spool, and its tokens from the environment."""
    config = ServiceConfig(
        retention_seconds=retention_seconds(settings),
        default_minutes=settings.window_minutes,
        limits=LIMITS,
        event_types=dict(settings.event_types),
        ingest_token=_token(os.environ.get("EVENTDASH_INGEST_TOKEN"), "EVENTDASH_INGEST_TOKEN"),
        read_token=_token(os.environ.get("EVENTDASH_READ_TOKEN"), "EVENTDASH_READ_TOKEN"),
        email_salt=settings.email_salt,
    )
    state = argparse.Namespace(state_dir=state_dir)
    return ServeOptions(_listen(listen), _state_dir(state, "dashboard"), config, DEFAULT_CAPACITY)


def ingest_options(args: argparse.Namespace, settings: Settings) -> IngestOptions:
    if args.follow and args.file == "-":
        raise ServiceUsageError("--follow: follows a file by name; give FILE (stdin is read to its end without it)")
    return IngestOptions(
        args.file, args.follow, _state_dir(args, "ingest"), _limits(args), args.spool_mb << 20, retention_seconds(settings), dict(settings.event_types),
        settings.email_salt,
    )
