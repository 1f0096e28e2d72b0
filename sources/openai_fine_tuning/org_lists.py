"""Organization-level lists (`/v1/<path>`, one page, not per job), each one declaration, and
their reader.

An `OrgList` is read whole on every run: it is small, and what it says changes over time
(shutdown dates get announced). It never keeps a job open, so it is not part of the ledger.
Adding a list means adding an `OrgList` below and its name to
`settings.ORGANIZATION_RESOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Tuple

import dlt
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.resource import DltResource

from .errors import AuthenticationError
from .http.client import FineTuningApi
from .rows import model_row
from .schema import MODEL_COLUMNS
from .settings import MODELS_PATH

if TYPE_CHECKING:  # imported on first use: the source imports without pyarrow (DESIGN.md)
    import pyarrow as pa

    from .columnar import ColumnTypes

Row = Dict[str, Any]


@dataclass(frozen=True)
class OrgList:
    """A list of the organization, loaded into one table merged on `id`.

    Attributes:
        name: Resource name, table name.
        path: The list's path under the API root.
        columns: Column hints of the table.
        row: Item, endpoint and the time of this listing to row.
        scope: The key scope the list needs: a 403 skips it (the rest of the run loads, the
            summary says so) instead of failing the run.
        unknown: What stays unknown when it is skipped, for the summary.
    """

    name: str
    path: str
    columns: TTableSchemaColumns
    row: Callable[[Any, str, datetime], Row]
    scope: str
    unknown: str

    @cached_property
    def types(self) -> ColumnTypes:
        from .columnar import ColumnTypes

        return ColumnTypes(self.columns)

    def _table(self, rows: List[Row], endpoint: str) -> pa.Table:
        """The rows as one Arrow table (`columnar`: normalize imports it, no per-row work),
        `_dlt_id` made of `id`.

        Raises:
            UpstreamError: when a value does not fit its column's type, naming the endpoint.
        """
        from . import columnar

        table = columnar.checked_table_of(
            rows, self.types, ("id",), f"{endpoint} answered {self.name}"
        )
        return columnar.with_load_id_slot(table)

    def resource(self, api: FineTuningApi) -> DltResource:
        """The merged dlt resource that reads the list once per run."""

        def read() -> Iterator[Any]:
            yield dlt.mark.materialize_table_schema()  # the table exists even when skipped
            try:
                listed = api.list_all(self.path)
            except AuthenticationError as error:
                if error.status != 403:
                    raise
                api.stats.skip_list(
                    self.name,
                    f"{api.endpoint(self.path)} answered 403 ({error.detail}): the key may not"
                    f" list {self.name} (scope {self.scope}), so {self.unknown} are not known;"
                    " the rest is loaded",
                )
                return
            seen_at = datetime.now(UTC)
            endpoint = api.endpoint(self.path)
            rows: List[Row] = [self.row(item, endpoint, seen_at) for item in listed]
            api.stats.count_rows(self.name, len(rows))
            if rows:
                yield self._table(rows, endpoint)

        return dlt.resource(
            read,
            name=self.name,
            write_disposition="merge",
            primary_key="id",
            columns=self.columns,
        )


ORG_LISTS: Tuple[OrgList, ...] = (
    OrgList(
        name="models",
        path=MODELS_PATH,
        columns=MODEL_COLUMNS,
        row=model_row,
        scope="api.model.read",
        unknown="shutdown dates",
    ),
)
