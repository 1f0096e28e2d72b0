"""`openai-ft export`: every archived training and validation file written back out, byte for
byte, from the destination alone (it works after OpenAI deleted the files).

A file is rebuilt from `training_examples` (its lines, in order) and the layout columns of
`files` (`bom`, `line_ending`, `final_newline`), streamed to disk, and kept only when its
SHA-256 equals the one recorded when it was downloaded. `manifest.json` lists what was
written, with the jobs that used each file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence

import dlt

from sources.openai_fine_tuning.errors import ConfigurationError
from sources.openai_fine_tuning.settings import TRAINING_FILE_ROLES

BOM = b"\xef\xbb\xbf"
ENDINGS = {"lf": b"\n", "crlf": b"\r\n"}
FETCH_ROWS = 5_000  # lines read from the destination at a time: memory stays flat
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, fallback: str) -> str:
    """A file or folder name that stays where it is put: no path, no separators, no leading
    dot, only `A-Za-z0-9._-` (others become `_`)."""
    cleaned = _UNSAFE.sub("_", os.path.basename(name.replace("\\", "/"))).lstrip(".")
    return cleaned[:200] or fallback


@dataclass
class ExportResult:
    """What `export_files` wrote, and what it could not write exactly."""

    out: Path
    written: List[Dict[str, Any]] = field(default_factory=list)  # the manifest's entries
    failed: List[str] = field(default_factory=list)  # one line per file not written exactly
    not_archived: List[str] = field(default_factory=list)  # named by a job, no content archived


def _rows(client: Any, sql: str, *params: Any) -> List[Dict[str, Any]]:
    with client.execute_query(sql, *params) as cursor:
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _method(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw.get("type") if isinstance(raw, dict) else None


def _write(client: Any, table: str, record: Dict[str, Any], path: Path) -> str:
    """Streams the file's rebuilt bytes to `path`; returns their SHA-256 (a file whose lines
    are not all archived raises ValueError naming how many are)."""
    ending = ENDINGS.get(record["line_ending"] or "lf", b"\n")
    digest, lines = hashlib.sha256(), 0
    with (
        open(path, "wb") as out,
        client.execute_query(
            f"SELECT raw FROM {table} WHERE file_id = %s ORDER BY line", record["id"]
        ) as cursor,
    ):
        if record["bom"]:
            out.write(BOM)
            digest.update(BOM)
        while rows := cursor.fetchmany(FETCH_ROWS):
            for (raw,) in rows:
                data = (ending if lines else b"") + raw.encode("utf-8")
                out.write(data)
                digest.update(data)
                lines += 1
        if record["final_newline"] and lines:
            out.write(ending)
            digest.update(ending)
    if lines != record["lines"]:
        raise ValueError(f"{lines:,} of its {record['lines']:,} lines are archived")
    return digest.hexdigest()


def export_files(pipeline: dlt.Pipeline, out: str, job_ids: Sequence[str] = ()) -> ExportResult:
    """Writes `out/<file_id>/<filename>` for every archived training and validation file
    (of `job_ids` only, when given) and `out/manifest.json`.

    Raises:
        ConfigurationError: a job id the dataset does not hold, or nothing archived at all.
    """
    result = ExportResult(Path(out).resolve())
    with pipeline.sql_client() as client:
        jobs_table = client.make_qualified_table_name("jobs")
        files_table = client.make_qualified_table_name("files")
        lines_table = client.make_qualified_table_name("training_examples")
        jobs = _rows(
            client,
            f"SELECT id, created_at, model, method, training_file, validation_file"
            f" FROM {jobs_table} ORDER BY created_at, id",
        )
        known = {job["id"] for job in jobs}
        unknown = [job_id for job_id in job_ids if job_id not in known]
        if unknown:
            raise ConfigurationError(
                f"Job {unknown[0]!r} is not in the dataset {pipeline.dataset_name}: check --job,"
                " or load it first"
            )
        chosen = [job for job in jobs if not job_ids or job["id"] in job_ids]
        used_by: Dict[str, List[Dict[str, Any]]] = {}
        for job in chosen:
            for column, role in TRAINING_FILE_ROLES:
                if job[column]:
                    used_by.setdefault(job[column], []).append({"id": job["id"], "as": role})
        archived = {
            row["id"]: row
            for row in _rows(
                client,
                "SELECT id, filename, bytes, purpose, sha256, lines, line_ending,"
                f" final_newline, bom FROM {files_table} WHERE sha256 IS NOT NULL",
            )
        }
        if not archived:
            raise ConfigurationError(
                f"No training files are archived in the dataset {pipeline.dataset_name}: run"
                " `openai-ft load` (with the training_data resource) first"
            )
        by_id = {job["id"]: job for job in chosen}
        result.out.mkdir(parents=True, exist_ok=True)
        for file_id, users in used_by.items():
            record = archived.get(file_id)
            if record is None:
                result.not_archived.append(file_id)
                continue
            folder = result.out / safe_name(file_id, "file")
            folder.mkdir(exist_ok=True)
            path = folder / safe_name(record["filename"] or "", f"{folder.name}.jsonl")
            partial = path.with_name(path.name + ".partial")
            try:
                sha256 = _write(client, lines_table, record, partial)
            except ValueError as error:
                partial.unlink(missing_ok=True)
                result.failed.append(f"{file_id}: incomplete, {error}")
                continue
            if sha256 != record["sha256"]:
                partial.unlink(missing_ok=True)
                result.failed.append(
                    f"{file_id}: the rebuilt bytes differ from the original (sha256 {sha256[:12]}"
                    f" vs {record['sha256'][:12]}; a file that was not UTF-8 cannot be rebuilt)"
                )
                continue
            partial.replace(path)
            first = by_id[users[0]["id"]]
            result.written.append(
                {
                    "file_id": file_id,
                    "filename": record["filename"],
                    "path": path.relative_to(result.out).as_posix(),
                    "bytes": path.stat().st_size,
                    "sha256": sha256,
                    "purpose": record["purpose"],
                    "jobs": users,
                    "base_model": first["model"],
                    "method": _method(first["method"]) or "supervised",
                }
            )
    manifest = result.out / "manifest.json"
    manifest.write_text(json.dumps(result.written, indent=1) + "\n", encoding="utf-8")
    return result
