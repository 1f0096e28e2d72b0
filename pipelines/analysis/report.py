"""`openai-ft report`: one self-contained HTML file (inline CSS and SVG, no script, nothing
fetched) with the job summary, training curves per job and a comparison across jobs."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import dlt

from pipelines.analysis.report_charts import comparison_chart, job_chart
from pipelines.analysis.report_data import JobCurves, ReportData, read_report_data
from pipelines.analysis.report_shutdowns import breakable, shutdowns_section
from pipelines.errors import duckdb_locked

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 15px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 11px; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 5px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
td.id { word-break: break-all; }
table.job-summary th:first-child { width: 18%; }
td .sub { color: #666; }
td .day { white-space: nowrap; }
.scroll { max-height: 70vh; overflow-x: hidden; overflow-y: auto; border: 1px solid #ddd; }
.facts, .note { font-size: 12px; color: #555; }
svg { max-width: 100%; height: auto; }
.lead { font-size: 14px; margin: 8px 0; }
.lead.alert { border-left: 4px solid #c0392b; padding: 6px 10px; background: #fdecea; }
.lead code, .note code { font-size: 12px; }
.shutdown-date { margin: 14px 0 18px; padding-left: 10px; border-left: 4px solid #9db3c9; }
.shutdown-date.soon { border-left-color: #e0a030; }
.shutdown-date.passed { border-left-color: #bbb; }
.shutdown-date h3 { font-size: 14px; margin: 0 0 2px; }
.shutdown-date h3 .left { font-weight: normal; color: #555; }
.shutdown-date .facts { margin: 0 0 4px; }
h3.passed { font-size: 14px; margin: 22px 0 2px; color: #555; }
table.shutdown-models { table-layout: fixed; }
table.shutdown-models col.model { width: 38%; } table.shutdown-models col.kind { width: 13%; }
table.shutdown-models col.job { width: 22%; } table.shutdown-models col.base { width: 17%; }
table.shutdown-models col.archived { width: 10%; }
.count { font-size: 13px; margin: 3px 0; }
table.shutdown-models th { position: static; }
table.shutdown-models td.model { word-break: break-word; }
tr.unarchived td { background: #fdecea; }
td.archived { white-space: nowrap; }
tr.unarchived td.archived { color: #b0281a; font-weight: 700; }
tr.unarchived td, .lead.alert, svg.shutdown-timeline {
  -webkit-print-color-adjust: exact; print-color-adjust: exact; }
svg.shutdown-timeline text { font-family: inherit; font-size: 12px; }
svg.shutdown-timeline text.day { font-weight: 600; font-size: 13px; }
svg.shutdown-timeline text.muted, svg.shutdown-timeline text.tick { fill: #666; font-size: 11px; }
@page { size: landscape; margin: 10mm; }
@media print {
  body { margin: 0; }
  table { font-size: 9px; }
  .scroll { max-height: none; overflow: visible; border: 0; }
  th { position: static; }
  thead { display: table-header-group; }
  tr, section.job, svg, .shutdown-date { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
"""
# The jobs table: (header, job_summary column, numeric). Merged and short enough to fit the
# page width, print included: finished_at is created_at + duration_s, the best checkpoint's
# cell adds its metric and value, and has its id as tooltip (its model name is what one
# deploys).
COLUMNS = (
    ("job", "id", False),
    ("base model", "model", False),
    ("method", "method", False),
    ("status", "status", False),
    ("created (UTC)", "created_at", False),
    ("duration", "duration_s", True),
    ("trained tokens", "trained_tokens", True),
    ("steps", "steps", True),
    ("check&shy;points", "checkpoints", True),
    ("final train loss", "final_train_loss", True),
    ("final valid loss", "final_valid_loss", True),
    ("fine-tuned model", "fine_tuned_model", False),
    ("best checkpoint", "best_checkpoint_model", False),
)


@dataclass
class ReportResult:
    """What was written: where, how large, how many jobs and charts."""

    path: Path
    bytes: int
    jobs: int
    charts: int


def _duration(seconds: Any) -> str:
    """`h:mm:ss`: a 2-hour job reads as such, not as 7386."""
    total = int(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "duration_s":
        return _duration(value)
    if isinstance(value, datetime):  # may wrap before the time, not inside the date
        return value.astimezone(UTC).strftime('<span class="day">%Y-%m-%d</span> %H:%M')
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return breakable(str(value))


def _cell(job: Dict[str, Any], name: str, numeric: bool) -> str:
    text = _text(name, job.get(name))
    if name == "best_checkpoint_model":
        value = job.get("best_value")
        if value is not None:
            metric = html.escape(str(job.get("best_metric")))
            text += f'<br><span class="sub">{metric} {value:.4f}</span>'
        tip = html.escape(str(job.get("best_checkpoint_id") or ""), quote=True)
        return f'<td title="{tip}">{text}</td>'
    # a job id has no separator to break at: it may break anywhere, rather than widen the table
    css = " class=num" if numeric else " class=id" if name == "id" else ""
    return f"<td{css}>{text}</td>"


def _summary_table(jobs: List[Dict[str, Any]]) -> str:
    head = "".join(
        f"<th{' class=num' if numeric else ''}>{label}</th>" for label, _, numeric in COLUMNS
    )
    body = "\n".join(
        "<tr>" + "".join(_cell(job, name, numeric) for _, name, numeric in COLUMNS) + "</tr>"
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
{shutdowns_section(data.lifecycle, {job.id for job in data.charted})}
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
    """Reads the views and writes the report to `out`.

    Raises:
        ConfigurationError: A `--job` that is not in the dataset (exit 2).
        DuckDBLockedError: Another process took the DuckDB file (exit 5, with its PID).
    """
    try:
        data = read_report_data(pipeline, job_ids, since, charts)
    except Exception as error:
        # another process took the file after `existing_pipeline` opened it: say who, not
        # dlt's bare IOException
        locked = duckdb_locked(error)
        if locked is not None:
            raise locked from None
        raise
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
