"""The report's charts, drawn with matplotlib and returned as inline SVG (text kept as text,
so the file stays small and renders offline with the browser's own fonts)."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any, Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pipelines.analysis.report_data import JobCurves  # noqa: E402

MAX_POINTS = 400  # per series: a 5,000-step curve drawn from every 13th step looks the same
COLORS = {"train": "#1f77b4", "valid": "#ff7f0e", "full_valid": "#2ca02c", "best": "#d62728"}
plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 96,
    }
)


def _svg(figure: Figure, css_class: str, label: str) -> str:
    # fixed margins (set by each chart), not bbox_inches="tight": that draws every figure
    # twice, and drawing is what a report spends its time on (~0.35 s -> ~0.15 s a chart)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: inline in HTML
    return svg.replace("<svg ", f'<svg class="{css_class}" role="img" aria-label="{label}" ', 1)


def _thin(steps: Sequence[int], values: Sequence[Optional[float]]) -> Tuple[list, list]:
    """The points that have a value, at most MAX_POINTS of them (the last one always kept)."""
    points = [(s, v) for s, v in zip(steps, values, strict=True) if v is not None]
    if len(points) > MAX_POINTS:
        stride = -(-len(points) // MAX_POINTS)
        points = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    return [p[0] for p in points], [p[1] for p in points]


Series = Sequence[Tuple[str, str, str]]  # (training_curves column, label, color)
LOSS: Series = (
    ("train_loss", "train loss", COLORS["train"]),
    ("valid_loss", "valid loss", COLORS["valid"]),
    ("full_valid_loss", "full valid loss", COLORS["full_valid"]),
)
ACCURACY: Series = (
    ("train_mean_token_accuracy", "train accuracy", COLORS["train"]),
    ("valid_mean_token_accuracy", "valid accuracy", COLORS["valid"]),
    ("full_valid_mean_token_accuracy", "full valid accuracy", COLORS["full_valid"]),
)
REWARD: Series = (
    ("train_reward_mean", "train reward", COLORS["train"]),
    ("valid_reward_mean", "valid reward", COLORS["valid"]),
)
PANEL_WIDTH = 5.0  # inches; a job chart is one panel per metric that has values


def _plot(axes: Any, job: JobCurves, series: Series) -> None:
    """Draws the series that have values; each line's gid names it as a curve."""
    for column, label, color in series:
        if column not in job.curves:  # as job_panels reads it: a column not read has no value
            continue
        xs, ys = _thin(job.curves["step"], job.curves[column])
        if xs:
            marker = "o" if column.startswith("full_valid") else None
            axes.plot(
                xs,
                ys,
                label=label,
                color=color,
                linewidth=1.2,
                marker=marker,
                markersize=3,
                gid=f"curve-{column}",
            )


def _mark_checkpoints(axes: Any, job: JobCurves) -> None:
    """One vertical line per checkpoint: dotted, the best one solid red, drawn last (on top);
    one legend entry each for "checkpoint" and "best checkpoint"."""
    best = job.summary.get("best_checkpoint_id")
    labelled = False
    for checkpoint in sorted(job.checkpoints, key=lambda c: c["id"] == best):
        is_best = checkpoint["id"] == best
        label = None
        if is_best:
            label = "best checkpoint"
        elif not labelled:
            label, labelled = "checkpoint", True
        axes.axvline(
            checkpoint["step_number"],
            color=COLORS["best"] if is_best else "#999999",
            linestyle="-" if is_best else ":",
            linewidth=1.6 if is_best else 0.8,
            label=label,
            gid=f"{'best-' if is_best else ''}checkpoint-{checkpoint['id']}",
        )


def job_panels(job: JobCurves) -> Tuple[List[Tuple[str, Series]], List[str]]:
    """(the panels to draw as (y label, series), the names of those left out): a panel whose
    metric no step recorded is not drawn, not even as empty axes."""
    if job.summary.get("method") == "reinforcement":
        wanted = [("reward mean", "reward", REWARD), ("loss", "loss", LOSS)]
    else:
        wanted = [("loss", "loss", LOSS), ("token accuracy", "token accuracy", ACCURACY)]
    panels, missing = [], []
    for ylabel, name, series in wanted:
        recorded = any(
            value is not None for column, _, _ in series for value in job.curves.get(column, [])
        )
        if recorded:
            panels.append((ylabel, series))
        else:
            missing.append(name)
    return panels, missing


def job_chart(job: JobCurves) -> str:
    """HTML: loss (or reward) and token accuracy over steps, checkpoints marked, best
    highlighted, one panel per metric recorded; a note names the metrics none of its steps
    recorded."""
    panels, missing = job_panels(job)
    note = f'<p class="note">No {" or ".join(missing)} recorded at any step.</p>' if missing else ""
    if not panels:
        return note
    width = PANEL_WIDTH * len(panels)
    figure, grid = plt.subplots(1, len(panels), figsize=(width, 3.2), squeeze=False)
    summary = job.summary
    for axes, (ylabel, series) in zip(grid[0], panels, strict=True):
        _plot(axes, job, series)
        axes.set_ylabel(ylabel)
        _mark_checkpoints(axes, job)
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(6, integer=True))  # fewer ticks draw faster
        axes.yaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))
        axes.legend(loc="best", fontsize=7, frameon=False)
    figure.suptitle(f"{job.id} · {summary.get('model')} · {summary.get('method')}", fontsize=9)
    # margins in inches, whatever the number of panels; the right one leaves room for the
    # last step's tick label ("1250")
    figure.subplots_adjust(
        left=0.7 / width, right=1 - 0.25 / width, bottom=0.15, top=0.88, wspace=0.3
    )
    return _svg(figure, "job-chart", f"training curves of {job.id}") + note


TICK_LINE_CHARS = 20


def _tick_label(name: str) -> str:
    """A model's name for a tick: the snapshot date on a line of its own, a fine-tuned model
    (`ft:BASE:org:suffix:id`, continued fine-tuning) as `ft:BASE…`, and each line at most
    `TICK_LINE_CHARS` characters (`…` where cut)."""
    if name.startswith("ft:") and name.count(":") > 1:
        name = "ft:" + name.split(":")[1] + "…"
    lines = name.replace("-20", "\n20", 1).split("\n")
    return "\n".join(
        line if len(line) <= TICK_LINE_CHARS else line[: TICK_LINE_CHARS - 1] + "…"
        for line in lines
    )


def _scatter(axes: Any, points: List[Tuple[Any, float]], title: str, categorical: bool) -> None:
    if not points:
        axes.text(0.5, 0.5, "no finished job with a validation loss", ha="center", va="center")
        axes.set_axis_off()
        return
    if categorical:
        names = sorted({str(p[0]) for p in points})
        positions = {name: i for i, name in enumerate(names)}
        axes.scatter([positions[str(x)] for x, _ in points], [y for _, y in points], s=14)
        axes.set_xticks(range(len(names)), [_tick_label(n) for n in names])
        # slanted, right end under the tick: long names (a fine-tuned base model's) do not
        # run into their neighbours
        axes.tick_params(axis="x", labelrotation=25, labelsize=8)
        for label in axes.get_xticklabels():
            label.set_horizontalalignment("right")
    else:
        xs = [x for x, _ in points]
        axes.scatter(xs, [y for _, y in points], s=14)
        if all(float(x).is_integer() for x in xs):  # epochs: no tick at 2.5
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, fontsize=9)
    axes.set_ylabel("final valid loss")


def comparison_chart(jobs: List[Dict[str, Any]], hyper: Dict[str, Dict[str, Any]]) -> str:
    """Final validation loss across jobs: by base model, learning-rate multiplier, epochs."""
    with_loss = [j for j in jobs if j.get("final_valid_loss") is not None]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.9))
    _scatter(
        axes[0], [(j["model"], j["final_valid_loss"]) for j in with_loss], "by base model", True
    )
    for index, (key, title) in enumerate(
        (("learning_rate_multiplier", "by learning-rate multiplier"), ("n_epochs", "by epochs")),
        start=1,
    ):
        points = [
            (hyper[j["id"]][key], j["final_valid_loss"])
            for j in with_loss
            if hyper.get(j["id"], {}).get(key) is not None
        ]
        _scatter(axes[index], points, title, False)
    figure.subplots_adjust(left=0.08, right=0.99, bottom=0.3, top=0.92, wspace=0.3)
    return _svg(figure, "summary-chart", "final validation loss across jobs")


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TIMELINE_WIDTH = 1000  # px, the SVG's own width (it shrinks to the page, never grows)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def shutdown_timeline(today: date, dates: Sequence[Tuple[date, int, int]], horizon: int) -> str:
    """Inline SVG, no matplotlib: a time axis from `today` to the last date (at least
    `horizon` days), the first `horizon` days shaded, one marker per shutdown date labelled
    with the date and its number of models; red where some of them lack archived training
    data. `dates` is (date, models, of them without archived training data), soonest first."""
    if not dates:
        return ""
    left, right, axis_y = 20, TIMELINE_WIDTH - 20, 96
    span = max((dates[-1][0] - today).days, horizon) * 1.06 or 1

    def x(day: date) -> float:
        return left + (right - left) * (day - today).days / span

    parts = [
        f'<rect x="{left}" y="{axis_y - 8}" width="{x(today + timedelta(horizon)) - left:.1f}"'
        ' height="16" fill="#fdf0d5" stroke="none"/>',
        f'<text x="{x(today + timedelta(horizon)) - 4:.1f}" y="{axis_y + 30}"'
        f' text-anchor="end" class="muted">next {horizon} days</text>',
        f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="#444"/>',
        f'<line x1="{left}" y1="{axis_y - 10}" x2="{left}" y2="{axis_y + 10}" stroke="#444"'
        ' stroke-width="2"/>',
        f'<text x="{left}" y="{axis_y + 30}" class="muted">today {today.isoformat()}</text>',
    ]
    month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    end = today + timedelta(span)
    while month <= end:  # a tick on the 1st of each month
        mx = x(month)
        parts.append(
            f'<line x1="{mx:.1f}" y1="{axis_y}" x2="{mx:.1f}" y2="{axis_y + 5}" stroke="#444"/>'
            f'<text x="{mx:.1f}" y="{axis_y + 17}" text-anchor="middle" class="tick">'
            f"{MONTHS[month.month - 1]} {month.year}</text>"
        )
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    previous_x, level = -1e9, 1
    for day, models, unarchived in dates:
        dx = x(day)
        level = 1 - level if dx - previous_x < 150 else 0  # close dates: labels alternate
        previous_x = dx
        top = 16 + level * 34
        anchor = "end" if dx > right - 70 else "start" if dx < left + 70 else "middle"
        color = "#c0392b" if unarchived else "#1f4e79"
        note = f" · {unarchived:,} not archived" if unarchived else ""
        parts.append(
            f'<g class="timeline-date" data-date="{day.isoformat()}">'
            f'<line x1="{dx:.1f}" y1="{top + 18}" x2="{dx:.1f}" y2="{axis_y}" stroke="{color}"'
            ' stroke-dasharray="2 2"/>'
            f'<circle cx="{dx:.1f}" cy="{axis_y}" r="6" fill="{color}"/>'
            f'<text x="{dx:.1f}" y="{top}" text-anchor="{anchor}" class="day"'
            f' fill="{color}">{day.isoformat()}</text>'
            f'<text x="{dx:.1f}" y="{top + 14}" text-anchor="{anchor}" class="count"'
            f' fill="{color}">{_plural(models, "model")}{note}</text></g>'
        )
    label = ", ".join(f"{day.isoformat()}: {_plural(n, 'model')}" for day, n, _ in dates)
    return (
        f'<svg class="shutdown-timeline" role="img" aria-label="shutdown dates: {label}"'
        f' xmlns="http://www.w3.org/2000/svg" width="{TIMELINE_WIDTH}" height="{axis_y + 40}"'
        f' viewBox="0 0 {TIMELINE_WIDTH} {axis_y + 40}">' + "".join(parts) + "</svg>"
    )
