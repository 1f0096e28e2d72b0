"""`python -m bench`: this project vs dlt's `rest_api` source vs the raw floor, on the sandbox.

Every number comes from this run: the sandbox is served by this process, each measurement runs
in a fresh process of its own (imports not timed). Prints one table and writes `bench/RESULTS.md`.

Longer than most modules on purpose: it is the whole benchmark's plan (every case, its
world and its row), which reads best in one place; what runs in each measured process is in
`measure.py`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from fake_openai import FineTuningWorld, SandboxServer

KEY = "sk-bench"
HERE = Path(__file__).resolve().parent


class Sandbox:
    """The sandbox, served by a thread of this process (which only waits while a measurement
    runs in its own process): no process of its own to start and import."""

    def __init__(
        self,
        jobs: int,
        latency_ms: float,
        max_checkpoints: int = 6,
        checkpoints_per_job: Optional[int] = None,
        big_job_checkpoints: Optional[int] = None,
        big_job_steps: int = 0,
        max_steps: int = 300,
        rate_limit: Optional[float] = None,
        big_training_file_bytes: Optional[int] = None,
    ) -> None:
        self.world = FineTuningWorld(
            seed=1,
            jobs=jobs,
            max_checkpoints=max_checkpoints,
            checkpoints_per_job=checkpoints_per_job,
            big_job_checkpoints=big_job_checkpoints,
            max_steps=max_steps,
            big_job_steps=big_job_steps or None,
            big_training_file_bytes=big_training_file_bytes,
        )
        self.server = SandboxServer(
            self.world, api_key=KEY, latency=latency_ms / 1000, rate_limit=rate_limit
        ).start()
        self.root_url = self.server.root_url
        self.base_url = self.server.base_url

    def stats(self) -> Dict[str, Any]:
        return self.server.stats.snapshot()

    def requests(self) -> int:
        return int(self.stats()["total"])

    def truth_counts(self) -> Dict[str, int]:
        """Rows a complete load holds per table, from the sandbox's truth."""
        events = [e for evs in self.world.truth_events().values() for e in evs]
        return {
            "jobs": len(self.world.truth_jobs()),
            "checkpoints": len(self.world.truth_checkpoints()),
            "events": len(events),
            "step_metrics": sum(e.get("type") == "metrics" for e in events),
            "files": len(self.world.truth_files()),
            "results": len(self.world.truth_results()),
            "training_examples": sum(map(_lines, self.world.truth_training_files().values())),
            "models": len(self.world.truth_models()),
        }

    def reset(self) -> None:
        self.server.stats.reset()

    def close(self) -> None:
        self.server.stop()


def _lines(content: bytes) -> int:
    """Lines of a file split on b"\\n" only (no empty piece after a final newline), counted
    without splitting: a file of 500 MB is not copied."""
    return content.count(b"\n") + (bool(content) and not content.endswith(b"\n"))


def measure(
    scenario: str,
    sandbox: Optional[Sandbox],
    workdir: Path,
    workers: int,
    rerun: bool = False,
    resources: Optional[str] = None,
) -> Dict[str, Any]:
    """Runs `bench.measure` in a fresh process; adds the requests the sandbox counted."""
    if sandbox is not None:
        sandbox.reset()
    urls = (sandbox.base_url, sandbox.root_url) if sandbox else ("http://unused", "")
    command = [
        sys.executable,
        "-m",
        "bench.measure",
        scenario,
        "--base-url",
        urls[0],
        "--root-url",
        urls[1],
        "--key",
        KEY,
        "--workdir",
        str(workdir),
        "--workers",
        str(workers),
    ] + (["--rerun"] if rerun else [])
    if resources:
        command += ["--resources", resources]
    began = time.perf_counter()
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    process_wall = time.perf_counter() - began  # the whole process: Python, imports, the run
    if output.returncode != 0:
        raise RuntimeError(f"{scenario} failed:\n{output.stderr[-3000:]}")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    stats = sandbox.stats() if sandbox is not None else {"total": 0, "rate_limited": 0}
    result["requests"] = int(stats["total"])
    result["rate_limited"] = int(stats.get("rate_limited", 0))
    result["process_wall"] = process_wall
    return result


def import_dlt_seconds() -> float:
    """The wall of `python -c "import dlt"`, best of three (the first warms the disk cache)."""
    walls = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import dlt"], check=True)
        walls.append(time.perf_counter() - began)
    return min(walls)


def versus_floor(
    args: argparse.Namespace, root: Path, label: str, latency_ms: float, resources: Optional[str]
) -> List[List[str]]:
    """A first load of this project and of the raw floor, on one sandbox of the compare case's
    world: their rows and the ratio."""
    sandbox = Sandbox(
        args.jobs, latency_ms, big_job_checkpoints=args.big_job, big_job_steps=args.big_steps
    )
    results = {}
    try:
        for name in ("ours", "floor"):
            workdir = root / f"{name}_{label.replace(' ', '_').replace(',', '')}"
            workdir.mkdir()
            results[name] = measure(name, sandbox, workdir, args.workers, resources=resources)
    finally:
        sandbox.close()
    ours, floor = results["ours"], results["floor"]
    rows = [
        [
            label,
            who,
            _fmt(r["wall"]),
            str(r["requests"]),
            str(r["rows"]),
            f"{r['peak_rss_mb']:.0f} MB",
        ]
        for who, r in (("this project", ours), ("raw floor", floor))
    ]
    rows.append(
        [f"{label}: ratio", "ours / floor", f"{ours['wall'] / floor['wall']:.2f}x", "", "", ""]
    )
    return rows


def _fmt(seconds: float) -> str:
    return f"{seconds:.2f} s"


def compare(args: argparse.Namespace, root: Path) -> List[List[str]]:
    rows: List[List[str]] = []
    sandbox = Sandbox(
        args.jobs, args.latency_ms, big_job_checkpoints=args.big_job, big_job_steps=args.big_steps
    )
    results: Dict[str, Dict[str, Any]] = {}
    try:
        for name in ("ours", "peer", "floor"):
            workdir = root / name
            workdir.mkdir()
            results[f"{name} first"] = measure(name, sandbox, workdir, args.workers)
            results[f"{name} rerun"] = measure(name, sandbox, workdir, args.workers, rerun=True)
    finally:
        sandbox.close()
    empty_dir = root / "empty"
    empty_dir.mkdir()
    measure_empty = [measure("empty", None, empty_dir, args.workers) for _ in range(3)]
    overhead = sorted(m["wall"] for m in measure_empty[1:])[0]  # a warm rerun, best of two
    for kind in ("first", "rerun"):
        ours, peer, floor = (results[f"{n} {kind}"] for n in ("ours", "peer", "floor"))
        for name, r in (("this project", ours), ("dlt rest_api", peer), ("raw floor", floor)):
            rows.append(
                [
                    f"{kind} load" if kind == "first" else "no-change rerun",
                    name,
                    _fmt(r["wall"]),
                    str(r["requests"]),
                    str(r["rows"]),
                    f"{r['peak_rss_mb']:.0f} MB",
                ]
            )
        rows.append(
            [
                f"{kind}: ratios",
                "ours / floor",
                f"{ours['wall'] / floor['wall']:.2f}x",
                "peer / ours",
                f"{peer['wall'] / ours['wall']:.1f}x",
                "",
            ]
        )
    rows.append(["dlt fixed overhead", "empty source, warm rerun", _fmt(overhead), "0", "0", ""])
    ours_rerun = results["ours rerun"]["wall"]
    rows.append(["rerun over overhead", "this project", _fmt(ours_rerun - overhead), "", "", ""])
    # the whole rerun process (Python, imports, the run) against `import dlt` + the floor of
    # its requests + 0.5 s
    importing = import_dlt_seconds()
    budget = importing + results["floor rerun"]["wall"] + 0.5
    whole = results["ours rerun"]["process_wall"]
    rows.append(
        [
            "rerun, whole process",
            f"import dlt {_fmt(importing)} + floor + 0.5 s = {_fmt(budget)}",
            _fmt(whole),
            "met" if whole <= budget else "MISSED",
            "",
            "",
        ]
    )
    steps = results["ours first"].get("steps", {})
    if steps:
        rows.append(
            [
                "ours first: steps",
                ", ".join(f"{k} {v:.2f} s" for k, v in steps.items()),
                "",
                "",
                "",
                "",
            ]
        )
    return rows


def stress(args: argparse.Namespace, root: Path) -> List[List[str]]:
    """0 ms latency, one sandbox per case: rows/s and peak RSS as the data grows.

    Checkpoint cases load `jobs,checkpoints` only (a job of n checkpoints also has n steps
    of events and results, measured by the event cases, which load everything).
    """
    cases = [
        (
            f"1 job x {n:,} checkpoints",
            {"jobs": 1, "big_job_checkpoints": n, "big_job_steps": n},
            "jobs,checkpoints",
        )
        for n in args.big_sizes
    ]
    cases += [
        (f"1 job x {n:,} steps (events)", {"jobs": 1, "big_job_steps": n}, None)
        for n in args.event_sizes
    ]
    cases.append(
        (
            f"{args.many_jobs} jobs x 3 checkpoints",
            {"jobs": args.many_jobs, "checkpoints_per_job": 3, "max_steps": 30},
            None,
        )
    )
    rows: List[List[str]] = []
    for label, world, resources in cases:
        sandbox = Sandbox(latency_ms=0, **world)
        floor: Optional[Dict[str, Any]] = None
        try:
            workdir = root / f"stress_{len(rows)}"
            workdir.mkdir()
            r = measure("ours", sandbox, workdir, args.workers, resources=resources)
            if world.get("jobs") == 1:  # a job's chain of pages: what a rows/s goal can reach
                (workdir / "floor").mkdir()
                floor = measure(
                    "floor", sandbox, workdir / "floor", args.workers, resources=resources
                )
        finally:
            sandbox.close()
        rows.append(
            [
                label,
                _fmt(r["wall"]),
                str(r["requests"]),
                f"{r['rows']:,}",
                f"{r['rows'] / r['wall']:,.0f}",
                f"{r['peak_rss_mb']:.0f} MB",
            ]
        )
        if floor is not None:
            # the floor makes none of these rows: its wall, at this project's rows, is the
            # fastest rows/s the same requests, one after another, allow
            rows.append(
                [
                    f"{label}: raw floor, at this project's rows",
                    _fmt(floor["wall"]),
                    str(floor["requests"]),
                    f"{r['rows']:,}",
                    f"{r['rows'] / floor['wall']:,.0f}",
                    f"{floor['peak_rss_mb']:.0f} MB",
                ]
            )
    return rows


MB = 1_000_000
# the fewest jobs whose world gives the big file to a succeeded job as its training file (with
# fewer, all such files carry a quirk and the big one is a validation file)
TRAINING_FILE_JOBS = 10


def training_file(args: argparse.Namespace, root: Path) -> List[List[str]]:
    """0 ms latency, a world of a few jobs, one of which trains on a file of each size in
    `--training-file-mb`: a first load of `jobs,training_data`, each in a fresh process; then
    the peak RSS of the largest over the smallest (target: within 20%)."""
    rows: List[List[str]] = []
    peaks: List[float] = []
    for size in args.training_file_mb:
        sandbox = Sandbox(
            TRAINING_FILE_JOBS, 0, big_job_steps=0, big_training_file_bytes=int(size * MB)
        )
        try:
            big = sandbox.world.big_training_file()
            if big is None:
                raise RuntimeError(f"the sandbox made no big training file of {size:g} MB")
            truth = sandbox.truth_counts()["training_examples"]
            workdir = root / f"training_file_{len(rows)}"
            workdir.mkdir()
            r = measure("ours", sandbox, workdir, args.workers, resources="jobs,training_data")
        finally:
            sandbox.close()
        loaded = r["tables"].get("training_examples")
        peaks.append(r["peak_rss_mb"])
        rows.append(
            [
                f"{TRAINING_FILE_JOBS} jobs, one training file of {size:g} MB",
                _fmt(r["wall"]),
                str(r["requests"]),
                f"{r['rows']:,}"
                + ("" if loaded == truth else f" (NOT EXACT: {loaded} vs {truth})"),
                f"{r['rows'] / r['wall']:,.0f}",
                f"{r['peak_rss_mb']:.0f} MB",
            ]
        )
    if len(peaks) >= 2:
        small, large = min(args.training_file_mb), max(args.training_file_mb)
        ratio = (
            peaks[args.training_file_mb.index(large)] / peaks[args.training_file_mb.index(small)]
        )
        rows.append(
            [
                f"a {large:g} MB training file: peak RSS within 20% of a {small:g} MB one",
                "",
                "",
                "",
                "",
                f"{ratio:.2f}x: " + ("met" if ratio <= 1.2 else "NOT met"),
            ]
        )
    return rows


def report_row(args: argparse.Namespace, duckdb_path: Path) -> List[str]:
    """`openai-ft report` over the first load's DuckDB file (all jobs in the table, charts for
    the 20 most recent): wall time, in a fresh process, and the file's size."""
    out = duckdb_path.parent / "report.html"
    command = [sys.executable, "-m", "pipelines.cli", "report", "--duckdb-path", str(duckdb_path)]
    started = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
    wall = time.perf_counter() - started
    size = out.stat().st_size / 1024 / 1024
    return [
        "report",
        f"openai-ft report, {args.jobs} jobs, 20 charts",
        _fmt(wall),
        "0",
        f"{size:.1f} MB",
        "",
    ]


def rate_limited(args: argparse.Namespace, root: Path) -> List[List[str]]:
    """A server that admits `--rate-limit` requests per second (token bucket, 429 with
    `retry-after-ms` beyond): the rate a first load sustains, and whether it ends exact."""
    sandbox = Sandbox(args.rate_jobs, args.latency_ms, big_job_steps=0, rate_limit=args.rate_limit)
    try:
        workdir = root / "rate_limited"
        workdir.mkdir()
        r = measure("ours", sandbox, workdir, args.workers)
        truth = sandbox.truth_counts()
    finally:
        sandbox.close()
    admitted = r["requests"] - r["rate_limited"]
    exact = all(r["tables"].get(name) == count for name, count in truth.items())
    return [
        [
            f"{args.rate_jobs} jobs, {args.rate_limit:g} requests/s allowed",
            _fmt(r["wall"]),
            str(admitted),
            str(r["rate_limited"]),
            f"{admitted / r['wall']:.1f}/s = {admitted / r['wall'] / args.rate_limit:.0%}",
            "yes" if exact else f"NO: {r['tables']} vs {truth}",
        ]
    ]


def table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--big-job", type=int, default=350, help="checkpoints of the big job")
    parser.add_argument("--big-steps", type=int, default=5000, help="steps of the long job")
    parser.add_argument("--big-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--event-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--many-jobs", type=int, default=10_000)
    parser.add_argument("--rate-limit", type=float, default=20.0, help="requests/s allowed")
    parser.add_argument("--rate-jobs", type=int, default=100, help="jobs of the rate-limit run")
    parser.add_argument(
        "--training-file-mb",
        type=float,
        nargs="*",
        default=[50.0, 500.0],
        help="sizes of the big training file, in MB (10^6 bytes); peak RSS largest / smallest",
    )
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="openai-ft-bench-") as tmp:
        root = Path(tmp)
        compared = compare(args, root)
        compared.append(report_row(args, root / "ours" / "ours.duckdb"))
        compared += versus_floor(
            args, root, "first load, jobs and checkpoints", args.latency_ms, "jobs,checkpoints"
        )
        compared += versus_floor(args, root, "first load, 0 ms", 0.0, None)
        stressed = stress(args, root) + training_file(args, root)
        limited = rate_limited(args, root)
    header = ["case", "who", "wall", "requests", "rows", "peak RSS"]
    stress_header = ["0 ms latency", "wall", "requests", "rows", "rows/s", "peak RSS"]
    rate_header = ["rate-limited first load", "wall", "admitted", "429s", "sustained", "exact"]
    command = "python -m bench " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"`{command.strip()}` on {datetime.date.today()}, {os.cpu_count()} cores,"
            f" Python {platform.python_version()}, {platform.machine()}; took"
            f" {time.monotonic() - started:.0f} s.",
            "",
            f"Sandbox: {args.jobs} jobs, ~3 checkpoints and ~100 training steps (one event each)"
            f" per job, one job with {args.big_job} checkpoints, one with {args.big_steps:,}"
            f" steps; {args.latency_ms:g} ms per request; {args.workers} workers for everyone.",
            "",
            table(header, compared),
            "",
            table(stress_header, stressed),
            "",
            table(rate_header, limited),
            "",
        ]
    )
    print(text)
    notes = HERE / "NOTES.md"
    if notes.exists():
        text += "\n" + notes.read_text()
    Path(args.out).write_text(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
