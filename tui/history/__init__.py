"""History: aggregate queries over the blocks Store v2 keeps, the ``query`` command, reports.

No Textual here: the history screen (UI) and the HTTP API use :func:`run_query` and the types below.
"""

from tui.history.aggregate import QueryResult, Row, run_query
from tui.history.query import Query, QueryError, QueryParams, parse_query

__all__ = ["Query", "QueryError", "QueryParams", "QueryResult", "Row", "parse_query", "run_query"]
