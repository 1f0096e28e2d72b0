"""The report's charts, drawn with matplotlib and returned as inline SVG (text kept as text,
so the file stays small and renders offline with the browser's own fonts)."""

from __future__ import annotations

import io
from typing import Any, Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pipelines.report_data import JobCurves  # noqa: E402

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


def _plot(axes: Any, job: JobCurves, series: Sequence[Tuple[str, str, str]]) -> bool:
    """Draws (column, label, color) series; True when one had a value."""
    drawn = False
    for column, label, color in series:
        xs, ys = _thin(job.curves["step"], job.curves.get(column, []))
        if xs:
            marker = "o" if column.startswith("full_valid") else None
            axes.plot(xs, ys, label=label, color=color, linewidth=1.2, marker=marker, markersize=3)
            drawn = True
    return drawn


def _mark_checkpoints(axes: Any, job: JobCurves) -> None:
    best = job.summary.get("best_checkpoint_id")
    for checkpoint in job.checkpoints:
        is_best = checkpoint["id"] == best
        axes.axvline(
            checkpoint["step_number"],
            color=COLORS["best"] if is_best else "#999999",
            linestyle="-" if is_best else ":",
            linewidth=1.6 if is_best else 0.8,
            label="best checkpoint" if is_best else None,
        )


def job_chart(job: JobCurves) -> str:
    """Loss (or reward) and token accuracy over steps, checkpoints marked, best highlighted."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    summary = job.summary
    reinforcement = summary.get("method") == "reinforcement"
    if reinforcement:
        _plot(
            left,
            job,
            [
                ("train_reward_mean", "train reward", COLORS["train"]),
                ("valid_reward_mean", "valid reward", COLORS["valid"]),
            ],
        )
        left.set_ylabel("reward mean")
    _plot(
        right if reinforcement else left,
        job,
        [
            ("train_loss", "train loss", COLORS["train"]),
            ("valid_loss", "valid loss", COLORS["valid"]),
            ("full_valid_loss", "full valid loss", COLORS["full_valid"]),
        ],
    )
    (right if reinforcement else left).set_ylabel("loss")
    if not reinforcement:
        _plot(
            right,
            job,
            [
                ("train_mean_token_accuracy", "train accuracy", COLORS["train"]),
                ("valid_mean_token_accuracy", "valid accuracy", COLORS["valid"]),
                ("full_valid_mean_token_accuracy", "full valid accuracy", COLORS["full_valid"]),
            ],
        )
        right.set_ylabel("token accuracy")
    for axes in (left, right):
        _mark_checkpoints(axes, job)
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(6, integer=True))  # fewer ticks draw faster
        axes.yaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))
        if axes.lines:
            axes.legend(loc="best", fontsize=7, frameon=False)
    figure.suptitle(f"{job.id} · {summary.get('model')} · {summary.get('method')}", fontsize=9)
    figure.subplots_adjust(left=0.07, right=0.99, bottom=0.15, top=0.88, wspace=0.25)
    return _svg(figure, "job-chart", f"training curves of {job.id}")


def _scatter(axes: Any, points: List[Tuple[Any, float]], title: str, categorical: bool) -> None:
    if not points:
        axes.text(0.5, 0.5, "no finished job with a validation loss", ha="center", va="center")
        axes.set_axis_off()
        return
    if categorical:
        names = sorted({str(p[0]) for p in points})
        positions = {name: i for i, name in enumerate(names)}
        axes.scatter([positions[str(x)] for x, _ in points], [y for _, y in points], s=14)
        axes.set_xticks(range(len(names)), [n.replace("-20", "\n20", 1) for n in names])
    else:
        axes.scatter([x for x, _ in points], [y for _, y in points], s=14)
    axes.set_title(title, fontsize=9)
    axes.set_ylabel("final valid loss")


def comparison_chart(jobs: List[Dict[str, Any]], hyper: Dict[str, Dict[str, Any]]) -> str:
    """Final validation loss across jobs: by base model, learning-rate multiplier, epochs."""
    with_loss = [j for j in jobs if j.get("final_valid_loss") is not None]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
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
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.2, top=0.9, wspace=0.3)
    return _svg(figure, "summary-chart", "final validation loss across jobs")
