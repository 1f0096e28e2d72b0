"""`openai-ft export`: every archived training file written back out byte for byte, from the
destination alone, on DuckDB and PostgreSQL."""

from __future__ import annotations

import hashlib
import json

import duckdb

from pipelines.cli import main
from pipelines.run import load
from tests.helpers import API_KEY, DATASET, training_truth


def _export(target, out, *args: str, capsys=None):
    code = main(
        [
            "export",
            "--destination",
            target.name,
            "--duckdb-path",
            str(target.duckdb_path),
            "--dataset",
            target.dataset,
            "--out",
            str(out),
            *args,
        ]
    )
    return code


def _expected_manifest(world, job_ids=None, contents=None, records=None):
    """The manifest of an export of the (given) jobs' files; `contents` and `records` as the
    world had them before it deleted any."""
    contents = contents if contents is not None else world.truth_training_files()
    records = records if records is not None else {f["id"]: f for f in world.truth_files()}
    jobs = sorted(world.truth_jobs(), key=lambda j: (j["created_at"], j["id"]))
    entries = {}
    for job in jobs:
        if job_ids and job["id"] not in job_ids:
            continue
        for name, role in (("training_file", "training"), ("validation_file", "validation")):
            file_id = job[name]
            if file_id not in contents:
                continue
            entry = entries.setdefault(
                file_id,
                {
                    "file_id": file_id,
                    "filename": records[file_id]["filename"],
                    "path": f"{file_id}/{records[file_id]['filename']}",
                    "bytes": len(contents[file_id]),
                    "sha256": hashlib.sha256(contents[file_id]).hexdigest(),
                    "purpose": "fine-tune",
                    "jobs": [],
                    "base_model": job["model"],
                    "method": job["method"]["type"],
                },
            )
            entry["jobs"].append({"id": job["id"], "as": role})
    return sorted(entries.values(), key=lambda e: e["file_id"])


def test_export_writes_every_file_byte_for_byte_after_openai_deleted_them(
    target, sandbox, world, tmp_path, capsys
):
    load(api_key=API_KEY, base_url=sandbox.base_url, **target.load_options())
    contents = world.truth_training_files()
    records = {f["id"]: f for f in world.truth_files()}
    for file_id in contents:  # OpenAI deletes them: the archive is all there is
        world.delete_file(file_id)
    sandbox.stats.reset()
    out = tmp_path / "export"
    code = _export(target, out)
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert sandbox.stats.total == 0
    manifest = json.loads((out / "manifest.json").read_text())
    expected = _expected_manifest(world, contents=contents, records=records)
    assert sorted(manifest, key=lambda e: e["file_id"]) == expected
    for entry in manifest:
        assert (out / entry["path"]).read_bytes() == contents[entry["file_id"]]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(["manifest.json", *(e["path"] for e in manifest)])
    size = sum(len(c) for c in contents.values())
    assert stdout == (
        f"Exported {len(contents)} file(s), {size:,} bytes, to {out} (manifest.json lists them)\n"
    )
    never_read = _training_ids(world) - set(contents)  # deleted before the load
    assert never_read
    head, _, ids = stderr.rstrip("\n").partition(": file-")
    assert head == (
        f"openai-ft: warning: {len(never_read)} file(s) the jobs name are not in the archive"
        " (deleted upstream before they were read, or not loaded yet)"
    )
    assert set(("file-" + ids).split(", ")) == never_read


def _training_ids(world) -> set:
    return {
        j[name]
        for j in world.truth_jobs()
        for name in ("training_file", "validation_file")
        if j[name]
    }


def test_export_of_one_job_writes_its_files_only(loaded_target, tmp_path, capsys):
    target, world = loaded_target
    job = next(
        j for j in world.truth_jobs() if j["validation_file"] in world.truth_training_files()
    )
    out = tmp_path / "one"
    assert _export(target, out, "--job", job["id"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest, key=lambda e: e["file_id"]) == _expected_manifest(world, {job["id"]})


def test_export_of_an_unknown_job_is_one_line_and_exit_2(loaded_target, tmp_path, capsys):
    target, _ = loaded_target
    assert _export(target, tmp_path / "x", "--job", "ftjob-nope") == 2
    _, err = capsys.readouterr()
    assert err == (
        f"openai-ft: error: Job 'ftjob-nope' is not in the dataset {target.dataset}: check --job,"
        " or load it first\n"
    )


def test_a_file_not_archived_whole_is_named_and_not_written(loader, world, tmp_path, capsys):
    loader.run()
    truth = training_truth(world)
    file_id = sorted(truth)[0]
    with duckdb.connect(str(loader.duckdb_path)) as connection:
        connection.execute(
            f"DELETE FROM {DATASET}.training_examples WHERE file_id = ? AND line = 2", [file_id]
        )
    out = tmp_path / "export"
    code = main(["export", "--duckdb-path", str(loader.duckdb_path), "--out", str(out)])
    _, err = capsys.readouterr()
    lines = truth[file_id][0]["lines"]
    assert code == 5
    assert err.splitlines()[-1] == (
        f"openai-ft: error: 1 file(s) could not be written exactly: {file_id}: incomplete,"
        f" {lines - 1:,} of its {lines:,} lines are archived"
    )
    assert not (out / file_id).exists() or not any((out / file_id).iterdir())
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(e["file_id"] for e in manifest) == sorted(set(truth) - {file_id})


def test_a_filename_with_a_path_stays_inside_the_export(loader, world, tmp_path, capsys):
    truth = training_truth(world)
    file_id = sorted(truth)[0]
    world.patch_file(file_id, filename="../../etc/passwd")
    loader.run()
    out = tmp_path / "export"
    assert main(["export", "--duckdb-path", str(loader.duckdb_path), "--out", str(out)]) == 0
    manifest = {e["file_id"]: e for e in json.loads((out / "manifest.json").read_text())}
    assert manifest[file_id]["path"] == f"{file_id}/passwd"
    assert manifest[file_id]["filename"] == "../../etc/passwd"
    assert (out / file_id / "passwd").read_bytes() == world.truth_training_files()[file_id]


def test_export_without_training_data_is_one_line_and_exit_2(loader, tmp_path, capsys):
    loader.run(resources=["jobs", "files"])
    code = main(["export", "--duckdb-path", str(loader.duckdb_path), "--out", str(tmp_path / "e")])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == (
        f"openai-ft: error: No training files are archived in the dataset {DATASET}: run"
        " `openai-ft load` (with the training_data resource) first\n"
    )
