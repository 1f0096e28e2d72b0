"""`openai-ft report`: one self-contained HTML file (inline CSS and SVG, no script, nothing
fetched) with the job summary, training curves per job and a comparison across jobs."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import dlt

from pipelines.report_charts import comparison_chart, job_chart
from pipelines.report_data import SUMMARY_COLUMNS, JobCurves, ReportData, read_report_data

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 15px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { max-height: 420px; overflow: auto; border: 1px solid #ddd; }
.facts { font-size: 12px; color: #555; }
svg { max-width: 100%; height: auto; }
"""
NUMERIC = {"duration_s", "trained_tokens", "steps", "checkpoints"}


@dataclass
class ReportResult:
    """What was written: where, how large, how many jobs and charts."""

    path: Path
    bytes: int
    jobs: int
    charts: int


def _cell(name: str, value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:.4f}"
    elif isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    else:
        text = str(value)
    numeric = isinstance(value, float) or name in NUMERIC
    return f"<td{' class=num' if numeric else ''}>{html.escape(text)}</td>"


def _summary_table(jobs: List[Dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in SUMMARY_COLUMNS)
    body = "\n".join(
        "<tr>" + "".join(_cell(name, job.get(name)) for name in SUMMARY_COLUMNS) + "</tr>"
        for job in jobs
    )
    return (
        f'<div class="scroll"><table class="job-summary"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


def _job_section(job: JobCurves) -> str:
    s = job.summary
    best = (
        f"best checkpoint {html.escape(str(s.get('best_checkpoint_model')))}"
        f" ({html.escape(str(s.get('best_metric')))} {s['best_value']:.4f})"
        if s.get("best_value") is not None
        else "no checkpoint with metrics"
    )
    facts = (
        f"{html.escape(str(s.get('status')))} · {s.get('steps') or 0} steps ·"
        f" {s.get('checkpoints') or 0} checkpoints · {best}"
    )
    chart = job_chart(job) if job.has_steps else "<p>No training steps recorded.</p>"
    return (
        f'<section class="job" id="{html.escape(job.id)}"><h2>{html.escape(job.id)}</h2>'
        f'<p class="facts">{facts}</p>\n{chart}\n</section>'
    )


def render_html(data: ReportData, title: str) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(_job_section(job) for job in data.charted)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="facts">{len(data.jobs)} jobs · generated {generated} · curves of the
{len(data.charted)} most recent jobs with steps (and any asked for with --job)</p>
<h2>Jobs</h2>
{_summary_table(data.jobs)}
<h2>Final validation loss across jobs</h2>
{comparison_chart(data.jobs, data.hyperparameters)}
{sections}
</body></html>
"""


def write_report(
    pipeline: dlt.Pipeline,
    out: str,
    job_ids: Sequence[str] = (),
    since: Optional[date] = None,
    charts: int = 20,
    title: Optional[str] = None,
) -> ReportResult:
    """Reads the views and writes the report to `out`."""
    data = read_report_data(pipeline, job_ids, since, charts)
    text = render_html(data, title or f"Fine-tuning report · {pipeline.dataset_name}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return ReportResult(
        path=path.resolve(),
        bytes=len(text.encode()),
        jobs=len(data.jobs),
        charts=sum(job.has_steps for job in data.charted),
    )
