"""Lists under a job (`/fine_tuning/jobs/{id}/<path>`), each one declaration, and their reader.

A `JobList` says where the list is, what its table looks like and how an item becomes a row;
tables derived from the same items (`step_metrics` from `events`) ride along, with no extra
request, as table variants of the list's resource. Every list is read by `iter_new_items`
with one per-job cursor in the ledger. Adding
a list means adding a `JobList` below and its name to `settings.RESOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote

import dlt
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.resource import DltResource

from .http.client import FineTuningApi
from .ledger import JobLedger
from .rows import checkpoint_row, event_row, require_item, step_metrics_row
from .schema import CHECKPOINT_COLUMNS, EVENT_COLUMNS, STEP_METRICS_COLUMNS
from .settings import JOBS_PATH, TERMINAL_STATUSES
from .stats import RunStats

Row = Dict[str, Any]


@dataclass(frozen=True)
class DerivedTable:
    """A table filled from some items of a list, in the same pass.

    Attributes:
        name: Table name; merged on `id`.
        columns: Column hints.
        takes: Which items it is made from.
        row: Item and job id to row; None when the item cannot make one (it is counted).
    """

    name: str
    columns: TTableSchemaColumns
    takes: Callable[[Row], bool]
    row: Callable[[Row, str], Optional[Row]]

    def register(self, resource: DltResource) -> None:
        """Gives the resource this table's hints, once, before any item."""
        register_table(resource, self.name, self.columns, "id")


def register_table(
    resource: DltResource, table: str, columns: TTableSchemaColumns, primary_key: str
) -> None:
    """Gives a resource the hints of another table it fills (merged on `primary_key`), once,
    before any item.

    Hints sent along with items (`dlt.mark.with_hints`) would make dlt recompute and
    re-validate every table's schema after each such item: 40% of a first load's time.
    """
    # a new variant starts as a copy of the resource's hints: drop its columns first
    resource.apply_hints(table_name=table, columns={}, create_table_variant=True)
    resource.apply_hints(
        table_name=table,
        write_disposition="merge",
        primary_key=primary_key,
        columns=columns,
        create_table_variant=True,
    )


@dataclass(frozen=True)
class JobList:
    """A newest-first list under each job, loaded into one table merged on `id`.

    Attributes:
        name: Resource name, table name and ledger key.
        path: The list's path under `fine_tuning/jobs/{id}/`.
        item: What an item is called in messages.
        columns: Column hints of the table.
        row: Item, job id and endpoint to row.
        derived: Tables made from the same items.
    """

    name: str
    path: str
    item: str
    columns: TTableSchemaColumns
    row: Callable[[Row, str, str], Row]
    derived: Tuple[DerivedTable, ...] = ()

    def table_markers(self) -> Iterator[Any]:
        """Items that create this list's tables even when they get no rows."""
        yield dlt.mark.materialize_table_schema()
        for table in self.derived:
            yield dlt.mark.with_table_name(dlt.mark.materialize_table_schema(), table.name)

    def dlt_items(
        self, items: List[Row], job_id: str, endpoint: str, stats: RunStats
    ) -> Iterator[Any]:
        """The rows of one page for dlt: this list's table, then each derived table."""
        yield [self.row(item, job_id, endpoint) for item in items]
        for table in self.derived:
            rows = []
            for item in items:
                if table.takes(item):
                    row = table.row(item, job_id)
                    if row is None:
                        stats.count_skipped(table.name)
                    else:
                        rows.append(row)
            if rows:
                yield dlt.mark.with_table_name(rows, table.name)


JOB_LISTS: Tuple[JobList, ...] = (
    JobList(
        name="checkpoints",
        path="checkpoints",
        item="checkpoint",
        columns=CHECKPOINT_COLUMNS,
        row=checkpoint_row,
    ),
    JobList(
        name="events",
        path="events",
        item="event",
        columns=EVENT_COLUMNS,
        row=event_row,
        derived=(
            DerivedTable(
                name="step_metrics",
                columns=STEP_METRICS_COLUMNS,
                takes=lambda event: event.get("type") == "metrics",
                row=step_metrics_row,
            ),
        ),
    ),
)


def iter_new_items(
    api: FineTuningApi, ledger: JobLedger, job: Row, spec: JobList
) -> Iterator[List[Row]]:
    """Items of the job's list not loaded yet, one list per page, newest first.

    Pages come newest first, so reading stops at the first page that reaches an item older
    than the job's cursor; items of the cursor's own second are told apart by id. Afterwards
    the cursor advances, and a job that was terminal when listed is settled for this list.
    """
    job_id = job["id"]
    endpoint = api.endpoint(f"{JOBS_PATH}/{job_id}/{spec.path}")
    cursor_at, known_ids = ledger.cursor(job_id, spec.name)
    newest_at, newest_ids = cursor_at, set(known_ids)
    pages = api.iter_pages(f"{JOBS_PATH}/{quote(job_id, safe='')}/{spec.path}")
    try:
        for page in pages:
            new: List[Row] = []
            reached_loaded = False
            for raw in page:
                item = require_item(raw, endpoint, spec.item)
                at, item_id = item["created_at"], item["id"]
                if cursor_at is not None and at <= cursor_at:
                    reached_loaded = reached_loaded or at < cursor_at
                    if at < cursor_at or item_id in known_ids:
                        continue
                new.append(item)
                if newest_at is None or at > newest_at:
                    newest_at, newest_ids = at, {item_id}
                elif at == newest_at:
                    newest_ids.add(item_id)
            if new:
                yield new
            if reached_loaded:
                break
    finally:
        pages.close()
    ledger.advance(job_id, spec.name, newest_at, newest_ids)
    if job.get("status") in TERMINAL_STATUSES:
        ledger.settle(job_id, spec.name)
