"""The ``eventdash`` command: the dashboard (default), ``--headless``, and ``summary``.

Exit statuses: 0 done; 1 the store failed at run time (e.g. memcached unreachable for ``summary``, or
the last counts could not be written); 2 usage or configuration error. No path ends in a traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tui import EVENT_TYPES, __version__
from tui.settings import Settings, SettingsError, build_settings, read_settings_file

if TYPE_CHECKING:
    from tui.engine import Engine

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

#: flag destination -> (settings field path, flag as typed), for overrides and their messages.
OVERRIDES: dict[str, tuple[str, str]] = {
    "rate": ("events_per_second", "--rate"),
    "window_minutes": ("window_minutes", "--window-minutes"),
    "bucket_seconds": ("bucket_seconds", "--bucket-seconds"),
    "backend": ("backend", "--backend"),
    "memcached": ("memcached.servers", "--memcached"),
    "key_prefix": ("memcached.key_prefix", "--key-prefix"),
    "refresh": ("refresh_seconds", "--refresh"),
    "generated_ids": ("generated_ids", "--tracking-ids"),
    "zipf": ("zipf", "--zipf"),
}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _store_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose the settings, the window and the store; shared by every command."""
    s = argparse.SUPPRESS  # unset flags stay unset, so they never override the file
    parser.add_argument("--settings", metavar="PATH", default=s, help="settings file, JSON or .toml (default: ./settings.json if present)")
    parser.add_argument("--window-minutes", metavar="N", type=_number, default=s, help="window length in minutes, fractions allowed (e.g. 0.5)")
    parser.add_argument("--bucket-seconds", metavar="B", type=_whole, default=s, help="bucket length in seconds: the window's approximation")
    parser.add_argument("--backend", choices=("auto", "memory", "memcached"), default=s, help="where counts live (auto: memcached if it answers)")
    parser.add_argument("--memcached", metavar="HOST:PORT[,HOST:PORT...]", default=s, help="memcached servers; several use consistent hashing")
    parser.add_argument("--key-prefix", metavar="STR", default=s, help="prefix of every memcached key (keeps dashboards apart)")


def make_parser() -> argparse.ArgumentParser:
    s = argparse.SUPPRESS
    parser = argparse.ArgumentParser(
        prog="eventdash",
        description="Live web-analytics event counts over a sliding window, exact in Memcached.",
        epilog="Exit status: 0 ok, 1 store failure at run time, 2 usage or settings error.",
    )
    parser.add_argument("--version", action="version", version=f"eventdash {__version__}")
    parser.add_argument("--headless", action="store_true", default=s, help="no screen: print one JSON summary per refresh on stdout")
    parser.add_argument("--rate", metavar="EVENTS_PER_SECOND", type=_number, default=s, help="events generated per second")
    parser.add_argument("--seed", metavar="N", type=_whole, default=s, help="seed for a reproducible event stream")
    parser.add_argument("--duration", metavar="SECONDS", type=_number, default=s, help="stop after this many seconds")
    parser.add_argument("--refresh", metavar="SECONDS", type=_number, default=s, help="seconds between summaries (default 1)")
    parser.add_argument("--events-log", metavar="PATH", default=s, help="append every generated event to PATH as one JSON line")
    parser.add_argument("--tracking-ids", dest="generated_ids", metavar="N", type=_whole, default=s, help="generate events for N tracking ids made deterministically (instead of the settings' list)")
    parser.add_argument("--zipf", metavar="S", type=_number, default=s, help="Zipf exponent of the id choice, e.g. 1.1: a few large sites, many small (default 0: uniform)")
    parser.add_argument("--no-generate", action="store_true", default=s, help="read only: follow what other writers put into memcached")
    _store_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="{summary}")
    summary = commands.add_parser("summary", help="print the current window once and exit", description="Read the current window from the store, refresh the per-type summary keys, print it.")
    summary.add_argument("--json", action="store_true", default=s, help="print the JSON object of --headless instead of a table")
    _store_options(summary)
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings file (or defaults) with the flags laid over it, all checked by :func:`build_settings`."""
    given = getattr(args, "settings", None)
    path = Path(given) if given else Path("settings.json")
    raw: dict[str, Any] = read_settings_file(path) if given or path.exists() else {}
    origin = str(path) if raw else ""
    labels: dict[str, str] = {}
    for dest, (field, flag) in OVERRIDES.items():
        if hasattr(args, dest):
            section, _, key = field.rpartition(".")
            target = raw.setdefault(section, {}) if section else raw
            if not isinstance(target, dict):
                raise SettingsError(f"{origin}: {section}: expected an object, got {type(target).__name__}")
            target[key] = getattr(args, dest)
            labels[field] = flag
    return build_settings(raw, labels, origin)


def _open_log(path: str) -> TextIO:
    try:
        return open(path, "a", encoding="utf-8", buffering=1 << 20)
    except IsADirectoryError:
        raise SettingsError(f"--events-log: {path} is a directory; give a file path") from None
    except OSError as exc:
        raise SettingsError(f"--events-log: cannot open {path} for appending: {exc.strerror}") from None


def _err(message: str) -> None:
    print(f"eventdash: {message}", file=sys.stderr, flush=True)


def _tune_gc() -> None:
    """Each event is a dozen small dicts that die young and hold no cycles; collecting generation 0
    every 700 allocations would cost a quarter of the generator's time (measured: 62k -> 80k
    events/s). Collect less often, and leave the start-up objects out of every collection."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def main(argv: Sequence[str] | None = None) -> int:
    _tune_gc()
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args)
        if getattr(args, "duration", 1) <= 0:
            raise SettingsError(f"--duration: must be more than 0 seconds, got {args.duration:g}")
        events_log = _open_log(args.events_log) if hasattr(args, "events_log") else None
    except SettingsError as exc:
        parser.exit(EXIT_USAGE, f"eventdash: error: {exc}\n")
    try:
        return _dispatch(args, settings, events_log)
    except SettingsError as exc:  # the prefix's metadata in memcached conflicts with these settings
        parser.exit(EXIT_USAGE, f"eventdash: error: {exc}\n")


def _dispatch(args: argparse.Namespace, settings: Settings, events_log: TextIO | None) -> int:
    if args.command == "summary":
        return run_summary(settings, as_json=getattr(args, "json", False))
    options = RunOptions(
        seed=getattr(args, "seed", None),
        duration=getattr(args, "duration", None),
        events_log=events_log,
        generate=not getattr(args, "no_generate", False),
        settings_path=Path(args.settings) if hasattr(args, "settings") else Path("settings.json"),
    )
    if getattr(args, "headless", False):
        return run_headless(settings, options)
    return run_dashboard(settings, options)


@dataclass(frozen=True)
class RunOptions:
    """What a run needs besides the settings."""

    seed: int | None = None
    duration: float | None = None
    events_log: TextIO | None = None
    generate: bool = True
    settings_path: Path = Path("settings.json")


def run_headless(settings: Settings, options: RunOptions) -> int:
    """Generate (unless ``--no-generate``), print one JSON line per refresh, flush and print at exit."""
    from tui.engine import Engine, headless_line
    from tui.store import StoreUnavailable, open_store
    from tui.watch import StoreWatch

    opened = open_store(settings)
    _err(opened.reason)
    wake = threading.Event()  # a signal, or the writer finding the store lost or back
    stopping = threading.Event()
    engine = Engine(
        settings, opened.store, seed=options.seed, events_log=options.events_log, generate=options.generate,
        on_store_change=wake.set,
    )

    def on_signal(*_: Any) -> None:
        stopping.set()
        wake.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    started = engine.start()
    watch = StoreWatch()

    def report() -> None:
        view, failure = None, None
        try:
            view = engine.refresh()
        except StoreUnavailable as exc:
            failure = str(exc)
        status = engine.status()
        for notice in watch.observe(opened.store.health(), status.store_error or failure, engine.clock.monotonic()):
            _err(notice.text)
        if view is not None:
            print(json.dumps(headless_line(view, opened.store.backend, status.generated)), flush=True)

    end = started + options.duration if options.duration is not None else None
    ticks = 1
    while True:
        deadline = started + ticks * settings.refresh_seconds
        if end is not None:
            deadline = min(deadline, end)
        woken = wake.wait(max(0.0, deadline - engine.clock.monotonic()))
        wake.clear()
        if stopping.is_set():
            end = None  # a signal: stop now
            break
        if end is not None and engine.clock.monotonic() >= end:
            break
        report()  # on the refresh tick, or at once when the store went away or came back
        if not woken:
            ticks += 1
    flushed = engine.stop(at=end)
    report()
    return _finish(engine, options, flushed)


def run_dashboard(settings: Settings, options: RunOptions) -> int:
    """Open the dashboard; on ``q``, SIGINT or SIGTERM stop generating, flush, publish, exit 0."""
    from tui.app import EventDashApp  # Textual is imported only for the dashboard
    from tui.engine import Engine
    from tui.store import StoreUnavailable, open_store

    opened = open_store(settings)
    engine = Engine(settings, opened.store, seed=options.seed, events_log=options.events_log, generate=options.generate)
    app = EventDashApp(engine, settings_path=options.settings_path, duration=options.duration)
    for signum in (signal.SIGINT, signal.SIGTERM):  # like q: stop, flush, exit 0
        signal.signal(signum, lambda *_: app.call_later(app.action_quit))
    engine.start()
    app.run()
    flushed = engine.stop()  # also after a crash: what was counted is written
    try:
        engine.refresh()
    except StoreUnavailable:
        pass  # the flush failure is reported below
    return _finish(engine, options, flushed) or (app.return_code or 0)


def _finish(engine: Engine, options: RunOptions, flushed: bool) -> int:
    """Close the log and the store; if the last counts never reached the store, say so (exit 1)."""
    if options.events_log is not None:
        options.events_log.close()
    engine.store.close()
    if flushed:
        return EXIT_OK
    log = " (every event is in the events log)" if options.events_log is not None else ""
    _err(
        f"the last counts could not be written ({engine.status().store_error}); up to "
        f"{engine.unwritten_events():,} events this process counted could not be written to the store{log}"
    )
    return EXIT_RUNTIME


def run_summary(settings: Settings, as_json: bool) -> int:
    """``eventdash summary``: read the window once, refresh the summary keys, print."""
    from tui.engine import Engine, headless_line
    from tui.store import StoreUnavailable, open_store

    opened = open_store(settings)
    _err(opened.reason)
    engine = Engine(settings, opened.store, generate=False)
    try:
        view = engine.refresh()
    except StoreUnavailable as exc:
        _err(f"error: {exc}")
        return EXIT_RUNTIME
    finally:
        opened.store.close()
    if as_json:
        print(json.dumps(headless_line(view, opened.store.backend, 0)))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    from tui.window import window_label

    table = Table(title=f"{window_label(view.window_minutes, view.bucket_seconds)} · {opened.store.backend}")
    table.add_column("type")
    table.add_column("tracking id")
    table.add_column("events", justify="right")
    for etype in EVENT_TYPES:
        summary = view.summary[etype]
        table.add_row(etype, "[b]all[/b]", f"[b]{summary.total:,}[/b]")
        for tid, count in sorted(summary.by_tracking_id.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row("", tid, f"{count:,}")
    Console().print(table)
    return EXIT_OK
