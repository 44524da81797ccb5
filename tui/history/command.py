"""``eventdash query``: its flags, their checks (in ``prepare``, exit 2 naming the flag) and its run.

The relative times (``-1h``, ``now``) are resolved once, when the flags are checked, and the run
answers as of that same moment, so the range checked is the range read. Whether the step is kept
that far back is checked there too, against the settings' retention, which the prefix in memcached
must equal (a differing one is a PrefixConflict, exit 2, before anything is read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui.history.query import (
    RELATIVE_TIME,
    Query,
    QueryError,
    QueryParams,
    format_duration,
    parse_query,
)
from tui.settings import Settings

if TYPE_CHECKING:  # the store (and pymemcache) is loaded only when a query runs, not for every command's flags
    from tui.history.aggregate import QueryResult
    from tui.store import Store

#: Output formats; ``allezon`` is JSON in Allezon's ``{"columns": [...], "rows": [...]}`` shape.
FORMATS: tuple[str, ...] = ("table", "csv", "json", "allezon")
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class QueryCommand:
    """A checked ``eventdash query``: the query, the format, and the moment it is answered as of."""

    query: Query
    fmt: str
    now: float
    typed_from: str


def add_parser(commands: Any, store_options: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "query",
        help="counts per step over a past range, filtered and grouped (history)",
        description="Aggregate the counts memcached keeps: per step over a range, by type and tracking id.",
    )
    parser.add_argument("--from", dest="start", metavar="TIME", default="-1h", help="ISO-8601 (UTC unless an offset is given), now, or relative: -90m, -2h, -7d (default -1h)")
    parser.add_argument("--to", dest="end", metavar="TIME", default="now", help="the same forms (default now: the step still filling is included)")
    parser.add_argument("--step", metavar="STEP", default="1m", help="10s, 1m, 10m or 1h, or any whole number of buckets (default 1m); refused if finer than is kept for --from")
    parser.add_argument("--type", dest="types", metavar="TYPE", action="append", default=[], help="an event type (repeatable; default all)")
    parser.add_argument("--tracking-id", dest="tracking_ids", metavar="ID", action="append", default=[], help="a tracking id or a glob such as 'INF-*' (repeatable; default all)")
    parser.add_argument("--group-by", metavar="COLUMNS", default=None, help="type, tracking_id or type,tracking_id (default: one total per step)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="table", help="table (default), csv, json, or allezon: JSON as {\"columns\": [...], \"rows\": [...]}")
    store_options(parser)


def relative_times_as_values(argv: Sequence[str]) -> list[str]:
    """``--from -2h`` as ``--from=-2h``: argparse takes a token that starts with ``-`` (and is not a
    plain negative number) for a flag, so the form the README shows would be refused as missing."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in ("--from", "--to") and RELATIVE_TIME.fullmatch(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def command_from(args: argparse.Namespace, settings: Settings, now: float) -> QueryCommand:
    """Check the flags of ``query`` against the settings at ``now``; raises :class:`QueryError`."""
    from tui.history.plan import check_kept
    from tui.store.layout import Layout

    params = QueryParams(args.start, args.end, args.step, args.types, args.tracking_ids, args.group_by)
    query = parse_query(params, now, settings.bucket_seconds)
    layout = Layout(settings.memcached.key_prefix, settings.bucket_seconds, retention=settings.retention)
    check_kept(query, layout, now, typed_from=args.start)
    return QueryCommand(query, args.fmt, now, args.start)


def _err(message: str) -> None:
    print(f"eventdash: {message}", file=sys.stderr, flush=True)


def run_query_command(store: Store, settings: Settings, command: QueryCommand) -> int:
    """Read the query from ``store``, print it in the chosen format; gaps are said on stderr too."""
    from tui.history.aggregate import run_query
    from tui.store import StoreUnavailable, prefix_settings

    try:
        layout = store.open_prefix(prefix_settings(settings))
        result = run_query(store, layout, command.query, command.now, typed_from=command.typed_from)
    except StoreUnavailable as exc:
        _err(f"error: {exc}")
        return EXIT_RUNTIME
    except QueryError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    for gap in result.incomplete:
        shown = gap.to_json(result.bucket_seconds)
        _err(f"incomplete: buckets {shown['from']} to {shown['to']} could not be read whole ({gap.why}); the counts may be low")
    try:
        print_result(result, command.fmt, store.backend)
        sys.stdout.flush()
    except BrokenPipeError:  # `eventdash query | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (so the interpreter's last flush cannot fail)
    return EXIT_OK


def print_result(result: QueryResult, fmt: str, backend: str) -> None:
    from tui.history.export import to_allezon, to_json, write_csv

    if fmt == "csv":
        write_csv(result, sys.stdout)
    elif fmt in ("json", "allezon"):
        json.dump(to_json(result) if fmt == "json" else to_allezon(result), sys.stdout)
        sys.stdout.write("\n")
    else:
        print_table(result, backend)


def print_table(result: QueryResult, backend: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    query = result.query
    filters = escape(" ".join([*query.types, *query.tracking_ids])) or "all events"
    incomplete = " · [red]incomplete[/red]" if result.incomplete else ""
    table = Table(title=f"{filters} · {format_duration(query.step_seconds)} steps · {backend}{incomplete}")
    table.add_column("bucket (UTC)")
    for name in query.group_by:
        table.add_column(name.replace("_", " "))
    table.add_column("events", justify="right")
    for row in result.rows:
        count = f"{row.count:,}" + (" [red]incomplete[/red]" if row.incomplete else "")
        table.add_row(row.start_iso, *(escape(value) for value in row.group), count)  # an id may hold [markup]
    Console().print(table)
