"""Lists under a job (`/fine_tuning/jobs/{id}/<path>`), each one declaration, and their reader.

A `JobList` says where the list is, what its table looks like and how an item becomes a row;
tables derived from the same items (`step_metrics` and `step_grader_scores` from `events`)
ride along, with no extra request, as table variants of the list's resource. Each page goes
to dlt as Arrow tables (`columnar`). Every list is read by `iter_new_items`
with one per-job cursor in the ledger. Adding
a list means adding a `JobList` below and its name to `settings.RESOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Set, Tuple, Union
from urllib.parse import quote

import dlt
from dlt.common.schema.typing import TTableSchemaColumns, TWriteDispositionConfig
from dlt.extract.resource import DltResource

from .http.client import FineTuningApi
from .ledger import JobLedger
from .rows import checkpoint_row, event_row, grader_rows, require_item, step_metrics_row
from .schema import (
    CHECKPOINT_COLUMNS,
    EVENT_COLUMNS,
    MERGED,
    MERGED_ONCE_PER_RUN,
    STEP_GRADER_SCORE_COLUMNS,
    STEP_METRICS_COLUMNS,
)
from .settings import GRADER_LIST, JOBS_PATH, TERMINAL_STATUSES
from .stats import RunStats

if TYPE_CHECKING:  # imported on first use: the source imports without pyarrow (DESIGN.md)
    from .columnar import ColumnTypes

Row = Dict[str, Any]


@dataclass(frozen=True)
class DerivedTable:
    """A table filled from some items of a list, in the same pass.

    Attributes:
        name: Table name.
        columns: Column hints.
        key: Primary key (merged on it).
    """

    name: str
    columns: TTableSchemaColumns
    key: Tuple[str, ...] = ("id",)

    @cached_property
    def types(self) -> ColumnTypes:
        from .columnar import ColumnTypes

        return ColumnTypes(self.columns)

    def register(self, resource: DltResource) -> None:
        """Gives the resource this table's hints, once, before any item."""
        # one row per listed item (events) or per item and grader, each read once per run
        register_table(resource, self.name, self.columns, list(self.key), MERGED_ONCE_PER_RUN)


def register_table(
    resource: DltResource,
    table: str,
    columns: TTableSchemaColumns,
    primary_key: Union[str, List[str]],
    write_disposition: TWriteDispositionConfig = MERGED,
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
        write_disposition=write_disposition,
        primary_key=primary_key,
        columns=columns,
        create_table_variant=True,
    )


Derive = Callable[[List[Row], str, RunStats], Dict[str, List[Row]]]


def _no_derived(items: List[Row], job_id: str, stats: RunStats) -> Dict[str, List[Row]]:
    return {}


@dataclass(frozen=True)
class JobList:
    """A newest-first list under each job, loaded into one table merged on `id`.

    Attributes:
        name: Resource name, table name and ledger key.
        path: The list's path under `fine_tuning/jobs/{id}/`.
        item: What an item is called in messages.
        columns: Column hints of the table.
        row: Item and job id to a flat row.
        derived: Tables made from the same items.
        derive: A page's items and job id to the rows of each derived table (it counts the
            items that cannot make a row).
    """

    name: str
    path: str
    item: str
    columns: TTableSchemaColumns
    row: Callable[[Row, str], Row]
    derived: Tuple[DerivedTable, ...] = ()
    derive: Derive = _no_derived

    @cached_property
    def types(self) -> ColumnTypes:
        from .columnar import ColumnTypes

        return ColumnTypes(self.columns)

    def table_markers(self) -> Iterator[Any]:
        """Items that create this list's tables even when they get no rows."""
        from .columnar import empty_table

        yield empty_table(self.types, ("id",))
        for table in self.derived:
            yield dlt.mark.with_table_name(empty_table(table.types, table.key), table.name)

    def dlt_items(
        self, items: List[Row], job_id: str, endpoint: str, stats: RunStats
    ) -> Iterator[Any]:
        """The rows of one page for dlt, as Arrow tables: this list's table, then each derived
        table that has rows.

        Raises:
            UpstreamError: when a value does not fit its column's type (a text `step_number`),
                naming the endpoint and the value.
        """
        from . import columnar

        tables = [(self.name, self.types, ("id",), [self.row(item, job_id) for item in items])]
        derived = self.derive(items, job_id, stats)
        tables += [
            (t.name, t.types, t.key, derived[t.name]) for t in self.derived if derived.get(t.name)
        ]
        for name, types, key, rows in tables:
            table = columnar.checked_table_of(rows, types, key, f"{endpoint} answered {self.item}s")
            yield table if name == self.name else dlt.mark.with_table_name(table, name)


def metrics_rows(events: List[Row], job_id: str, stats: RunStats) -> Dict[str, List[Row]]:
    """`step_metrics` rows of a page's `metrics` events, and `step_grader_scores` rows of
    their per-grader lists (a list with an entry that is not an object stays JSON text in its
    step's row). A metrics event that cannot make a row is counted."""
    steps: List[Row] = []
    graders: List[Row] = []
    for event in events:
        if event.get("type") != "metrics":
            continue
        made = step_metrics_row(event, job_id)
        if made is None:
            stats.count_skipped("step_metrics")
            continue
        row, lists = made
        listed = lists.pop(GRADER_LIST, None)
        if listed is not None:
            rows = grader_rows(row, listed)
            if rows is None:
                lists[GRADER_LIST] = listed
            else:
                graders.extend(rows)
        row.update(lists)
        steps.append(row)
    return {"step_metrics": steps, "step_grader_scores": graders}


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
            DerivedTable("step_metrics", STEP_METRICS_COLUMNS),
            DerivedTable("step_grader_scores", STEP_GRADER_SCORE_COLUMNS, ("id", "position")),
        ),
        derive=metrics_rows,
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
    # ids of this page and the one before: an item a page repeats from the page before is
    # yielded once (the tables are declared deduplicated per run, `schema.MERGED_ONCE_PER_RUN`)
    earlier: Set[str] = set()
    # the stop rule below, applied by the read-ahead to the pages it fetches
    wants_next = partial(_reaches_no_loaded, cursor_at=cursor_at)
    try:
        for page in pages:
            new: List[Row] = []
            reached_loaded = False
            this_page: Set[str] = set()
            for raw in page:
                item = require_item(raw, endpoint, spec.item)
                at, item_id = item["created_at"], item["id"]
                if cursor_at is not None and at <= cursor_at:
                    reached_loaded = reached_loaded or at < cursor_at
                    if at < cursor_at or item_id in known_ids:
                        continue
                if item_id in earlier or item_id in this_page:
                    continue
                this_page.add(item_id)
                new.append(item)
                if newest_at is None or at > newest_at:
                    newest_at, newest_ids = at, {item_id}
                elif at == newest_at:
                    newest_ids.add(item_id)
            if reached_loaded:
                if new:
                    yield new
                break
            earlier = this_page
            pages.fetch_next(keep_going=wants_next)  # while this page's rows are made
            if new:
                yield new
    finally:
        pages.close()
    ledger.advance(job_id, spec.name, newest_at, newest_ids)
    if job.get("status") in TERMINAL_STATUSES:
        ledger.settle(job_id, spec.name)


def _reaches_no_loaded(page: List[Any], cursor_at: Optional[int]) -> bool:
    """`iter_new_items`' rule for wanting the page after `page`, on its raw items: none is
    older than the cursor. False for an item the reader will reject (it stops there)."""
    if cursor_at is None:
        return True
    for item in page:
        at = item.get("created_at") if type(item) is dict else None
        if type(at) is not int or at < cursor_at:
            return False
    return True
