"""What a run did: the summary `openai-ft load` prints (text, or one JSON object), filled as
the run goes so that a failed run still reports what it knows."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from dlt.common.pipeline import LoadInfo

from pipelines.analysis.views import Shutdowns
from sources.openai_fine_tuning.stats import UnreadableFile

# The tables the source writes, always shown in the summary (child tables only when written).
TABLES = (
    "jobs",
    "checkpoints",
    "events",
    "step_metrics",
    "step_grader_scores",
    "files",
    "results",
    "training_examples",
    "models",
)


@dataclass
class LoadSummary:
    """One run: where it loaded, what it wrote and asked, how it ended."""

    pipeline_name: str = ""
    pipelines_dir: str = ""
    destination: str = ""
    dataset: str = ""
    jobs_seen: int = 0
    rows: Dict[str, int] = field(default_factory=dict)  # rows written per table
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    elapsed: float = 0.0
    open_jobs: Optional[int] = None  # jobs some resource still reads on the next run
    settled_jobs: Optional[int] = None
    load_ids: List[str] = field(default_factory=list)
    recovered_packages: int = 0
    lowest_concurrency: Optional[int] = None
    workers: Optional[int] = None
    missing_files: List[str] = field(default_factory=list)
    skipped: Dict[str, int] = field(default_factory=dict)
    unreadable_files: List[UnreadableFile] = field(default_factory=list)
    views: List[str] = field(default_factory=list)
    training_files: int = 0  # training and validation files archived on this run
    invalid_training_lines: int = 0  # their lines that are not JSON (blank ones too)
    non_utf8_files: List[str] = field(default_factory=list)
    models_skipped: Optional[str] = None  # why the models list could not be read
    shutdowns: Optional[Shutdowns] = None  # None where the destination has no views
    exit_code: int = 0
    error: Optional[str] = None
    info: Optional[LoadInfo] = None

    def warnings(self) -> List[str]:
        """Lines for stderr: what this run could not load and will try again."""
        lines = [problem.line() for problem in self.unreadable_files]
        if self.models_skipped:
            lines.append(f"models skipped: {self.models_skipped}")
        return lines

    def lines(self) -> List[str]:
        lines = []
        if self.recovered_packages:
            lines.append(
                f"  finished {self.recovered_packages} load package(s) left by an interrupted run"
            )
        if self.lowest_concurrency and self.workers and self.lowest_concurrency < self.workers:
            lines.append(
                f"  rate limited: concurrency lowered from {self.workers}"
                f" to {self.lowest_concurrency}"
            )
        written = ", ".join(f"{table} {count:,}" for table, count in self.rows.items())
        retries = (
            f" ({self.retries} retried, {self.rate_limited} rate-limited)" if self.retries else ""
        )
        lines += [
            f"Loaded into {self.destination}, dataset {self.dataset}",
            f"  jobs seen: {self.jobs_seen}   rows written: {written}",
            f"  requests: {self.requests}{retries}   elapsed: {self.elapsed:.2f} s",
            f"  pipeline {self.pipeline_name} in {self.pipelines_dir}"
            + (
                f"   jobs still open: {self.open_jobs}, settled: {self.settled_jobs}"
                if self.open_jobs is not None
                else ""
            ),
        ]
        if self.missing_files:
            lines.append(
                f"  files deleted or expired (404, not requested again): {len(self.missing_files)}"
            )
        if self.skipped.get("step_metrics"):
            lines.append(
                "  metrics events whose data is not a step's metrics (kept in events, not in"
                f" step_metrics): {self.skipped['step_metrics']}"
            )
        if self.invalid_training_lines:
            lines.append(
                "  training lines that are not JSON (kept in training_examples, valid_json"
                f" false): {self.invalid_training_lines:,}"
            )
        if self.non_utf8_files:
            lines.append(
                "  training files that are not UTF-8 (bad bytes replaced, files.utf8 false):"
                f" {', '.join(self.non_utf8_files)}"
            )
        if self.shutdowns is not None and self.shutdowns.models:
            s = self.shutdowns
            lines.append(
                f"  fine-tuned models that stop serving within {s.within_days} days: {s.models}"
                f" ({s.checkpoints} of them checkpoints), the first on {s.first_date};"
                f" {s.without_training_data} without archived training data"
                " (view model_lifecycle)"
                + (" — dates from an earlier run's models list" if self.models_skipped else "")
            )
        lines += [f"  {line}" for line in self.warnings()]
        return lines

    def to_json(self) -> str:
        """The summary as one JSON object (one line)."""
        data: Dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("info", "rows", "elapsed")
        }
        data["rows_written"] = self.rows  # by table, counted in the destination
        data["elapsed_s"] = round(self.elapsed, 3)
        data["unreadable_files"] = [asdict(problem) for problem in self.unreadable_files]
        data["shutdowns"] = asdict(self.shutdowns) if self.shutdowns else None
        return json.dumps(data, sort_keys=True)
