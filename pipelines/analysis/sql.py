"""`openai-ft sql`: a query on the pipeline's destination through dlt's SQL client, printed as
an aligned table, CSV or JSON. Table names resolve in the dataset (`SELECT * FROM job_summary`).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

from tabulate import tabulate

if TYPE_CHECKING:
    import dlt

from pipelines.errors import DestinationError, QueryError, duckdb_locked, one_line
from sources.openai_fine_tuning.errors import ConfigurationError, FineTuningSourceError

FORMATS = ("table", "csv", "json")


def check_query(query: str) -> None:
    """A query that is only whitespace is a configuration error (exit 2), said before any
    destination is opened."""
    if not query.strip():
        raise ConfigurationError("No query: pass it as an argument or on standard input")


def split_statements(query: str, dialect: Optional[str] = None) -> List[str]:
    """The statements of `query`, split at its semicolons (not those inside strings, quoted
    names or comments: sqlglot's tokenizer finds them); pieces with no SQL in them (nothing,
    or only a comment) dropped."""
    import sqlglot
    from sqlglot.tokens import TokenType

    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(query)
    except Exception:  # sqlglot cannot tokenize it: the destination says what is wrong
        return [query]
    statements, start, words = [], 0, 0  # words: tokens of the statement so far
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if words:
                statements.append(query[start : token.start].strip())
            start, words = token.end + 1, 0
        else:
            words += 1
    if words:  # not a comment alone after the last `;` (sqlglot keeps comments on tokens)
        statements.append(query[start:].strip())
    return statements


Result = Tuple[List[str], List[Sequence[Any]]]


def run_queries(
    pipeline: dlt.Pipeline,
    query: str,
    duckdb_path: Optional[str] = None,
    one_statement_for: Optional[str] = None,
) -> List[Result]:
    """(column names, rows) of each statement of `query` (split at its semicolons), run in
    order on one connection to the pipeline's dataset (`duckdb_path`: the DuckDB file as the
    user named it, for messages). A statement without rows gives ([], []).
    `one_statement_for` (e.g. "--format csv") refuses several statements before any runs.

    Raises:
        ConfigurationError: No query, or no SQL client on the destination (exit 2).
        QueryError: A statement failed in the destination (exit 2).
        DestinationError: The destination cannot be read: no DuckDB file, a file another
            process holds (`DuckDBLockedError`, with its PID), a failed connection (exit 5).
    """
    check_query(query)
    destination = pipeline.destination.destination_name
    from dlt.common.configuration.exceptions import ConfigurationException
    from dlt.common.destination.exceptions import SqlClientNotAvailable
    from dlt.destinations.exceptions import DatabaseException, DatabaseUndefinedRelation

    try:
        with pipeline.sql_client() as client:
            statements = split_statements(query, client.capabilities.sqlglot_dialect)
            if not statements:
                raise ConfigurationError(f"No statement in the query {query.strip()!r:.80}")
            if one_statement_for and len(statements) > 1:
                raise ConfigurationError(
                    f"{one_statement_for} prints one statement's rows; the query has"
                    f" {len(statements)} statements (run them one at a time, or use"
                    " --format table)"
                )
            try:
                return [_result(client, statement) for statement in statements]
            except DatabaseUndefinedRelation:
                if client.has_dataset():
                    raise
                # the file exists but nothing was loaded into it (a first load that failed)
                raise DestinationError(
                    f"The dataset '{pipeline.dataset_name}' has no tables yet: run `openai-ft"
                    " load` first (a load that failed before writing leaves none)"
                ) from None
    except SqlClientNotAvailable:
        raise ConfigurationError(
            f"The {destination} destination has no SQL client to run queries on"
        ) from None
    except DatabaseException as error:
        raise QueryError(f"The query failed: {one_line(str(error))[:500]}") from None
    except Exception as error:  # the driver failed before the query: connection, credentials
        if isinstance(error, (ConfigurationException, FineTuningSourceError)):
            raise  # missing configuration: exit 2, said by the CLI
        # another process took the file after `existing_pipeline` opened it: say who
        locked = duckdb_locked(error, duckdb_path) if destination == "duckdb" else None
        if locked is not None:
            raise locked from None
        raise DestinationError(
            f"Could not query the {destination} destination: {type(error).__name__}:"
            f" {one_line(str(error))[:300]}"
        ) from None


def _result(client: Any, statement: str) -> Result:
    with client.execute_query(statement) as cursor:
        if cursor.description is None:  # a statement without rows
            return [], []
        names = [column[0] for column in cursor.description]
        return names, list(cursor.fetchall())


def run_query(pipeline: dlt.Pipeline, query: str, duckdb_path: Optional[str] = None) -> Result:
    """(column names, rows) of `query`'s last statement (`run_queries`)."""
    return run_queries(pipeline, query, duckdb_path)[-1]


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):  # PostgreSQL's sum() and numeric columns
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def render(names: List[str], rows: List[Sequence[Any]], output: str = "table") -> str:
    """The rows as an aligned table (NULL shown as `NULL`), CSV (NULL empty) or a JSON array."""
    plain = [[_plain(value) for value in row] for row in rows]
    if output == "json":
        return json.dumps([dict(zip(names, row, strict=True)) for row in plain], indent=1)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(plain)
        return buffer.getvalue().rstrip("\n")
    table = tabulate(plain, headers=names, tablefmt="simple", missingval="NULL", floatfmt=".10g")
    count = f"({len(rows)} row{'' if len(rows) == 1 else 's'})"
    return f"{table}\n{count}" if names else count
