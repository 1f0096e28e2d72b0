"""The files a job references: their metadata (`files`) and its results CSV (`results`).

Both are read once per file, ever: the ledger remembers each file loaded or gone (404), and
each results file loaded. A results file that cannot be read is named in the summary and
tried again next run; the rest of the run loads.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import pyarrow as pa

from .http.client import FineTuningApi
from .ledger import JobLedger
from .results import ResultsFileError, iter_result_batches
from .rows import file_row, is_final, require_item
from .settings import FILES_PATH, TERMINAL_STATUSES
from .stats import UnreadableFile
from .training_data import training_files

Row = Dict[str, Any]


def referenced_files(job: Row) -> List[str]:
    """File ids the job names: training, validation, then results; each once."""
    ids = [job.get("training_file"), job.get("validation_file")]
    results = job.get("result_files")
    if isinstance(results, list):
        ids += results
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


def _result_files(job: Row) -> List[str]:
    results = job.get("result_files")
    if not isinstance(results, list):
        return []
    return list(dict.fromkeys(i for i in results if isinstance(i, str) and i))


def iter_file_rows(
    api: FineTuningApi, ledger: JobLedger, job: Row, with_training_data: bool = False
) -> Iterator[Row]:
    """Metadata rows of the job's files that no run requested yet.

    A file answering 404 (deleted or expired) is counted and never requested again. A final
    job's files are all known (results files appear when it succeeds), so the job is then
    settled for `files`. `with_training_data`: `training_data` runs too and writes the rows of
    the training and validation files (with their content columns), so they are left to it.
    """
    left_out = set(training_files(job)) if with_training_data else set()
    for file_id in referenced_files(job):
        if file_id in left_out or not ledger.claim_file(file_id):
            continue  # loaded before, gone, or being read for another job of this run
        record = api.get_file(file_id)
        if record is None:
            ledger.file_done(file_id, missing=True)
            api.stats.count_missing_file(file_id)
            continue
        endpoint = api.endpoint(f"{FILES_PATH}/{file_id}")
        yield file_row(require_item(record, endpoint, "file"), endpoint)
        ledger.file_done(file_id)
    if is_final(job):
        ledger.settle(job["id"], "files")


def iter_result_rows(api: FineTuningApi, ledger: JobLedger, job: Row) -> Iterator[pa.Table]:
    """Rows of a finished job's results files not loaded yet, as Arrow tables of bounded rows.

    A file that is gone (404) is counted and not requested again; one that is not a results
    CSV is counted with its reason and keeps the job open for `results`, so the next run
    tries it again.
    """
    job_id = job["id"]
    if job.get("status") not in TERMINAL_STATUSES:
        return  # results files are written when the job ends
    loaded = ledger.results_read(job_id)
    complete = True
    for file_id in _result_files(job):
        if file_id in loaded:
            continue
        try:
            batches = iter_result_batches(api, file_id, job_id)
        except ResultsFileError as error:
            api.stats.count_unreadable(UnreadableFile(file_id, job_id, str(error)))
            complete = False
            continue
        if batches is None:
            api.stats.count_missing_file(file_id)
        else:
            yield from batches
        ledger.result_read(job_id, file_id)
    if complete and is_final(job):
        ledger.settle(job_id, "results")
