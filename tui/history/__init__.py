"""History: aggregate queries over the blocks Store v2 keeps, the ``query`` command, reports.

No Textual here: the history screen (UI) and the HTTP API use :func:`run_query` and the types below.
They are loaded on first use (PEP 562), so that the command line, which names the ``query`` flags
for every command, does not load the store and its memcached client to print ``--help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.history.aggregate import QueryResult, Row, run_query
    from tui.history.query import Query, QueryError, QueryParams, parse_query

_WHERE = {
    "Query": "query", "QueryError": "query", "QueryParams": "query", "parse_query": "query",
    "QueryResult": "aggregate", "Row": "aggregate", "run_query": "aggregate",
}
__all__ = ["Query", "QueryError", "QueryParams", "QueryResult", "Row", "parse_query", "run_query"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tui.history' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tui.history.{_WHERE[name]}"), name)
