"""`openai-ft report`: one self-contained HTML file (inline CSS and SVG, no script, nothing
fetched) with the job summary, training curves per job and a comparison across jobs."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import dlt

from pipelines.analysis.report_charts import comparison_chart, job_chart, shutdown_timeline
from pipelines.analysis.report_data import JobCurves, ReportData, read_report_data
from pipelines.analysis.views import SHUTDOWN_HORIZON_DAYS
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


def _breakable(text: str) -> str:
    """Escaped, with line-break chances after the colons and underscores of model names and
    statuses (`ft:gpt-4o-2024-08-06:org::id`, `validating_files`; browsers break after a
    hyphen already), so a cell wraps there rather than widening the table."""
    return re.sub(r"([:_])(?=.)", r"\1<wbr>", html.escape(text))


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
    return _breakable(str(value))


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


Row = Dict[str, Any]  # one model_lifecycle row


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _kinds(rows: Sequence[Row]) -> str:
    """`1 fine-tuned model and 13 checkpoint models`."""
    checkpoints = sum(row["kind"] == "checkpoint" for row in rows)
    parts = [
        _plural(count, f"{kind} model")
        for kind, count in (("fine-tuned", len(rows) - checkpoints), ("checkpoint", checkpoints))
        if count
    ]
    return " and ".join(parts)


def _days(days: int) -> str:
    if days == 0:
        return "today"
    if days > 0:
        return f"in {_plural(days, 'day')}"
    return f"{_plural(-days, 'day')} ago"


def _steps(models: Sequence[str]) -> str:
    """`steps 10, 20, 30`: the checkpoints' steps from their names (`...:ckpt-step-30`), at
    most 10 of them shown."""
    steps = sorted(
        int(found.group(1))
        for model in models
        if (found := re.search(r":ckpt-step-(\d+)$", model)) is not None
    )
    if not steps:
        return ""
    shown = [f"{step:,}" for step in steps]
    if len(shown) > 10:
        shown = [*shown[:6], "…", *shown[-3:]]
    return ("step " if len(steps) == 1 else "steps ") + ", ".join(shown)


def _model_cells(models: Sequence[Row]) -> Tuple[str, str]:
    """(model cell, kind cell) of one job's models: its fine-tuned model by name, its
    checkpoint models counted with their steps (named when there is just one)."""
    tuned = [row for row in models if row["kind"] != "checkpoint"]
    points = [row["model"] for row in models if row["kind"] == "checkpoint"]
    lines = []
    for row in tuned:
        own = (
            '<br><span class="sub">own shutdown date</span>' if row["date_from"] == "model" else ""
        )
        lines.append(_breakable(row["model"]) + own)
    if len(points) == 1 and not tuned:
        lines.append(_breakable(points[0]))
    elif points:
        counted = _plural(len(points), "checkpoint model")
        steps = html.escape(_steps(points))
        lines.append(
            f'<span class="sub">+ {counted} · {steps}</span>'
            if tuned
            else f'{counted}<br><span class="sub">{steps}</span>'
        )
    kinds = [
        *(["fine-tuned"] if tuned else []),
        *([_plural(len(points), "checkpoint")] * bool(points)),
    ]
    return "<br>".join(lines), " + ".join(kinds)


def _model_rows(rows: Sequence[Row], charted: Set[str]) -> str:
    """One table row per job: its fine-tuned model and its checkpoint models (all named in
    the cell's tooltip); jobs without archived training data first, and highlighted."""
    by_job: Dict[str, List[Row]] = {}
    for row in rows:
        by_job.setdefault(str(row["fine_tuning_job_id"]), []).append(row)
    lines = []
    for job_id, models in sorted(
        by_job.items(), key=lambda item: (item[1][0]["training_data_archived"], item[0])
    ):
        first = models[0]
        archived = first["training_data_archived"]  # the job's: the same for all its models
        model, kind = _model_cells(models)
        base = _breakable(str(first["base_model"] or ""))
        if first["root_model"] and first["root_model"] != first["base_model"]:
            base += f'<br><span class="sub">root {_breakable(str(first["root_model"]))}</span>'
        job = _breakable(job_id)
        if job_id in charted:
            job = f'<a href="#{html.escape(job_id, quote=True)}">{job}</a>'
        css = "" if archived else ' class="unarchived"'
        tip = html.escape("\n".join(row["model"] for row in models), quote=True)
        lines.append(
            f'<tr{css} data-job="{html.escape(job_id, quote=True)}">'
            f'<td class="model" title="{tip}">{model}</td><td>{kind}</td>'
            f'<td class="id">{job}</td><td>{base}</td>'
            f'<td class="archived">{"yes" if archived else "no"}</td></tr>'
        )
    return (
        '<table class="shutdown-models"><colgroup><col class="model"><col class="kind">'
        '<col class="job"><col class="base"><col class="archived"></colgroup>'
        "<thead><tr><th>model</th><th>kind</th><th>job</th><th>base model</th>"
        "<th>training data archived</th></tr></thead><tbody>\n"
        + "\n".join(lines)
        + "\n</tbody></table>"
    )


def _date_block(day: date, rows: Sequence[Row], charted: Set[str]) -> str:
    days = rows[0]["days_left"]
    passed = days < 0
    css = "passed" if passed else "soon" if days <= SHUTDOWN_HORIZON_DAYS else "later"
    jobs = len({row["fine_tuning_job_id"] for row in rows})
    missing = sum(not row["training_data_archived"] for row in rows)
    data = (
        f"<strong>{missing:,} without archived training data</strong>"
        if missing
        else "all with archived training data"
    )
    verb = "stopped" if passed else "stops" if len(rows) == 1 else "stop"
    return (
        f'<div class="shutdown-date {css}" data-date="{day.isoformat()}">'
        f'<h3>{day.isoformat()} <span class="left">· {_days(days)}</span></h3>'
        f'<p class="facts">{_kinds(rows)} of {_plural(jobs, "job")} {verb} serving · {data}</p>'
        f"\n{_model_rows(rows, charted)}</div>"
    )


def _by_date(rows: Sequence[Row]) -> List[Tuple[date, List[Row]]]:
    ordered = sorted(rows, key=lambda row: row["shutdown_date"])
    return [(day, list(group)) for day, group in groupby(ordered, key=lambda r: r["shutdown_date"])]


def _lead(retiring: Sequence[Row]) -> str:
    """The one line to act on: what stops within the horizon, and what lacks its data."""
    soon = [row for row in retiring if row["days_left"] <= SHUTDOWN_HORIZON_DAYS]
    if not soon:
        if not retiring:
            return '<p class="lead">No fine-tuned model has a shutdown date ahead.</p>'
        day, rows = _by_date(retiring)[0]
        return (
            f'<p class="lead">No fine-tuned model stops serving within {SHUTDOWN_HORIZON_DAYS}'
            f" days; the next date is {day.isoformat()} ({_days(rows[0]['days_left'])},"
            f" {_plural(len(rows), 'model')}).</p>"
        )
    first = min(row["shutdown_date"] for row in soon)
    first_days = min(row["days_left"] for row in soon)
    checkpoints = sum(row["kind"] == "checkpoint" for row in soon)
    missing = sum(not row["training_data_archived"] for row in soon)
    stop = "stops" if len(soon) == 1 else "stop"
    text = (
        f"<strong>{_plural(len(soon), 'fine-tuned model')} {stop} serving within"
        f" {SHUTDOWN_HORIZON_DAYS} days</strong> ({checkpoints:,} of them checkpoints); the first"
        f" on <strong>{first.isoformat()}</strong> ({_days(first_days)}); "
    )
    if missing:
        text += (
            f"<strong>{missing:,} without archived training data</strong> — run"
            " <code>openai-ft load</code> to archive what OpenAI still has (a file deleted"
            " upstream before a load read it cannot be recovered: <code>training_files</code>"
            " shows it without <code>bytes</code>), then <code>openai-ft export --job ID</code>"
            " to write it out for retraining elsewhere."
        )
    else:
        text += (
            "all with archived training data — <code>openai-ft export --job ID</code> writes it"
            " out for retraining elsewhere."
        )
    return f'<p class="lead{" alert" if missing else ""}">{text}</p>'


def _count_line(label: str, rows: Sequence[Row], css: str) -> str:
    """`Label: 4 fine-tuned models and 43 checkpoint models of 8 jobs; 2 without ...`."""
    if not rows:
        return ""
    jobs = len({row["fine_tuning_job_id"] for row in rows})
    missing = sum(not row["training_data_archived"] for row in rows)
    data = f"; <strong>{missing:,} without archived training data</strong>" if missing else ""
    return f'<p class="count {css}">{label}: {_kinds(rows)} of {_plural(jobs, "job")}{data}.</p>'


def shutdowns_section(lifecycle: Optional[List[Row]], charted: Set[str]) -> str:
    """The calendar of shutdown dates: a line to act on, a timeline, one block per date ahead
    (soonest first) and the dates passed apart, each with its models; the models without a
    date and those not listed counted in a line each."""
    head = '<section class="shutdowns" id="shutdowns"><h2>Model shutdowns</h2>'
    if lifecycle is None:
        return (
            f'{head}<p class="lead">This dataset has no <code>model_lifecycle</code> view (it'
            " was loaded before the view existed): run <code>openai-ft load</code> once to"
            " create it.</p></section>"
        )
    if not lifecycle:
        return (
            f'{head}<p class="lead">The archive holds no fine-tuned model: no job has produced a'
            " model or a checkpoint yet.</p></section>"
        )
    states: Dict[str, List[Row]] = {}
    for row in lifecycle:
        states.setdefault(row["state"], []).append(row)
    if len(states.get("unknown", ())) == len(lifecycle):
        return (
            f'{head}<p class="lead">The models list could not be read (the key may lack the'
            " <code>api.model.read</code> scope), so no shutdown date is known for the"
            f" {_plural(len(lifecycle), 'fine-tuned model')} in the archive; load again with a key"
            " that may list models.</p></section>"
        )
    retiring = states.get("retiring", [])
    dated = [row for row in lifecycle if row["shutdown_date"] is not None]
    known = next((row for row in dated if row["days_left"] is not None), None)
    today = known["shutdown_date"] - timedelta(days=known["days_left"]) if known else date.today()
    ahead = _by_date(retiring)
    timeline = shutdown_timeline(
        today,
        [
            (day, len(rows), sum(not row["training_data_archived"] for row in rows))
            for day, rows in ahead
        ],
        SHUTDOWN_HORIZON_DAYS,
    )
    blocks = "\n".join(_date_block(day, rows, charted) for day, rows in ahead)
    passed = _by_date(states.get("shut down", []))
    if passed:
        blocks += (
            '\n<h3 class="passed">Already shut down</h3><p class="note">These no longer serve;'
            " archived training data still lets them be retrained elsewhere.</p>\n"
            + "\n".join(_date_block(day, rows, charted) for day, rows in reversed(passed))
        )
    counts = "".join(
        _count_line(label, states.get(state, []), css)
        for state, label, css in (
            ("serving", "No shutdown date announced (serving)", "serving"),
            (
                "not listed",
                "Not in the models list (deleted, or not visible to this key)",
                "not-listed",
            ),
            ("unknown", "No date known (the models list was not read)", "unknown"),
        )
    )
    return (
        f"{head}{_lead(retiring)}\n{counts}\n{timeline}\n{blocks}"
        '\n<p class="note">Every fine-tuned model the archive knows (whatever'
        " <code>--since</code>), one row per job; the view <code>model_lifecycle</code> has"
        " one row per model.</p></section>"
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
