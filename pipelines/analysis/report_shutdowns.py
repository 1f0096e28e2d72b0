"""The report's "Model shutdowns" section: which fine-tuned models stop serving when (from
the `model_lifecycle` view), grouped by date, with their jobs and whether their training data
is archived; a lead line and a timeline on top."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from itertools import groupby
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from pipelines.analysis.report_charts import shutdown_timeline
from pipelines.analysis.views import SHUTDOWN_HORIZON_DAYS


def breakable(text: str) -> str:
    """Escaped, with line-break chances after the colons and underscores of model names and
    statuses (`ft:gpt-4o-2024-08-06:org::id`, `validating_files`; browsers break after a
    hyphen already), so a cell wraps there rather than widening the table."""
    return re.sub(r"([:_])(?=.)", r"\1<wbr>", html.escape(text))


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
        lines.append(breakable(row["model"]) + own)
    if len(points) == 1 and not tuned:
        lines.append(breakable(points[0]))
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
        base = breakable(str(first["base_model"] or ""))
        if first["root_model"] and first["root_model"] != first["base_model"]:
            base += f'<br><span class="sub">root {breakable(str(first["root_model"]))}</span>'
        job = breakable(job_id)
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
