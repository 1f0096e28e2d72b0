"""The truth comparisons, in one place: what a correct load holds, restated from the sandbox's
truth in plain Python, and the assertions that every table equals it."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, date, datetime
from typing import Any, Collection, Dict, List, Optional, Sequence, Set, Tuple

from fake_openai import FineTuningWorld
from tests.helpers.loading import Loader

TERMINAL = ("succeeded", "failed", "cancelled")
METRICS = (
    "step",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)


def epoch(value: Any) -> Optional[int]:
    return None if value is None else int(value.timestamp())


def checkpoint_as_loaded(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The row a correct load holds for an API checkpoint."""
    metrics = checkpoint["metrics"]
    return {
        "id": checkpoint["id"],
        "created_at": checkpoint["created_at"],
        "fine_tuned_model_checkpoint": checkpoint["fine_tuned_model_checkpoint"],
        "fine_tuning_job_id": checkpoint["fine_tuning_job_id"],
        "step_number": checkpoint["step_number"],
        "object": checkpoint["object"],
        **{f"metrics__{m}": metrics.get(m) for m in METRICS},
    }


def loaded_checkpoint(row: Dict[str, Any]) -> Dict[str, Any]:
    keys = ["id", "fine_tuned_model_checkpoint", "fine_tuning_job_id", "step_number", "object"]
    return {
        **{k: row[k] for k in keys},
        "created_at": epoch(row["created_at"]),
        **{f"metrics__{m}": row[f"metrics__{m}"] for m in METRICS},
    }


Only = Optional[Set[str]]  # job ids a load was limited to; None for all


def _kept(job_id: str, only: Only) -> bool:
    return only is None or job_id in only


def assert_checkpoints_equal_truth(loader: Loader, world: FineTuningWorld, only: Only = None):
    rows = loader.rows("checkpoints")
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate checkpoint rows"
    expected = sorted(
        (
            checkpoint_as_loaded(c)
            for c in world.truth_checkpoints()
            if _kept(c["fine_tuning_job_id"], only)
        ),
        key=lambda c: c["id"],
    )
    assert [loaded_checkpoint(r) for r in rows] == expected


def assert_jobs_equal_truth(loader: Loader, world: FineTuningWorld, only: Only = None) -> None:
    rows = {r["id"]: r for r in loader.rows("jobs")}
    truth = {j["id"]: j for j in world.truth_jobs() if _kept(j["id"], only)}
    assert sorted(rows) == sorted(truth)
    for job_id, job in truth.items():
        row = rows[job_id]
        for name in ("created_at", "finished_at", "estimated_finish"):
            assert epoch(row[name]) == job[name], (job_id, name)
        for name in (
            "status",
            "model",
            "fine_tuned_model",
            "organization_id",
            "training_file",
            "validation_file",
            "trained_tokens",
            "seed",
            "object",
        ):
            assert row[name] == job[name], (job_id, name)
        for name in (
            "error",
            "hyperparameters",
            "integrations",
            "metadata",
            "method",
            "result_files",
        ):
            assert _json(row[name]) == job[name], (job_id, name)


def _json(value: Any) -> Any:
    """A JSON column: DuckDB returns its text, PostgreSQL (psycopg2) the parsed value."""
    return json.loads(value) if isinstance(value, str) else value


def _epoch_keys(row: Dict[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    return {k: (epoch(v) if k in names else v) for k, v in row.items()}


def _without_dlt(row: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_dlt")}


def _same_rows(
    loaded: Dict[Any, Dict[str, Any]],
    expected: Dict[Any, Dict[str, Any]],
    same_columns: bool = True,
) -> None:
    """Equal keys, and per row equal values where a column missing on one side is None; with
    `same_columns`, the table has no column that no expected row has (nor lacks one)."""
    assert sorted(loaded) == sorted(expected)
    if same_columns and expected:
        assert {c for row in loaded.values() for c in row} == {
            c for row in expected.values() for c in row
        }
    for key, row in expected.items():
        names = set(row) | set(loaded[key])
        got = {n: loaded[key].get(n) for n in names}
        assert got == {n: row.get(n) for n in names}, key


def flatten_metrics(data: Dict[str, Any], prefix: str = "") -> Tuple[Dict[str, Any], Dict]:
    """(columns, lists) of a metrics `data` object as a correct load stores it: nested objects
    joined with `__`, numbers as floats except `step` / `total_steps`, lists apart."""
    columns: Dict[str, Any] = {}
    lists: Dict[str, List[Any]] = {}
    for key, value in data.items():
        name = prefix + key
        if isinstance(value, dict):
            inner, inner_lists = flatten_metrics(value, name + "__")
            columns.update(inner)
            lists.update(inner_lists)
        elif isinstance(value, list):
            lists[name] = value
        elif value is None:
            continue
        elif name in ("step", "total_steps"):
            columns[name] = int(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            columns[name] = float(value)
        else:
            columns[name] = value
    return columns, lists


def assert_events_equal_truth(loader: Loader, world: FineTuningWorld, only: Only = None):
    expected = {}
    for job_id, events in world.truth_events().items():
        for event in events if _kept(job_id, only) else ():
            expected[event["id"]] = {
                "id": event["id"],
                "fine_tuning_job_id": job_id,
                "created_at": event["created_at"],
                "level": event["level"],
                "type": event.get("type"),
                "message": event["message"],
                "data": event.get("data"),
            }
    loaded = {}
    for row in loader.rows("events"):
        row = _epoch_keys(_without_dlt(row), ["created_at"])
        row["data"] = _json(row["data"])
        loaded[row["id"]] = row
    _same_rows(loaded, expected)


def assert_step_metrics_equal_truth(
    loader: Loader,
    world: FineTuningWorld,
    only: Only = None,
    graders_elsewhere: Collection[str] = (),
):
    """`step_metrics` (one row per metrics event, `data` flattened, lists apart) and
    `step_grader_scores` (one row per step and entry of its `scores.graders`), but for the
    steps of `graders_elsewhere` (version 0.1 loaded theirs into a child table)."""
    expected: Dict[str, Dict[str, Any]] = {}
    graders: Dict[Tuple[str, int], Dict[str, Any]] = {}
    for job_id, events in world.truth_events().items():
        for event in events if _kept(job_id, only) else ():
            if event.get("type") != "metrics" or not isinstance(event.get("data"), dict):
                continue
            columns, lists = flatten_metrics(event["data"])
            expected[event["id"]] = {
                **columns,
                "id": event["id"],
                "fine_tuning_job_id": job_id,
                "created_at": event["created_at"],
            }
            assert set(lists) <= {"scores__graders"}  # the sandbox's only list
            if event["id"] in graders_elsewhere:
                continue
            for position, grader in enumerate(lists.get("scores__graders", ())):
                graders[(event["id"], position)] = {
                    **flatten_metrics(grader)[0],
                    "id": event["id"],
                    "position": position,
                    "fine_tuning_job_id": job_id,
                    "step": columns.get("step"),
                }
    loaded = {
        r["id"]: _epoch_keys(_without_dlt(r), ["created_at"]) for r in loader.rows("step_metrics")
    }
    _same_rows(loaded, expected)
    got = loader.rows("step_grader_scores")
    _same_rows({(r["id"], r["position"]): _without_dlt(r) for r in got}, graders)


def referenced_file_ids(world: FineTuningWorld, only: Only = None) -> Set[str]:
    """Files the (kept) jobs name: training, validation, results; deleted ones included."""
    ids: Set[str] = set()
    for job in world.truth_jobs():
        if _kept(job["id"], only):
            ids.update(i for i in (job["training_file"], job["validation_file"]) if i)
            ids.update(job["result_files"] or ())
    return ids


# the columns of `files` that `training_data` fills (checked by assert_training_data_...)
CONTENT_COLUMNS = ("sha256", "lines", "line_ending", "final_newline", "bom", "utf8")


def assert_files_equal_truth(loader: Loader, world: FineTuningWorld, only: Only = None) -> None:
    wanted = referenced_file_ids(world, only)
    expected = {f["id"]: _without_object(f) for f in world.truth_files() if f["id"] in wanted}
    loaded = {
        r["id"]: _epoch_keys(_without_dlt(r), ["created_at", "expires_at"])
        for r in loader.rows("files")
        if r["id"] in wanted or r["purpose"] != "fine-tune"  # training_data writes some too
    }
    for row in loaded.values():
        for name in CONTENT_COLUMNS:
            row.pop(name, None)
    _same_rows(loaded, expected, same_columns=False)  # hinted columns exist without values


BOM = b"\xef\xbb\xbf"


def training_file_truth(content: bytes, method: str) -> Tuple[Dict[str, Any], List[Dict]]:
    """(the `files` content columns, the `training_examples` rows without `file_id`) a
    correct archive holds for a training file's bytes: split on b"\\n" only, a BOM apart,
    the `\\r` of a file whose every line ends in `\\r\\n` dropped."""
    bom = content.startswith(BOM)
    body = content[len(BOM) :] if bom else content
    pieces = body.split(b"\n") if body else []
    final_newline = body.endswith(b"\n")
    if final_newline:
        pieces.pop()
    breaks = len(pieces) if final_newline else len(pieces) - 1
    terminated = pieces[:breaks]
    crlf = breaks > 0 and all(piece.endswith(b"\r") for piece in terminated)
    utf8 = True
    rows = []
    for number, piece in enumerate(pieces, start=1):
        if crlf and number <= breaks:
            piece = piece[:-1]
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            utf8, text = False, piece.decode("utf-8", errors="replace")
        try:
            example, valid = json.loads(piece), True
        except ValueError:
            example, valid = None, False
        kind = messages = None
        has_tools = None
        if isinstance(example, dict):
            if "input" in example and "preferred_output" in example:
                kind, messages = "dpo", len(example["input"]["messages"])
                has_tools = bool(example["input"].get("tools") or example.get("tools"))
            else:
                kind = "reinforcement" if method == "reinforcement" else "chat"
                messages = len(example["messages"]) if "messages" in example else None
                has_tools = bool(example.get("tools"))
        elif valid:
            has_tools = False
        rows.append(
            {
                "line": number,
                "raw": text,
                "valid_json": valid,
                "kind": kind,
                "messages": messages,
                "has_tools": has_tools,
                "chars": len(text),
            }
        )
    columns = {
        "sha256": hashlib.sha256(content).hexdigest(),
        "lines": len(pieces),
        "line_ending": "crlf" if crlf else "lf",
        "final_newline": final_newline,
        "bom": bom,
        "utf8": utf8,
    }
    return columns, rows


def training_truth(world: FineTuningWorld, only: Only = None) -> Dict[str, Tuple[Dict, List]]:
    """File id -> `training_file_truth` of every existing training and validation file the
    (kept) jobs name."""
    methods = {}
    for job in world.truth_jobs():
        if _kept(job["id"], only):
            for name in ("training_file", "validation_file"):
                if job[name]:
                    methods.setdefault(job[name], (job.get("method") or {}).get("type"))
    contents = world.truth_training_files()
    return {
        file_id: training_file_truth(contents[file_id], method)
        for file_id, method in methods.items()
        if file_id in contents
    }


def assert_training_data_equal_truth(loader: Loader, world: FineTuningWorld, only: Only = None):
    """`training_examples` holds every line of every training file, and `files` the columns
    that rebuild each one."""
    truth = training_truth(world, only)
    expected = {
        (file_id, row["line"]): {"file_id": file_id, **row}
        for file_id, (_, rows) in truth.items()
        for row in rows
    }
    loaded = {
        (r["file_id"], r["line"]): _without_dlt(r)
        for r in loader.rows("training_examples", order="file_id, line")
    }
    _same_rows(loaded, expected)
    files = {r["id"]: r for r in loader.rows("files")}
    assert {
        file_id: {name: files[file_id][name] for name in CONTENT_COLUMNS}
        for file_id in truth
        if file_id in files
    } == {file_id: columns for file_id, (columns, _) in truth.items()}
    records = {f["id"]: _without_object(f) for f in world.truth_files()}
    for file_id in truth:  # the metadata came along
        row = _epoch_keys(_without_dlt(files[file_id]), ["created_at", "expires_at"])
        assert {k: row.get(k) for k in records[file_id]} == records[file_id], file_id


def model_as_loaded(model: Dict[str, Any]) -> Dict[str, Any]:
    """The `models` row of a listed model, OpenAI's shape or Azure's (`created_at`, and
    `deprecation.inference` in Unix seconds as the shutdown), without `last_seen_at`."""
    row = {k: v for k, v in model.items() if k not in ("object", "created_at")}
    row["created"] = model.get("created", model.get("created_at"))
    shutdown = model.get("shutdown_date")
    inference = (model.get("deprecation") or {}).get("inference")
    if shutdown:
        row["shutdown_date"] = date.fromisoformat(shutdown)
    elif inference is not None:
        row["shutdown_date"] = datetime.fromtimestamp(inference, tz=UTC).date()
    else:
        row["shutdown_date"] = None
    return row


def assert_models_equal_truth(loader: Loader, world: FineTuningWorld, only: Only = None):
    """The models the last listing saw are exactly the sandbox's (in the shape the API
    sent: Azure's when the rows carry its `lifecycle_status`); models listed before and not
    any more keep an older `last_seen_at`."""
    rows = loader.rows("models")
    latest = max((r["last_seen_at"] for r in rows), default=None)
    loaded = {}
    for r in rows:
        if r["last_seen_at"] != latest:
            continue
        row = _epoch_keys(
            {k: v for k, v in _without_dlt(r).items() if k != "last_seen_at"}, ["created"]
        )
        for name in ("capabilities", "deprecation"):
            row[name] = _json(row.get(name))
        loaded[r["id"]] = row
    azure = any(row.get("lifecycle_status") for row in loaded.values())
    expected = {m["id"]: model_as_loaded(m) for m in world.list_models(azure=azure)}
    _same_rows(loaded, expected, same_columns=False)


def _without_object(record: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in record.items() if k != "object"}


def assert_results_equal_truth(loader: Loader, world: FineTuningWorld, only: Only = None):
    expected = {
        (r["file_id"], r["step"]): r
        for r in world.truth_results()
        if _kept(r["fine_tuning_job_id"], only)
    }
    loaded = {
        (r["file_id"], r["step"]): _without_dlt(r)
        for r in loader.rows("results", order="file_id, step")
    }
    _same_rows(loaded, expected)


def lifecycle_truth(world, today: date, models_read: bool = True) -> List[Dict[str, Any]]:
    """The rows `model_lifecycle` must hold, restated from the sandbox's truth."""
    listed = {m["id"]: m for m in world.truth_models()} if models_read else {}
    archived = set(training_truth(world))
    jobs = {j["id"]: j for j in world.truth_jobs()}
    known = [
        (j["fine_tuned_model"], "fine-tuned", j["id"])
        for j in jobs.values()
        if j["fine_tuned_model"]
    ]
    known += [
        (c["fine_tuned_model_checkpoint"], "checkpoint", c["fine_tuning_job_id"])
        for c in world.truth_checkpoints()
    ]
    rows = []
    for model, kind, job_id in known:
        job = jobs[job_id]
        root = model.split(":")[1]
        own = (listed.get(model) or {}).get("shutdown_date")
        inherited = (listed.get(root) or {}).get("shutdown_date")
        when = date.fromisoformat(own or inherited) if (own or inherited) else None
        if not models_read:
            state = "unknown"
        elif when is not None and when < today:
            state = "shut down"
        elif model not in listed:
            state = "not listed"
        else:
            state = "retiring" if when is not None else "serving"
        files = [job[name] for name in ("training_file", "validation_file") if job[name]]
        rows.append(
            {
                "model": model,
                "kind": kind,
                "fine_tuning_job_id": job_id,
                "base_model": job["model"],
                "root_model": root,
                "shutdown_date": when,
                "date_from": "model" if own else "root model" if inherited else None,
                "days_left": (when - today).days if when else None,
                "state": state,
                "training_data_archived": all(f in archived for f in files),
            }
        )
    return sorted(rows, key=lambda r: r["model"])


TABLE_CHECKS = {
    "jobs": (assert_jobs_equal_truth,),
    "checkpoints": (assert_checkpoints_equal_truth,),
    "events": (assert_events_equal_truth, assert_step_metrics_equal_truth),
    "files": (assert_files_equal_truth,),
    "results": (assert_results_equal_truth,),
    "training_data": (assert_training_data_equal_truth,),
    "models": (assert_models_equal_truth,),
}
RESOURCES = tuple(TABLE_CHECKS)


def assert_history_equal_truth(
    loader: Loader,
    world: FineTuningWorld,
    only: Only = None,
    resources: Sequence[str] = RESOURCES,
) -> None:
    """Every table of the resources equals the sandbox's truth, ids and values."""
    with loader.reading():
        for resource in resources:
            for check in TABLE_CHECKS[resource]:
                check(loader, world, only)


def no_change_rows(world: FineTuningWorld) -> Dict[str, int]:
    """Rows a run with nothing new writes: none, but the models list, which every run reads
    again and stamps with `last_seen_at`."""
    from pipelines.run.summary import TABLES

    return {**dict.fromkeys(TABLES, 0), "models": len(world.truth_models())}


def training_lines(world: FineTuningWorld, only: Only = None) -> int:
    """Rows of `training_examples` a complete load holds."""
    return sum(len(rows) for _, rows in training_truth(world, only).values())


def first_load_routes(world: FineTuningWorld, page_size: int = 100) -> Dict[str, int]:
    """Requests of a complete first load: every page of every list, each file once, each
    results file of a finished job and each training file once, the models list once."""
    pages = lambda n: max(1, math.ceil(n / page_size))  # noqa: E731
    jobs = world.truth_jobs()
    events = world.truth_events()
    checkpoints: Dict[str, int] = {}
    for checkpoint in world.truth_checkpoints():
        job_id = checkpoint["fine_tuning_job_id"]
        checkpoints[job_id] = checkpoints.get(job_id, 0) + 1
    routes = {
        "GET /v1/fine_tuning/jobs": pages(len(jobs)),
        "GET /v1/fine_tuning/jobs/{id}/checkpoints": sum(
            pages(checkpoints.get(j["id"], 0)) for j in jobs
        ),
        "GET /v1/fine_tuning/jobs/{id}/events": sum(pages(len(events[j["id"]])) for j in jobs),
        "GET /v1/files/{id}": len(referenced_file_ids(world)),
        "GET /v1/files/{id}/content": sum(
            len(j["result_files"] or ()) for j in jobs if j["status"] in TERMINAL
        )
        + len(training_truth(world)),
        "GET /v1/models": 1,
    }
    return {route: count for route, count in routes.items() if count}


def written(summary: str, table: str) -> int:
    """Rows written to `table`, read from the summary the command printed."""
    line = next(line for line in summary.splitlines() if "rows written:" in line)
    counts = dict(
        part.rsplit(" ", 1) for part in line.split("rows written:", 1)[1].strip().split(", ")
    )
    return int(counts[table].replace(",", ""))


LIST_ROUTES = {
    "checkpoints": "GET /v1/fine_tuning/jobs/{id}/checkpoints",
    "events": "GET /v1/fine_tuning/jobs/{id}/events",
}


def expected_rerun_requests(
    world: FineTuningWorld,
    page_size: int,
    settled: set,
    lists: Sequence[str] = ("checkpoints", "events"),
    models: bool = True,
) -> Dict[str, int]:
    """The request budget of a no-change rerun: job-list pages down to the oldest unsettled
    job (at least one), plus one request per unsettled job for each per-job list, plus the
    models list; nothing for files, results and training files already read."""
    ids = world.job_ids()
    unsettled = [i for i, job_id in enumerate(ids) if job_id not in settled]
    deepest = unsettled[-1] if unsettled else 0
    budget = {"GET /v1/fine_tuning/jobs": math.ceil((deepest + 1) / page_size)}
    budget.update({LIST_ROUTES[name]: len(unsettled) for name in lists if unsettled})
    if models:
        budget["GET /v1/models"] = 1
    return budget
