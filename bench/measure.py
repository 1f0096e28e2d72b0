"""One measured run in a fresh process: `python -m bench.measure SCENARIO ...` prints one JSON line.

Scenarios: `ours` (this project's `load()`), `peer` (dlt's declarative `rest_api` source, its
best configuration for the list endpoints), `floor` (every request that must be made, made with
the same workers over pooled connections, bodies parsed, nothing loaded), `empty` (a dlt run of
an empty source: dlt's fixed per-run overhead). Only the run itself is timed, not imports.

Longer than most modules on purpose: each contender (this project, dlt's `rest_api` peer, the
raw floor) must be measured the same way, in one process of its own, and their code reads best
side by side.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import queue
import resource
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import dlt
import orjson
import requests
from requests.adapters import HTTPAdapter

from pipelines.run.exiting import freeze_heap
from sources.openai_fine_tuning.listing import training_seconds


def _peak_rss_mb() -> float:
    """The largest resident set of this process or of any child it waited for (dlt's
    normalize workers are processes).

    This process's own peak is the kernel's VmHWM, not `ru_maxrss`: Linux keeps `ru_maxrss`
    across exec, so a process spawned by the benchmark (which holds the sandbox's world)
    would report the benchmark's peak instead of its own.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        status = Path("/proc/self/status").read_text()
        own = int(status.split("VmHWM:", 1)[1].split()[0])  # kB, as ru_maxrss
    except (OSError, IndexError, ValueError):
        pass  # not Linux: ru_maxrss (other systems do not carry it across exec)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _duckdb_pipeline(name: str, workdir: str) -> dlt.Pipeline:
    # the file is named apart from the dataset: DuckDB would not tell catalog from schema
    return dlt.pipeline(
        name,
        destination=dlt.destinations.duckdb(str(Path(workdir) / f"{name}.duckdb")),
        dataset_name=f"{name}_data",
        pipelines_dir=str(Path(workdir) / f"pl_{name}"),
    )


def run_ours(args: argparse.Namespace) -> Dict[str, Any]:
    from pipelines.run import load

    if not args.rerun:  # what a run imports on first use, untimed as the other imports; the
        # rerun's row is its whole process (it imports them while the job list is read)
        import duckdb  # noqa: F401
        import pyarrow.compute  # noqa: F401

    started = time.perf_counter()
    options = {"resources": args.resources.split(",")} if args.resources else {}
    summary = load(
        duckdb_path=str(Path(args.workdir) / "ours.duckdb"),
        pipelines_dir=str(Path(args.workdir) / "pl_ours"),
        api_key=args.key,
        base_url=args.base_url,
        workers=args.workers,
        **options,
    )
    wall = time.perf_counter() - started
    steps = {
        step.step: (step.finished_at - step.started_at).total_seconds()
        for step in summary.info.pipeline.last_trace.steps
        if step.step in ("extract", "normalize", "load")
    }
    return {
        "wall": wall,
        "rows": sum(summary.rows.values()),
        "tables": summary.rows,
        "steps": steps,
    }


def peer_config(base_url: str, key: str) -> Dict[str, Any]:
    """dlt `rest_api` for the same list endpoints, as a user would write it at best: cursor
    paging with `has_more`, checkpoints and events as dependent resources read in parallel,
    merge on `id`, and `incremental` on `created_at` (one cursor for all jobs, the most
    rest_api offers). Files and results CSVs are out of its reach (one request per file id
    found in a list field; a base64 CSV body), so it does not fetch them."""
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "bearer", "token": key},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {"params": {"limit": 100}, "data_selector": "data"},
        },
        "resources": [
            {
                "name": "jobs",
                "endpoint": {
                    "path": "fine_tuning/jobs",
                    "paginator": {
                        "type": "cursor",
                        "cursor_path": "data[-1].id",
                        "cursor_param": "after",
                        "has_more_path": "has_more",
                    },
                },
            },
            {
                "name": "checkpoints",
                "parallelized": True,
                "endpoint": {
                    "path": "fine_tuning/jobs/{resources.jobs.id}/checkpoints",
                    "paginator": {
                        "type": "cursor",
                        "cursor_path": "last_id",
                        "cursor_param": "after",
                        "has_more_path": "has_more",
                    },
                    "incremental": {"cursor_path": "created_at", "initial_value": 0},
                },
            },
            {
                "name": "events",
                "parallelized": True,
                "endpoint": {
                    "path": "fine_tuning/jobs/{resources.jobs.id}/events",
                    "paginator": {
                        "type": "cursor",
                        "cursor_path": "data[-1].id",
                        "cursor_param": "after",
                        "has_more_path": "has_more",
                    },
                    "incremental": {"cursor_path": "created_at", "initial_value": 0},
                },
            },
        ],
    }


def run_peer(args: argparse.Namespace) -> Dict[str, Any]:
    from dlt.sources.rest_api import rest_api_source

    pipeline = _duckdb_pipeline("peer_rest_api", args.workdir)
    started = time.perf_counter()
    source = rest_api_source(peer_config(args.base_url, args.key))
    pipeline.extract(source, workers=args.workers, max_parallel_items=2 * args.workers)
    pipeline.normalize()
    pipeline.load()
    info = pipeline.last_trace.last_normalize_info
    rows = sum(v for k, v in (info.row_counts if info else {}).items() if not k.startswith("_dlt"))
    return {"wall": time.perf_counter() - started, "rows": rows}


def run_empty(args: argparse.Namespace) -> Dict[str, Any]:
    @dlt.resource(name="nothing", write_disposition="merge", primary_key="id")
    def nothing() -> Any:
        yield from ()

    pipeline = _duckdb_pipeline("empty_run", args.workdir)
    started = time.perf_counter()
    pipeline.run(nothing())
    return {"wall": time.perf_counter() - started, "rows": 0}


class _LongestFirstPool:
    """The floor's workers: each takes the waiting work of the longest trained job first (the
    order this project hands jobs to their reads, `listing.LongestFirst`), ties as submitted.
    A long job's chains of pages then overlap the others instead of running alone at the end.
    """

    def __init__(self, workers: int) -> None:
        self._queue: queue.PriorityQueue[Any] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: float, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((priority, next(self._order), fn, args, future))
        return future

    def _work(self) -> None:
        while True:
            _, _, fn, args, future = self._queue.get()
            if fn is None:
                return
            try:
                future.set_result(fn(*args))
            except BaseException as error:  # noqa: BLE001 (the caller's result() raises it)
                future.set_exception(error)

    def __enter__(self) -> _LongestFirstPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        for _ in self._threads:
            self._queue.put((float("inf"), next(self._order), None, (), None))
        for thread in self._threads:
            thread.join()


def _session(workers: int, key: str) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=workers)
    session.mount("http://", adapter)
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def run_floor(args: argparse.Namespace) -> Dict[str, Any]:
    """The physical limit: the necessary requests only, bodies parsed, with the same workers.

    First load: the models list (one request); every job-list page (a chain); per job, as
    soon as it is listed, every checkpoint and event page (a chain each), each file it names
    once (metadata), the content of each results file of a finished job, and the content of
    each training and validation file once (after its metadata, which tells whether it still
    exists: a deleted file's content is not asked for), its lines split on `\\n` and parsed.
    Rerun: the models list, the job-list pages down to the oldest unfinished job and one
    checkpoints and one events request per unfinished job, known from an oracle (the
    sandbox's truth) rather than from state. The workers take the work of the longest
    trained job waiting first, as this project does (`_LongestFirstPool`): in listing order, a
    long job's pages would run alone at the end of the floor's run (~2 s at 50 ms) and the
    floor would not be one.
    """
    session = _session(args.workers, args.key)
    base = args.base_url.rstrip("/")

    def pages(path: str, stop_after: Optional[int] = None) -> List[Dict[str, Any]]:
        items: List[Dict[str, Any]] = []
        after, fetched = None, 0
        while True:
            params: Dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            body = _json(session.get(f"{base}/{path}", params=params, timeout=60))
            items += body["data"]
            fetched += 1
            if not body["has_more"] or (stop_after is not None and fetched >= stop_after):
                return items
            after = body.get("last_id") or body["data"][-1]["id"]

    claimed: set = set()
    lock = threading.Lock()

    def file_once(file_id: str, content: bool) -> int:
        with lock:
            if (file_id, content) in claimed:
                return 0
            claimed.add((file_id, content))
        response = session.get(
            f"{base}/files/{file_id}" + ("/content" if content else ""), timeout=60
        )
        if content:
            return len(response.content) and 1
        _json(response)
        return int(response.status_code == 200)

    def data_file_once(file_id: str) -> int:
        """A training or validation file: its metadata, then (if it exists) its content as a
        stream, each line parsed; 1 (the `files` row) + its lines."""
        with lock:
            if (file_id, False) in claimed:
                return 0
            claimed.add((file_id, False))
        response = session.get(f"{base}/files/{file_id}", timeout=60)
        if response.status_code != 200:
            return 0
        _json(response)
        with session.get(f"{base}/files/{file_id}/content", timeout=60, stream=True) as body:
            return 1 + _parse_lines(body.iter_content(256 * 1024))

    wanted = set(args.resources.split(",")) if args.resources else None

    def needs(resource: str) -> bool:
        return wanted is None or resource in wanted

    def models() -> int:
        if not needs("models"):
            return 0
        return len(_json(session.get(f"{base}/models", timeout=60))["data"])

    def job_work(job: Dict[str, Any]) -> List[Any]:
        job_id = job["id"]
        first = -training_seconds(job, now)
        work = [
            pool.submit(first, pages, f"fine_tuning/jobs/{job_id}/{kind}")
            for kind in ("checkpoints", "events")
            if needs(kind)
        ]
        for file_id in dict.fromkeys([job.get("training_file"), job.get("validation_file")]):
            if file_id and needs("training_data"):
                work.append(pool.submit(first, data_file_once, file_id))
            elif file_id and needs("files"):
                work.append(pool.submit(first, file_once, file_id, False))
        for file_id in job.get("result_files") or ():
            if needs("files") or needs("results"):
                work.append(pool.submit(first, file_once, file_id, False))
            if job["status"] in _TERMINAL and needs("results"):
                work.append(pool.submit(first, file_once, file_id, True))
        return work

    now = time.time()
    started = time.perf_counter()
    rows = 0
    with _LongestFirstPool(args.workers) as pool:
        if args.rerun:
            truth = session.get(f"{args.root_url}/_sandbox/truth", timeout=600).json()["jobs"]
            open_jobs = [i for i, j in enumerate(truth) if j["status"] not in _TERMINAL]
            started = time.perf_counter()  # the oracle lookup is not part of the floor
            listed = pool.submit(-math.inf, models)  # every run reads the models list once
            deepest = open_jobs[-1] if open_jobs else 0
            jobs = pages("fine_tuning/jobs", stop_after=deepest // 100 + 1)
            rows += len(jobs)
            futures = [listed] + [
                pool.submit(0.0, pages, f"fine_tuning/jobs/{truth[i]['id']}/{kind}", 1)
                for i in open_jobs
                for kind in ("checkpoints", "events")
                if needs(kind)
            ]
        else:
            futures = [pool.submit(-math.inf, models)]
            after = None
            while True:  # stream: a job's work starts as soon as it is listed
                params: Dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
                body = _json(session.get(f"{base}/fine_tuning/jobs", params=params, timeout=60))
                rows += len(body["data"])
                for job in body["data"]:
                    futures += job_work(job)
                if not body["has_more"]:
                    break
                after = body["data"][-1]["id"]
        for future in futures:
            result = future.result()
            rows += len(result) if isinstance(result, list) else result
    return {"wall": time.perf_counter() - started, "rows": rows}


def _json(response: requests.Response) -> Any:
    """The body parsed once, by orjson (as this project parses it)."""
    return orjson.loads(response.content)


def _parse_lines(chunks: Iterator[bytes]) -> int:
    """Lines of a JSONL body (split on `\\n` only, no empty piece after a final `\\n`), each
    parsed as JSON (a line that is not JSON counts too)."""
    lines, rest, first = 0, b"", True
    for chunk in chunks:
        if first and chunk:
            chunk, first = chunk.removeprefix(_BOM), False
        pieces = (rest + chunk).split(b"\n")
        rest = pieces.pop()
        for piece in pieces:
            _parse(piece)
        lines += len(pieces)
    if rest:
        _parse(rest)
        lines += 1
    return lines


def _parse(line: bytes) -> None:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        pass


_BOM = b"\xef\xbb\xbf"
_TERMINAL = ("succeeded", "failed", "cancelled")
SCENARIOS = {"ours": run_ours, "peer": run_peer, "floor": run_floor, "empty": run_empty}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--root-url", default="")
    parser.add_argument("--key", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--resources", help="ours and floor: the resources to load (default all)")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    result = SCENARIOS[args.scenario](args)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(result))
    freeze_heap()  # and exit, as `openai-ft` and the pipeline script end


if __name__ == "__main__":
    main()
