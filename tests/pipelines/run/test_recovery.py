"""SIGKILL a load during extract, normalize or load; the next run completes it exactly.

Why it holds: dlt writes the ledger (our per-job state) into the same load package as the rows,
and commits both only when the package is loaded; a killed run leaves either nothing or a
package that the next run loads first. Rows are merged on `id`, so a package loaded twice would
still not duplicate a checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from fake_openai import FineTuningWorld, SandboxServer
from tests.helpers import (
    API_KEY,
    TERMINAL,
    Loader,
    assert_history_equal_truth,
    no_change_rows,
)

STAGES = ("extract", "normalize", "load")
TRIALS = 9  # 3 per stage


def _markers(pipelines_dir: Path) -> dict:
    """Directories dlt creates as a run enters each stage (the pipeline's own dir is named
    after its target: openai_fine_tuning_<digest>)."""
    for _ in range(100):  # dlt moves folders while we look: look again
        try:
            roots = [p for p in pipelines_dir.glob("openai_fine_tuning_*") if p.is_dir()]
            found: dict = {"extract": set(), "normalize": set(), "load": set()}
            for root in roots:
                found["extract"] |= {
                    p for p in root.glob("normalize/*/[0-9]*") if p.parent.name != "extracted"
                }
                found["normalize"] |= set(root.glob("normalize/extracted/[0-9]*"))
                found["load"] |= set(root.glob("load/normalized/[0-9]*"))
            return found
        except FileNotFoundError:
            continue
    raise AssertionError("pipelines dir kept changing")


def _kill_during(stage: str, process: subprocess.Popen, pipelines_dir: Path, rng) -> bool:
    """Waits until the run enters `stage`, then SIGKILLs it after a short random delay."""
    before = _markers(pipelines_dir)[stage]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if _markers(pipelines_dir)[stage] - before:
            time.sleep(rng.uniform(0, 0.02))
            process.send_signal(signal.SIGKILL)
            process.wait()
            return process.returncode == -signal.SIGKILL
        time.sleep(0.002)
    process.wait()
    return False


def _processes_using(path: Path) -> list:
    """PIDs of live processes whose command line names `path` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(path) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _no_orphans_left(path: Path) -> None:
    """A killed run's worker processes (dlt's normalize pool) end with it, not linger."""
    deadline = time.monotonic() + 15
    while _processes_using(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _processes_using(path)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left by the killed run: {left}"


def test_sigkill_at_every_stage_then_rerun_is_exact(tmp_path):
    rng = random.Random(20261127)
    world = FineTuningWorld(seed=21, jobs=10, max_checkpoints=30)
    killed = Counter()
    recovered = 0
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        sandbox.latency = 0.003  # extraction takes a moment, as over a network
        loader = Loader(sandbox, tmp_path)
        env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": sandbox.base_url}
        # normalize in worker processes, as a large load does: they must not outlive a kill
        env["NORMALIZE__WORKERS"] = "2"
        command = loader.command()
        for trial in range(TRIALS):
            stage = STAGES[trial % len(STAGES)]
            world.advance(seconds=60, new_checkpoints=rng.randint(1, 6))
            if rng.random() < 0.4:
                world.add_job(status="running", checkpoints=rng.randint(0, 40))
            if rng.random() < 0.2:
                world.finish_running_jobs()
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            was_killed = _kill_during(stage, process, loader.pipelines_dir, rng)
            killed[stage] += was_killed
            _no_orphans_left(loader.pipelines_dir)

            world.advance(seconds=30, new_checkpoints=1)  # more data before the next run
            # the next scheduled run finishes what the killed run left, then extracts the new
            # data too: the truth check below needs both
            recovered += loader.run().recovered_packages
            assert_history_equal_truth(loader, world)
            # and the state agrees with the data: nothing more to load
            settled = {j["id"] for j in world.truth_jobs() if j["status"] in TERMINAL}
            assert loader.run().rows == no_change_rows(world), (trial, stage, settled)
    # the kills landed where intended (a run can finish a stage before the kill arrives)
    print(f"SIGKILLs per stage: {dict(killed)}; packages finished by the next run: {recovered}")
    assert sum(killed.values()) >= 8 and all(killed[s] >= 2 for s in STAGES), killed
    assert recovered >= 1  # the recovery path ran


def _package_normalized_not_loaded(loader):
    """After a first load of `jobs`, a package of everything extracted and normalized by the
    pipeline `load()` uses for this target, not loaded: what a run killed in its load step
    leaves. Returns the pipeline and the package's load id."""
    from pipelines.run import make_pipeline
    from sources.openai_fine_tuning import openai_fine_tuning

    name = loader.run(resources=["jobs"]).pipeline_name  # the name load() gives this target
    pipeline = make_pipeline(
        duckdb_path=str(loader.duckdb_path),
        pipelines_dir=str(loader.pipelines_dir),
        pipeline_name=name,
    )
    pipeline.extract(openai_fine_tuning(api_key=API_KEY, base_url=loader.sandbox.base_url))
    pipeline.normalize()
    (load_id,) = pipeline.list_normalized_load_packages()
    return pipeline, load_id


def test_half_deleted_extracted_package_is_dropped(loader, world):
    """The exact leftover of a SIGKILL inside dlt's normalize commit: the package is already in
    `load/normalized`, its extracted copy half deleted. The next run must not trip on it."""
    pipeline, load_id = _package_normalized_not_loaded(loader)
    leftover = Path(pipeline.working_dir) / "normalize" / "extracted" / load_id
    (leftover / "completed_jobs").mkdir(parents=True)  # what rmtree had not reached yet
    assert load_id in pipeline.list_extracted_load_packages()

    summary = loader.run()

    assert summary.recovered_packages == 1
    assert not leftover.exists()
    assert_history_equal_truth(loader, world)
    # rows written count the recovered package too (it holds everything but the jobs, which
    # the first run wrote and the package only merged again unchanged)
    written = {t: n for t, n in summary.rows.items() if t not in ("jobs", "files")}
    assert written == {
        "checkpoints": loader.count("checkpoints"),
        "events": loader.count("events"),
        "step_metrics": loader.count("step_metrics"),
        "results": loader.count("results"),
        "training_examples": loader.count("training_examples"),
        "models": loader.count("models"),
        "step_grader_scores": loader.count("step_grader_scores"),
    }


def test_half_deleted_empty_extracted_package_is_dropped(loader, world):
    """A kill while dlt deletes an extracted package that had nothing to load leaves one
    without a twin; parts of it are gone."""
    name = loader.run().pipeline_name
    extracted = loader.pipelines_dir / name / "normalize" / "extracted"
    leftover = extracted / "1795000000.123"
    (leftover / "failed_jobs").mkdir(parents=True)
    (leftover / "schema.json").write_text("{}")
    world.advance(seconds=60, new_checkpoints=1)

    loader.run()

    assert not leftover.exists()
    assert_history_equal_truth(loader, world)


# what a run merges with each key once per run: dlt copies their staging rows as they are
DEDUPLICATED_TABLES = {
    "checkpoints",
    "events",
    "step_metrics",
    "step_grader_scores",
    "results",
    "training_examples",
}


def _size(path: Path) -> int:
    return path.stat().st_size


def _appended_then_killed_before_recorded(loader):
    """What a SIGKILL leaves after a package appended into the tables new to the DuckDB file
    (all but `jobs`, which the first run loaded alone) and its `checkpoints` append committed,
    before dlt recorded that job as done: the package pending again, that job started, no
    load recorded. Meanwhile another load of the same target (another working dir) wrote some
    of the package's events. Returns the pipeline and the package's load id."""
    import duckdb
    import pyarrow.parquet as pq

    from pipelines.run.loader import append_where_nothing_to_merge

    pipeline, load_id = _package_normalized_not_loaded(loader)
    with duckdb.connect(str(loader.duckdb_path)):  # held, as load() holds it
        assert set(append_where_nothing_to_merge(pipeline)) == DEDUPLICATED_TABLES
    pipeline.load()
    root = Path(pipeline.working_dir) / "load"
    package = root / "normalized" / load_id
    shutil.move(root / "loaded" / load_id, package)
    (package / "package_completed.json").unlink()  # written once every job was done
    # the file with rows (the table's first file may be its empty marker)
    job = max((package / "completed_jobs").glob("checkpoints.*.parquet"), key=_size)
    assert pq.read_metadata(job).num_rows > 0
    job.rename(package / "started_jobs" / job.name)
    with duckdb.connect(str(loader.duckdb_path)) as connection:
        connection.execute("DELETE FROM openai_fine_tuning._dlt_loads WHERE load_id = ?", [load_id])
        connection.execute(
            "INSERT INTO openai_fine_tuning.events SELECT * REPLACE ('1700000000.1' AS"
            " _dlt_load_id) FROM openai_fine_tuning.events WHERE _dlt_load_id = ? LIMIT 5",
            [load_id],
        )
    return pipeline, load_id


def _assert_each_row_once(loader, world):
    assert_history_equal_truth(loader, world)
    for table in DEDUPLICATED_TABLES:
        (duplicates,) = loader.query(
            f"SELECT count(*) - count(DISTINCT _dlt_id) AS n FROM openai_fine_tuning.{table}"
        )
        assert duplicates == {"n": 0}, table


def test_resumed_package_that_appended_a_file_twice_keeps_each_row_once(loader, world):
    """The resumed package appends the checkpoints file again; recovery leaves of each key
    the package's row, once (the events another load wrote too included)."""
    from pipelines.run.recovery import APPENDED_PACKAGES_FILE

    pipeline, _ = _appended_then_killed_before_recorded(loader)

    summary = loader.run()

    assert summary.recovered_packages == 1
    _assert_each_row_once(loader, world)
    assert not (Path(pipeline.working_dir) / APPENDED_PACKAGES_FILE).exists()


def test_cleaning_a_resumed_package_survives_a_kill_after_its_load(loader, world):
    """Recovery records the package before dlt loads it; a run killed after dlt recorded the
    load and before the duplicates were deleted leaves them to the next run, which deletes
    them."""
    from pipelines.run.package_schema import appended_keys
    from pipelines.run.recovery import _record_appended_packages

    pipeline, load_id = _appended_then_killed_before_recorded(loader)
    _record_appended_packages(pipeline, {load_id: appended_keys(pipeline, load_id)})
    pipeline.load()  # the resumed load, then the kill
    (doubled,) = loader.query(
        "SELECT count(*) - count(DISTINCT _dlt_id) AS n FROM openai_fine_tuning.checkpoints"
    )
    assert doubled["n"] > 0

    summary = loader.run()

    assert summary.recovered_packages == 0
    _assert_each_row_once(loader, world)


def test_tables_read_once_per_run_are_declared_deduplicated(loader):
    from sources.openai_fine_tuning.schema import DEDUPLICATED_HINT

    name = loader.run().pipeline_name
    schema = json.loads(
        (loader.pipelines_dir / name / "schemas" / "openai_fine_tuning.schema.json").read_text()
    )
    declared = {n for n, t in schema["tables"].items() if t.get(DEDUPLICATED_HINT)}
    assert declared == DEDUPLICATED_TABLES


def test_resumed_package_with_a_staging_copy_made_twice_loads_each_row_once(loader, world):
    """A run killed after a staging copy committed, before dlt recorded the job as done, makes
    that copy again when the package is resumed: the rows twice in staging. The package is
    loaded with dlt's per-key ranking back on, so every table still equals the truth."""
    pipeline, load_id = _package_normalized_not_loaded(loader)
    new_jobs = Path(pipeline.working_dir) / "load" / "normalized" / load_id / "new_jobs"
    copied = []
    for table in sorted(DEDUPLICATED_TABLES):  # each file of these tables, as if copied twice
        for job_file in new_jobs.glob(f"{table}.*.parquet"):
            _, file_id, retry, ext = job_file.name.split(".")
            twin = job_file.with_name(f"{table}.{file_id}x.{retry}.{ext}")
            shutil.copyfile(job_file, twin)
            copied.append(table)
    assert set(copied) == DEDUPLICATED_TABLES

    summary = loader.run()

    assert summary.recovered_packages == 1
    assert_history_equal_truth(loader, world)
    for table in DEDUPLICATED_TABLES:
        (duplicates,) = loader.query(
            f"SELECT count(*) - count(DISTINCT _dlt_id) AS n FROM openai_fine_tuning.{table}"
        )
        assert duplicates == {"n": 0}, table
