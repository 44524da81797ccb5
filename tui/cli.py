"""The ``eventdash`` command: the dashboard (default), ``--headless``, ``summary``, ``web``, ``send``
and ``serve``.

Exit statuses: 0 done; 1 the store failed at run time (e.g. memcached unreachable for ``summary``, or
the last counts could not be written); 2 usage or configuration error. No path ends in a traceback.

Parsing the flags, reading the settings file and checking everything is :func:`prepare`, which runs
nothing: every bad input ends there, as one ``eventdash: error: ...`` line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TextIO

from tui import EVENT_TYPES, __version__, send
from tui.events import generated_ids
from tui.history import command as query_command
from tui.history.query import QueryError
from tui.scenarios import Scenario, ScenarioError, Window, Zipf, parse_backfill, parse_scenarios
from tui.service import options as service_options
from tui.settings import (
    EMAIL_SALT_ENV,
    Settings,
    SettingsError,
    build_settings,
    check_writer_name,
    read_settings_file,
    user_settings_path,
)
from tui.shutdown import on_stop_signals, on_thread_failure
from tui.web import (
    Listen,
    WebUsageError,
    add_web_command,
    dashboard_command,
    listen_from,
    serve_web,
)

if TYPE_CHECKING:
    from tui.distinct.sketch import Estimate
    from tui.pipeline import Pipeline
    from tui.service.config import IngestOptions, ServeOptions
    from tui.service.spool import Spool
    from tui.service.state import StateDir
    from tui.store import OpenedStore

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
SUMMARY_TOP = 20  # tracking ids per type in the summary table by default: a site has 100,000

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
    "email_salt": ("email_salt", "--email-salt"),
    "sketch_lg_k": ("sketch_lg_k", "--sketch-lg-k"),
    "live_minutes": ("live_minutes", "--live-minutes"),
    "webhook": ("anomaly.webhook_url", "--webhook"),
    "anomalies_enabled": ("anomaly.enabled", "--no-anomalies"),
}


def one_line(text: str) -> str:
    """``text`` with every unprintable character escaped, so a message is one line whatever was typed."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def usage_error(message: str) -> NoReturn:
    """Stop with the one line every usage and settings error ends in, and exit status 2."""
    sys.stderr.write(f"eventdash: error: {one_line(message)}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_USAGE)


#: Flags whose values are secrets: a usage error never repeats them.
SECRET_FLAGS: tuple[str, ...] = ("--email-salt",)


def secrets_in(argv: Sequence[str]) -> list[str]:
    """The values given to a secret flag, or to an abbreviation argparse would take for one."""
    found = []
    for i, token in enumerate(argv):
        name, eq, value = token.partition("=")
        if len(name) > 2 and name.startswith("--") and any(flag.startswith(name) for flag in SECRET_FLAGS):
            found.append(value if eq else argv[i + 1] if i + 1 < len(argv) else "")
    return [value for value in found if value]


def hide_secrets(message: str, secrets: Sequence[str]) -> str:
    """``message`` with every secret that stands as a word of it (argparse repeats the words it
    could not use: ``unrecognized arguments: --email-salt VALUE``) replaced by ``<hidden>``."""
    for secret in sorted(secrets, key=len, reverse=True):
        message = re.sub(rf"(?<![^\s=']){re.escape(secret)}(?![^\s'])", "<hidden>", message)
    return message


class _Parser(argparse.ArgumentParser):
    """argparse whose errors end like a settings error: one line, no usage block, exit 2.

    argparse prints the usage (several lines) before its message; a script reading stderr, and the
    team's rule, want the one line, so the usage is left to ``--help``, which the line points to.
    The values of :data:`SECRET_FLAGS` in the arguments being parsed (``hidden``, set by
    :func:`prepare`, shared by the subcommands' parsers) are left out of the message.
    """

    hidden: list[str] = []

    def error(self, message: str) -> NoReturn:
        usage_error(f"{hide_secrets(message, _Parser.hidden)} (see eventdash --help)")


def _typed(text: str) -> str:
    """What the user typed, quoted and cut short for a message."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_typed(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {_typed(text)}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # also a number beyond Python's 4300-digit conversion limit
        raise argparse.ArgumentTypeError(f"expected a whole number, got {_typed(text)}") from None


def _duration(text: str) -> float:
    seconds = _number(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {_typed(text)}")
    return seconds


def _store_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose the settings, the window and the store; shared by every command."""
    s = argparse.SUPPRESS  # unset flags stay unset, so they never override the file
    parser.add_argument("--settings", metavar="PATH", default=s, help="settings file, JSON or .toml (default: the user's file if present, else ./settings.json if present)")
    parser.add_argument("--window-minutes", metavar="N", type=_number, default=s, help="window length in minutes, fractions allowed (e.g. 0.5)")
    parser.add_argument("--bucket-seconds", metavar="B", type=_whole, default=s, help="bucket length in seconds: the window's approximation")
    parser.add_argument("--backend", choices=("auto", "memory", "memcached"), default=s, help="where counts live (auto: memcached if it answers)")
    parser.add_argument("--memcached", metavar="HOST:PORT[,HOST:PORT...]", default=s, help="memcached servers; several use consistent hashing")
    parser.add_argument("--key-prefix", metavar="STR", default=s, help="prefix of every memcached key (keeps dashboards apart)")
    parser.add_argument("--email-salt", metavar="SECRET", default=s, help=f"key of the hash of sign-up e-mails, at most 64 bytes (better: {EMAIL_SALT_ENV}, which ps does not show; none: no distinct signups)")
    parser.add_argument("--sketch-lg-k", metavar="N", type=_whole, default=s, help="distinct-count sketches have 2^N registers, 8-16 (default 13)")
    parser.add_argument("--live-minutes", metavar="N", type=_number, default=s, help="the window of visitors right now, in minutes (default 7)")


def _anomaly_options(parser: argparse.ArgumentParser) -> None:
    """Spike and drop detection, for the commands that read as time goes by (the dashboard,
    ``--headless``, ``serve``); README "Anomalies"."""
    s = argparse.SUPPRESS
    parser.add_argument("--webhook", metavar="URL", default=s, help="POST each alert that fires or resolves to this http(s) URL, with retries (anomaly.webhook_url)")
    parser.add_argument("--no-anomalies", dest="anomalies_enabled", action="store_false", default=s, help="no spike and drop detection, and no webhook (anomaly.enabled false)")


def make_parser() -> argparse.ArgumentParser:
    s = argparse.SUPPRESS
    parser = _Parser(
        prog="eventdash",
        description="Live web-analytics event counts over a sliding window, exact in Memcached.",
        epilog="Exit status: 0 ok, 1 store failure at run time, 2 usage or settings error.",
    )
    parser.add_argument("--version", action="version", version=f"eventdash {__version__}")
    parser.add_argument("--headless", action="store_true", default=s, help="no screen: print one JSON summary per refresh on stdout")
    parser.add_argument("--rate", metavar="EVENTS_PER_SECOND", type=_number, default=s, help="events generated per second")
    parser.add_argument("--seed", metavar="N", type=_whole, default=s, help="seed for a reproducible event stream")
    parser.add_argument("--duration", metavar="SECONDS", type=_duration, default=s, help="stop after this many seconds")
    parser.add_argument("--refresh", metavar="SECONDS", type=_number, default=s, help="seconds between summaries (default 1)")
    parser.add_argument("--events-log", metavar="PATH", default=s, help="append every generated event to PATH as one JSON line")
    parser.add_argument("--tracking-ids", dest="generated_ids", metavar="N", type=_whole, default=s, help="generate events for N tracking ids made deterministically (instead of the settings' list)")
    parser.add_argument("--zipf", metavar="S", type=_number, default=s, help="Zipf exponent of the id choice, e.g. 1.1: a few large sites, many small (default 0: uniform); --scenario zipf:S wins over it")
    parser.add_argument("--scenario", metavar="SPEC", action="append", default=s, help=(
        "shape the generated traffic, repeatable; offsets count from the live start: spike:TYPE:ID|*:xK:DUR[@OFFSET], "
        "drop:TYPE:ID|*:DUR[@OFFSET], diurnal[:PERIOD] (a daily wave in PERIOD, default 10m), zipf[:S] (the same as --zipf S, "
        "and wins over it and the settings' zipf); e.g. --scenario drop:signup:INF-yj562hjojbtez:120s@30s"
    ))
    parser.add_argument("--backfill", metavar="DURATION", default=s, help=(
        "before going live, generate this much past traffic (e.g. 1h, 30m; 0: none), counted and logged like the live; "
        "default with a spike or drop scenario: the anomaly baseline's span (at most the single buckets' retention), "
        "unless the store already holds counts there"
    ))
    parser.add_argument("--no-generate", action="store_true", default=s, help="read only: follow what other writers put into memcached")
    parser.add_argument("--writer-name", metavar="NAME", default=s, help="this writer's name as shown beside its counts (default: host and pid)")
    parser.add_argument("--listen", metavar="HOST:PORT", default=s, help="also run serve's HTTP ingest and read API in the dashboard, e.g. 127.0.0.1:8080 (the generator is then off unless --generate)")
    parser.add_argument("--generate", action="store_true", default=s, help="with --listen: generate events beside the ones posted")
    parser.add_argument("--state-dir", metavar="DIR", default=s, help=f"spool, writer id and checkpoints: the generated events are durable before they are counted; with --listen, the server's (default there {service_options.default_state_dir('dashboard')}; none for the generator alone)")
    _store_options(parser)
    _anomaly_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="{summary,query,web,send,serve,ingest}")
    summary = commands.add_parser("summary", help="print the current window once and exit", description="Read the current window from the store, refresh the per-type summary keys, print it.")
    summary.add_argument("--json", action="store_true", default=s, help="print the JSON object of --headless instead of a table")
    summary.add_argument("--top", metavar="N", type=_whole, default=s, help=f"tracking ids per type in the table, largest first (default {SUMMARY_TOP}; 0: all)")
    _store_options(summary)
    query_command.add_parser(commands, _store_options)
    send.add_parser(commands)
    service_options.add_parsers(commands, _store_options)
    _anomaly_options(commands.choices["serve"])
    add_web_command(commands, parser)  # last: it passes every dashboard flag above through
    return parser


def settings_file(args: argparse.Namespace) -> Path | None:
    """The file to read: ``--settings``; else the user's file; else ``./settings.json``; else none."""
    if hasattr(args, "settings"):
        if not args.settings:
            raise SettingsError("--settings: the path is empty; give a settings file, or leave the flag out")
        return Path(args.settings)
    for candidate in (user_settings_path(), Path("settings.json")):
        try:
            if candidate.exists():
                return candidate
        except OSError:  # e.g. a directory on the way that cannot be searched: reading it says why
            return candidate
    return None


def load_settings(args: argparse.Namespace, resolve_hosts: bool = True) -> Settings:
    """Settings file (or defaults) with the flags laid over it, all checked by :func:`build_settings`."""
    path = settings_file(args)
    raw: dict[str, Any] = read_settings_file(path) if path is not None else {}
    origin = str(path) if path is not None else ""
    labels: dict[str, str] = {}
    _check_anomaly_flags(args, raw, origin)
    for dest, (field_path, flag) in OVERRIDES.items():
        if hasattr(args, dest):
            section, _, key = field_path.rpartition(".")
            target = raw.setdefault(section, {}) if section else raw
            if not isinstance(target, dict):
                raise SettingsError(f"{origin}: {section}: expected an object, got {type(target).__name__}")
            target[key] = getattr(args, dest)
            labels[field_path] = flag
    return build_settings(raw, labels, origin, resolve_hosts)


def _check_anomaly_flags(args: argparse.Namespace, raw: dict[str, Any], origin: str) -> None:
    """``--webhook`` checked like ``anomaly.webhook_url`` but named as typed (the anomaly object's
    messages name its keys), and refused where no alert would ever reach it. ``--webhook ""``
    turns the file's webhook off, as ``""`` does in the file."""
    if not hasattr(args, "webhook"):
        return
    from tui.anomaly.settings import CHECKS

    if not CHECKS["webhook_url"](args.webhook, "--webhook"):
        return
    if hasattr(args, "anomalies_enabled"):
        raise SettingsError("--webhook: contradicts --no-anomalies (with detection off, no alert is ever sent)")
    section = raw.get("anomaly")
    if isinstance(section, dict) and section.get("enabled") is False:
        raise SettingsError(f"--webhook: anomaly.enabled is false in {origin}, so no alert is ever sent; set it true or leave --webhook out")


def _open_log(path: str) -> TextIO:
    try:
        return open(path, "a", encoding="utf-8", buffering=1 << 20)
    except IsADirectoryError:
        raise SettingsError(f"--events-log: {path} is a directory; give a file path") from None
    except OSError as exc:
        raise SettingsError(f"--events-log: cannot open {path} for appending: {exc.strerror}") from None
    except ValueError as exc:  # a NUL in the name, or one that cannot be encoded
        raise SettingsError(f"--events-log: {path} is not a usable file name ({exc})") from None


def _err(message: str) -> None:
    print(f"eventdash: {message}", file=sys.stderr, flush=True)


def _tune_gc() -> None:
    """Each event is a dozen small dicts that die young and hold no cycles; collecting generation 0
    every 700 allocations would cost a quarter of the generator's time (measured: 62k -> 80k
    events/s). Collect less often, and leave the start-up objects out of every collection."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@dataclass(frozen=True)
class RunOptions:
    """What a run needs besides the settings."""

    seed: int | None = None
    duration: float | None = None
    events_log: TextIO | None = None
    generate: bool = True
    #: where the dashboard's ``w`` saves: ``--settings``, else the user's file (never the repository's)
    settings_path: Path = field(default_factory=user_settings_path)
    writer_name: str | None = None
    #: ``--listen``: serve's ingest and read API in the dashboard's process.
    serve: ServeOptions | None = None
    #: ``--state-dir`` without ``--listen``: the generator's spool, writer id and checkpoints.
    state_dir: Path | None = None
    #: ``--scenario``: spikes, drops and the wave the generator applies (zipf is in the settings).
    scenarios: tuple[Scenario, ...] = ()
    #: ``--backfill`` in seconds; None: the default (see :func:`backfill_seconds`).
    backfill: float | None = None


@dataclass(frozen=True)
class Plan:
    """What :func:`main` is to run, every input already checked."""

    command: Literal["dashboard", "headless", "summary", "query", "web", "send", "serve", "ingest"]
    settings: Settings
    options: RunOptions
    as_json: bool = False
    #: ``summary``: tracking ids per type in the table (0: all).
    top: int = 0
    #: ``web``: where to listen, and the dashboard command each browser connection runs.
    web: tuple[Listen, list[str]] | None = None
    #: ``send``: the load to send.
    load: send.SendOptions | None = None
    #: ``serve``: where to listen, the state directory, limits, CORS and tokens.
    serve: ServeOptions | None = None
    #: ``ingest``: what to read and where the events go.
    ingest: IngestOptions | None = None
    #: ``query``: the checked query, its format and the moment it is answered as of.
    query: query_command.QueryCommand | None = None


def prepare(argv: Sequence[str] | None = None, resolve_hosts: bool = True) -> Plan:
    """Parse the flags, read the settings, check everything and open the events log; run nothing.

    Bad input raises ``SystemExit(2)`` after one ``eventdash: error: ...`` line on stderr (``--help``
    and ``--version`` raise ``SystemExit(0)``). ``resolve_hosts=False`` skips the DNS look-up of the
    memcached hosts, for tests that feed thousands of made-up names.
    """
    parser = make_parser()
    tokens = query_command.relative_times_as_values(sys.argv[1:] if argv is None else argv)
    _Parser.hidden = secrets_in(tokens)
    args = parser.parse_args(tokens)
    if args.command == "send":  # a load client: it reads no settings
        try:
            return Plan("send", Settings(), RunOptions(), load=send.options_from(args))
        except send.UsageError as exc:
            usage_error(str(exc))
    scenarios = _scenarios(args)
    backfill = _backfill(args)
    try:
        settings = load_settings(args, resolve_hosts)
        writer_name = check_writer_name(args.writer_name, "--writer-name") if hasattr(args, "writer_name") else None
        events_log = _open_log(args.events_log) if hasattr(args, "events_log") else None
    except SettingsError as exc:
        usage_error(str(exc))
    if args.command == "summary":
        top = getattr(args, "top", SUMMARY_TOP)
        if top < 0:
            usage_error(f"--top: must be 0 (all) or more, got {top}")
        return Plan("summary", settings, RunOptions(), as_json=getattr(args, "json", False), top=top)
    if args.command == "query":
        try:
            return Plan("query", settings, RunOptions(), query=query_command.command_from(args, settings, time.time()))
        except QueryError as exc:
            usage_error(str(exc))
    try:
        if args.command == "serve":
            return Plan("serve", settings, RunOptions(), serve=service_options.serve_options(args, settings))
        if args.command == "ingest":
            return Plan("ingest", settings, RunOptions(), ingest=service_options.ingest_options(args, settings))
    except service_options.ServiceUsageError as exc:
        usage_error(str(exc))
    if args.command == "web":
        try:
            web = (listen_from(args), dashboard_command(args, parser))
        except WebUsageError as exc:
            usage_error(str(exc))
        return Plan("web", settings, RunOptions(), web=web)
    serve, generate = _dashboard_listen(args, settings)
    _check_generator_flags(args, settings, scenarios, generate, backfill)
    options = RunOptions(
        state_dir=_generator_state_dir(args) if serve is None else None,
        seed=getattr(args, "seed", None),
        duration=getattr(args, "duration", None),
        events_log=events_log,
        generate=generate,
        settings_path=Path(args.settings) if hasattr(args, "settings") else user_settings_path(),
        writer_name=writer_name,
        serve=serve,
        scenarios=tuple(s for s in scenarios if not isinstance(s, Zipf)),
        backfill=backfill,
    )
    return Plan("headless" if getattr(args, "headless", False) else "dashboard", settings, options)


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    """``--scenario``s parsed; a ``zipf`` one becomes the ``zipf`` setting (it wins over ``--zipf``
    and the file: one Zipf draw, the factory's)."""
    if not hasattr(args, "scenario"):
        return []
    try:
        scenarios = parse_scenarios(args.scenario)
    except ScenarioError as exc:
        usage_error(str(exc))
    for scenario in scenarios:
        if isinstance(scenario, Zipf):
            args.zipf = scenario.exponent
    return scenarios


def _backfill(args: argparse.Namespace) -> float | None:
    """``--backfill`` in seconds (None: not given); the text is kept in ``args``, so that ``web``
    passes it on as typed."""
    if not hasattr(args, "backfill"):
        return None
    try:
        return parse_backfill(args.backfill)
    except ScenarioError as exc:
        usage_error(str(exc))


def _check_generator_flags(
    args: argparse.Namespace, settings: Settings, scenarios: Sequence[Scenario], generate: bool, backfill: float | None
) -> None:
    """``--scenario`` and ``--backfill`` shape the generator: refused where there is none, where a
    spike or drop names an id it never makes, or where the past would outlive the single buckets."""
    if not generate:
        for flag, given in (("--scenario", scenarios), ("--backfill", backfill is not None)):
            if given:
                usage_error(f"{flag}: shapes the generated traffic, and nothing is generated here (--no-generate, or --listen without --generate)")
    named = [s for s in scenarios if isinstance(s, Window) and s.id is not None]
    ids = (generated_ids(settings.generated_ids) if settings.generated_ids else settings.tracking_ids) if named else ()
    known = set(ids)
    for scenario in named:
        if scenario.id not in known:
            where = (
                f"--tracking-ids {settings.generated_ids} makes {len(ids):,} ids, the first {', '.join(ids[:3])} "
                "(eventdash summary lists those with traffic)"
                if settings.generated_ids
                else f"its ids are the settings' tracking_ids: {', '.join(ids[:12])}{' ...' if len(ids) > 12 else ''}"
            )
            usage_error(f"--scenario: the generator never makes the id {scenario.id!r} of {scenario.kind}:{scenario.type or '*'}; {where}")
    if backfill is not None and backfill > settings.retention_seconds[0]:
        usage_error(
            f"--backfill: {backfill:g} s is longer than the single buckets are kept "
            f"(retention_hours.x1 = {settings.retention_seconds[0] / 3600:g} h); the older past would never be read"
        )


def _dashboard_listen(args: argparse.Namespace, settings: Settings) -> tuple[ServeOptions | None, bool]:
    """The in-process server's options (``--listen``), and whether the generator runs: by default,
    unless ``--no-generate``; with ``--listen``, only if ``--generate``."""
    listen = getattr(args, "listen", None)
    if listen is None:
        if hasattr(args, "generate"):
            usage_error("--generate: only with --listen (without it the generator runs unless --no-generate)")
        if hasattr(args, "state_dir") and hasattr(args, "no_generate"):
            usage_error("--state-dir: with --no-generate nothing is written here, so there is nothing to spool")
        return None, not hasattr(args, "no_generate")
    if hasattr(args, "headless"):
        usage_error("--listen: the in-process server runs with the dashboard; for one without a screen use eventdash serve")
    if hasattr(args, "generate") and hasattr(args, "no_generate"):
        usage_error("--generate: contradicts --no-generate")
    try:
        return service_options.dashboard_serve_options(listen, getattr(args, "state_dir", None), settings), hasattr(args, "generate")
    except service_options.ServiceUsageError as exc:
        usage_error(str(exc))


def _generator_state_dir(args: argparse.Namespace) -> Path | None:
    """``--state-dir`` for the generator alone (None: its events are counted without a spool)."""
    if not hasattr(args, "state_dir"):
        return None
    if not args.state_dir or "\0" in args.state_dir:
        usage_error("--state-dir: give a directory path")
    return Path(args.state_dir)


def main(argv: Sequence[str] | None = None) -> int:
    _tune_gc()
    plan = prepare(argv)
    try:
        return run(plan)
    except SettingsError as exc:  # the prefix's metadata in memcached conflicts with these settings
        usage_error(str(exc))


def run(plan: Plan) -> int:
    """Run a checked plan; its exit status."""
    if plan.web is not None:
        return serve_web(*plan.web)
    if plan.load is not None:
        return send.run(plan.load)
    if plan.serve is not None:
        from tui.service.server import run_serve  # aiohttp is loaded only to serve

        return run_serve(plan.settings, plan.serve)
    if plan.ingest is not None:
        from tui.service.ingest_cli import run_ingest

        return run_ingest(plan.settings, plan.ingest)
    if plan.query is not None:
        return run_query(plan.settings, plan.query)
    if plan.command == "summary":
        return run_summary(plan.settings, as_json=plan.as_json, top=plan.top)
    if plan.command == "headless":
        return run_headless(plan.settings, plan.options)
    return run_dashboard(plan.settings, plan.options)


def _refuse_embedded_reader(command: str, opened: OpenedStore, settings: Settings) -> int | None:
    """A reader of others' counts (``summary``, ``--no-generate``) needs memcached: the embedded
    store lives inside one running eventdash process, so here it could only ever show zeros."""
    why = (
        f"{command} reads the counts that writers keep in memcached; the embedded store lives only inside a "
        "running eventdash process, so there would be nothing to read"
    )
    if settings.backend == "memory":
        _err(f"error: {why}: use --backend memcached or auto")
        return EXIT_USAGE
    if opened.unreachable is not None:
        _err(f"error: {opened.unreachable}: {why}; start memcached or point --memcached at it")
        return EXIT_RUNTIME
    return None


def run_headless(settings: Settings, options: RunOptions) -> int:
    """Generate (unless ``--no-generate``), print one JSON line per refresh, flush and print at exit."""
    from tui.headless import run_headless as run
    from tui.pipeline import Pipeline
    from tui.store import open_store

    opened = open_store(settings, chosen_by=settings.origin_of("backend"))
    if not options.generate and (refused := _refuse_embedded_reader("--no-generate", opened, settings)) is not None:
        opened.store.close()
        return refused
    _err(opened.reason)
    state = _open_state_dir(options, opened.store.close)
    if isinstance(state, int):
        return state
    pipeline = Pipeline(
        settings, opened.store, seed=options.seed, events_log=options.events_log, generate=options.generate,
        writer_name=options.writer_name, writer_id=None if state is None else state.writer_id, scenarios=options.scenarios,
    )
    spool = _spool_generator(pipeline, state, opened.store.close)
    if isinstance(spool, int):
        return spool
    backfill(pipeline, options)
    try:
        flushed, fatal = run(pipeline, opened, options.duration)
    finally:
        _close_spool(spool, state)
    return _finish(pipeline, options, flushed, fatal)


def run_dashboard(settings: Settings, options: RunOptions) -> int:
    """Open the dashboard; on ``q`` or any stop signal stop generating, flush, publish, exit 0.

    With ``--listen`` it also runs serve's ingest and read API (:mod:`tui.service.embedded`) over a
    spool in ``--state-dir``, feeding the same writer; on the way out the server stops taking
    requests before the last flush. A failure in any thread closes the dashboard, flushes what was
    counted and exits 1 naming it.
    """
    from tui.app import EventDashApp  # Textual is imported only for the dashboard
    from tui.pipeline import Pipeline
    from tui.store import StoreUnavailable, open_store

    opened = open_store(settings, chosen_by=settings.origin_of("backend"))
    if not options.generate and options.serve is None and (refused := _refuse_embedded_reader("--no-generate", opened, settings)) is not None:
        opened.store.close()
        return refused
    state = _open_state_dir(options, opened.store.close)
    if isinstance(state, int):
        return state
    pipeline = Pipeline(
        settings, opened.store, seed=options.seed, events_log=options.events_log, generate=options.generate,
        writer_name=options.writer_name, writer_id=None if state is None else state.writer_id, scenarios=options.scenarios,
    )
    spool = _spool_generator(pipeline, state if options.serve is None else None, opened.store.close)
    if isinstance(spool, int):
        return spool
    server = None
    if state is not None and options.serve is not None:
        from tui.service.embedded import EmbeddedServer, ListenFailed

        server = EmbeddedServer(pipeline, options.serve, state, pipeline.clock)
        try:
            server.start()
        except ListenFailed as exc:
            server.close()
            state.close()
            opened.store.close()
            _err(f"error: {exc}")
            return EXIT_RUNTIME
    app = EventDashApp(pipeline, settings_path=options.settings_path, duration=options.duration, ingest=server)
    fatal: list[str] = []

    def fail(reason: str) -> None:
        fatal.append(reason)
        app.call_from_thread(app.exit, 1)

    pipeline.on_fatal = fail
    on_thread_failure(fail)
    on_stop_signals(lambda _: app.call_later(app.action_quit))  # like q: stop, flush, exit 0
    backfill(pipeline, options)
    pipeline.start()
    app.run()
    if server is not None:
        server.stop()  # no request after the last flush (q stopped it already)
    flushed = pipeline.stop()  # also after a crash: what was counted is written
    try:
        pipeline.reader.refresh()
    except StoreUnavailable:
        pass  # the flush failure is reported below
    if server is not None:
        server.close()
    _close_spool(spool, state)
    reason = fatal[0] if fatal else (app.failure or pipeline.fatal)
    return _finish(pipeline, options, flushed, reason) or (app.return_code or 0)


def backfill_seconds(pipeline: Pipeline, options: RunOptions) -> float:
    """How much past to generate: ``--backfill``; by default, with a spike or drop to show, the span
    the anomaly watch primes from (``max(baseline_seconds, warmup_seconds)``, at most the single
    buckets' retention), so the detector judges the first live buckets against a baseline; none
    when the store already holds counts there (a second writer, a restart), or without detection."""
    if options.backfill is not None:
        return options.backfill
    settings = pipeline.settings
    if pipeline.anomalies is None or not any(isinstance(s, Window) for s in options.scenarios):
        return 0.0
    span = float(min(max(settings.anomaly.baseline_seconds, settings.anomaly.warmup_seconds), settings.retention_seconds[0]))
    from tui.store import StoreUnavailable

    try:
        return 0.0 if pipeline.holds_data(span) else span
    except StoreUnavailable:
        return 0.0  # the live run says why; no past is made that could only wait in memory


def backfill(pipeline: Pipeline, options: RunOptions) -> None:
    """Generate and count the past before the live start (:meth:`Pipeline.backfill`), and say so."""
    seconds = backfill_seconds(pipeline, options) if pipeline.generator is not None else 0.0
    if seconds <= 0:
        return
    started = time.perf_counter()
    made = pipeline.backfill(seconds)
    how = "--backfill" if options.backfill is not None else "the anomaly baseline's span, as the store held none; --backfill 0 skips it"
    _err(
        f"backfilled {_span_text(seconds)} of traffic before going live: {made:,} events at "
        f"{pipeline.settings.events_per_second:g}/s in {time.perf_counter() - started:.1f} s ({how})"
    )


def _span_text(seconds: float) -> str:
    """``1 h``, ``30 min``, ``90 s``: a duration as a person gives it."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _open_state_dir(options: RunOptions, close_store: Callable[[], None]) -> StateDir | None | int:
    """The state directory locked: ``--listen``'s (after the warning off loopback), or the
    generator's ``--state-dir``; None with neither; an exit status (2) when it cannot be used."""
    if options.serve is not None:
        tokens = bool(options.serve.config.ingest_token and options.serve.config.read_token)
        warning = options.serve.listen.warning("the ingest and read API" + ("" if tokens else ", without a token for each (EVENTDASH_INGEST_TOKEN, EVENTDASH_READ_TOKEN)"))
        if warning is not None:
            _err(warning)
    path = options.serve.state_dir if options.serve is not None else options.state_dir
    if path is None:
        return None
    from tui.service.state import StateDir, StateDirError

    try:
        return StateDir(path)
    except StateDirError as exc:
        close_store()
        _err(f"error: {exc}")
        return EXIT_USAGE


def _spool_generator(pipeline: Pipeline, state: StateDir | None, close_store: Callable[[], None]) -> Spool | None | int:
    """With the generator's own state directory: its spool, the writer's checkpoint taken up and
    what was spooled but not written replayed (:func:`tui.service.wiring.spool_generator`); an
    exit status (2) when the directory's files are damaged."""
    if state is None or pipeline.generator is None:
        return None
    from tui.service.spool import DEFAULT_CAPACITY
    from tui.service.state import StateDirError
    from tui.service.wiring import spool_generator

    try:
        return spool_generator(pipeline, state, DEFAULT_CAPACITY)
    except (StateDirError, SettingsError) as exc:
        reason = str(exc)
    except OSError as exc:  # the spool's directory or files
        reason = f"--state-dir: cannot use {state.path}: {exc.strerror or exc}"
    state.close()
    close_store()
    _err(f"error: {reason}")
    return EXIT_USAGE


def _close_spool(spool: Spool | None, state: StateDir | None) -> None:
    """After the pipeline's last flush: what it could not write stays in the spool for the next start."""
    if spool is not None:
        spool.close()
    if state is not None:
        state.close()


def _finish(pipeline: Pipeline, options: RunOptions, flushed: bool, fatal: str | None = None) -> int:
    """Close the log and the store; say what failed and how many counts never reached the store."""
    if options.events_log is not None:
        try:
            options.events_log.close()
        except OSError as exc:
            fatal = fatal or f"the events log could not be closed: {exc.strerror or exc}"
    pipeline.store.close()
    if fatal is not None:
        unwritten = pipeline.writer.unwritten_events()
        lost = f"; {unwritten:,} counted events could not be written to the store" if unwritten else "; every counted event was written"
        _err(f"error: {fatal}{lost}")
        return EXIT_RUNTIME
    if flushed:
        return EXIT_OK
    log = " (every event is in the events log)" if options.events_log is not None else ""
    if pipeline.spool_generated is not None:
        log = f"; they stay in the spool in {options.state_dir} and are written at the next start with that --state-dir"
    _err(
        f"the last counts could not be written ({pipeline.status().store_error}); "
        f"{pipeline.writer.unwritten_events():,} counted events are missing from the store{log}"
    )
    return EXIT_RUNTIME


def run_query(settings: Settings, command: query_command.QueryCommand) -> int:
    """``eventdash query``: like ``summary`` it reads what writers keep in memcached (exit 1 without one)."""
    from tui.store import open_store

    opened = open_store(settings, chosen_by=settings.origin_of("backend"))
    if (refused := _refuse_embedded_reader("query", opened, settings)) is not None:
        opened.store.close()
        return refused
    try:
        return query_command.run_query_command(opened.store, settings, command)
    finally:
        opened.store.close()


def run_summary(settings: Settings, as_json: bool, top: int = SUMMARY_TOP) -> int:
    """``eventdash summary``: read the window once, refresh the summary keys, print. Parts of the
    window that could not be read whole are said on stderr (and in the JSON), never hidden."""
    from tui.headless import headless_line
    from tui.pipeline import Reader
    from tui.pipeline.reader import MAX_VISITOR_IDS
    from tui.store import StoreUnavailable, open_store

    opened = open_store(settings, chosen_by=settings.origin_of("backend"))
    if (refused := _refuse_embedded_reader("summary", opened, settings)) is not None:
        opened.store.close()
        return refused
    _err(opened.reason)
    try:
        view = Reader(settings, opened.store).refresh()
    except StoreUnavailable as exc:
        _err(f"error: {exc}")
        return EXIT_RUNTIME
    finally:
        opened.store.close()
    for gap in view.incomplete_json():
        _err(f"incomplete: buckets {gap['from']} to {gap['to']} could not be read whole ({gap['why']}); the counts may be low")
    visitors = view.visitors
    for gap in visitors.incomplete if visitors is not None else ():
        shown_gap = gap.to_json(view.bucket_seconds)
        _err(f"incomplete: visitors of buckets {shown_gap['from']} to {shown_gap['to']} could not be read whole ({gap.why}); the visitors may be low")
    if as_json:
        print(json.dumps(headless_line(view, opened.store.backend, None, now=view.as_of, settings=settings)))
        return EXIT_OK
    import heapq

    from rich.console import Console
    from rich.table import Table

    incomplete = " · [red]incomplete[/red]" if view.incomplete else ""
    if visitors is not None and visitors.incomplete:
        incomplete += " · [red]visitors incomplete[/red]"
    table = Table(title=f"{view.label} · {opened.store.backend}{incomplete}")
    table.add_column("type")
    table.add_column("tracking id")
    table.add_column("events", justify="right")
    table.add_column("visitors", justify="right")
    not_read = 0
    for etype in EVENT_TYPES:
        summary = view.summary[etype]
        by_id = visitors.by_series.get(etype, {}) if visitors is not None else {}
        table.add_row(etype, "[b]all[/b]", f"[b]{summary.total:,}[/b]", f"[b]{_distinct_text(visitors.series_totals.get(etype) if visitors else None)}[/b]")
        ranked = summary.by_tracking_id.items()
        shown = sorted(ranked, key=lambda kv: (-kv[1], kv[0])) if not top else heapq.nsmallest(top, ranked, key=lambda kv: (-kv[1], kv[0]))
        for tid, count in shown:
            not_read += tid not in by_id
            table.add_row("", tid, f"{count:,}", _distinct_text(by_id.get(tid)))
        if len(shown) < len(summary.by_tracking_id):
            table.add_row("", f"[dim]… {len(summary.by_tracking_id) - len(shown):,} more (--top 0 for all)[/dim]", "", "")
    if visitors is not None:
        table.add_row("[b]every type[/b]", "[b]all[/b]", f"[b]{view.total:,}[/b]", f"[b]{_distinct_text(visitors.total)}[/b]")
    Console().print(table)
    if not_read:
        print(
            f"visitors: – = not read ({not_read:,} ids shown): only the {MAX_VISITOR_IDS:,} busiest ids are read; "
            "one id: GET /api/v1/summary/TYPE?tracking_id=ID&distinct=visitors"
        )
    return EXIT_OK


def _distinct_text(estimate: Estimate | None) -> str:
    """A distinct count for the table: ``1,234 ±25`` (two standard deviations), ``12`` when exact,
    ``–`` when not read."""
    if estimate is None:
        return "–"
    value = round(estimate.value)
    spread = max(round(estimate.upper) - value, value - round(estimate.lower))
    return f"{value:,} ±{spread:,}" if spread else f"{value:,}"
