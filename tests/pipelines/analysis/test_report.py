"""`openai-ft report`: one self-contained HTML file with the job summary and one chart per job
that has steps, checked as HTML and rendered in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from itertools import groupby
from pathlib import Path
from typing import Any, Dict, List, Optional

import duckdb
import pytest

from pipelines.analysis.report import STYLE
from pipelines.analysis.report_charts import comparison_chart, job_chart
from pipelines.analysis.report_data import JobCurves
from pipelines.analysis.report_shutdowns import shutdowns_section
from pipelines.cli import main
from tests.helpers import held_by_another_process, lifecycle_truth, locked_line


class ReportParser(HTMLParser):
    """Counts what a reader sees: summary rows, charts by class, and anything fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: Dict[str, int] = {}
        self.summary_rows = 0
        self.sections: List[str] = []
        self.fetched: List[str] = []
        self.scripts = 0
        self._in_summary = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in (attrs.get("class") or "").split():
            self.classes[name] = self.classes.get(name, 0) + 1
        if tag == "table" and "job-summary" in (attrs.get("class") or ""):
            self._in_summary = True
        if tag == "tr" and self._in_summary:
            self.summary_rows += 1
        if tag == "section" and "job" in (attrs.get("class") or "").split():
            self.sections.append(attrs.get("id"))
        if tag in ("script", "link", "iframe"):
            self.scripts += 1
        for key in ("src", "href", "xlink:href"):
            if re.match(r"^\s*(https?:)?//", attrs.get(key) or ""):
                self.fetched.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_summary = False


def _parse(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _jobs_with_steps(world) -> List[str]:
    """Newest first, as the report orders them."""
    jobs = sorted(world.truth_jobs(), key=lambda j: (j["created_at"], j["id"]), reverse=True)
    return [j["id"] for j in jobs if world.job_steps(j["id"]) > 0]


@pytest.fixture
def loaded_world(loaded_target):
    return loaded_target[1]


@pytest.fixture
def report(loaded_target, capsys):
    target = loaded_target[0]

    def run(*args):
        options = target.load_options()
        code = main(
            [
                "report",
                *("--destination", target.name, "--dataset", target.dataset),
                *("--duckdb-path", options["duckdb_path"]),
                *args,
            ]
        )
        out, err = capsys.readouterr()
        return code, out.strip(), err.strip()

    return run


def test_report_structure(report, loaded_world, tmp_path):
    world = loaded_world
    out = tmp_path / "report.html"
    code, stdout, err = report("--out", str(out), "--charts", "5")
    assert code == 0 and err == ""
    charted = _jobs_with_steps(world)[:5]
    parsed = _parse(out)
    assert parsed.summary_rows == 1 + len(world.job_ids())  # header + every job
    assert parsed.sections == charted
    assert parsed.classes.get("job-chart") == len(charted)
    assert parsed.classes.get("summary-chart") == 1
    assert parsed.scripts == 0 and parsed.fetched == []  # opens offline
    size = out.stat().st_size
    assert stdout == (
        f"Report written to {out} ({len(world.job_ids())} jobs, {len(charted)} charts,"
        f" {size / 1024:,.0f} KB)"
    )


def test_job_and_since_choose_what_is_shown(report, loaded_world, tmp_path):
    world = loaded_world
    with_steps = _jobs_with_steps(world)
    oldest = with_steps[-1]
    out = tmp_path / "r.html"
    assert report("--out", str(out), "--charts", "2", "--job", oldest)[0] == 0
    assert _parse(out).sections == [*with_steps[:2], oldest]

    newest_day = max(j["created_at"] for j in world.truth_jobs())
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(newest_day, tz=UTC).date()
    kept = [
        j
        for j in world.truth_jobs()
        if datetime.fromtimestamp(j["created_at"], UTC).date() >= since
    ]
    assert report("--out", str(out), "--since", since.isoformat())[0] == 0
    assert _parse(out).summary_rows == 1 + len(kept)


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_a_file_held_by_another_process_is_exit_5_naming_its_pid(tmp_path, capsys, read_only):
    path, out = tmp_path / "held.duckdb", tmp_path / "report.html"
    duckdb.connect(str(path)).close()
    with held_by_another_process(path, read_only) as pid:
        code = main(["report", "--duckdb-path", str(path), "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 5 and stdout == "" and not out.exists()
    assert err.splitlines() == [locked_line(path, pid)]


def test_a_file_taken_after_the_check_is_said_the_same(tmp_path):
    """Another process takes the file after `existing_pipeline`'s check (here: a pipeline made
    without it, on a file already held): the report says who holds it, as `load` does, not
    dlt's bare IOException."""
    from pipelines.analysis.report import write_report
    from pipelines.errors import DuckDBLockedError
    from pipelines.run.destinations import make_pipeline

    path = tmp_path / "held.duckdb"
    duckdb.connect(str(path)).close()
    pipeline = make_pipeline(duckdb_path=str(path), pipelines_dir=str(tmp_path / "p"))
    with held_by_another_process(path) as pid:
        with pytest.raises(DuckDBLockedError) as raised:
            write_report(pipeline, str(tmp_path / "r.html"))
    assert f"openai-ft: error: {raised.value}" == locked_line(path, pid).replace(
        f"'{path}'", f"'{os.path.abspath(path)}'"
    )


def test_bad_report_options(report, tmp_path, capsys):
    code, _, err = report("--out", str(tmp_path / "r.html"), "--job", "ftjob-nope")
    assert code == 2
    assert err == (
        "openai-ft: error: Job 'ftjob-nope' is not in the dataset: check --job, or load it first"
    )
    code, _, err = report("--charts", "-1")
    assert code == 2 and err == "openai-ft: error: --charts must be 0 or more, got -1"
    with pytest.raises(SystemExit) as exit_info:
        report("--since", "last week")
    assert exit_info.value.code == 2
    assert "argument --since: not a date (YYYY-MM-DD): 'last week'" in capsys.readouterr().err


SVG = "{http://www.w3.org/2000/svg}"


def _svgs(text: str, css_class: str) -> List[ET.Element]:
    """The inline SVG charts of that class, parsed."""
    return [
        ET.fromstring(svg) for svg in re.findall(rf'<svg class="{css_class}".*?</svg>', text, re.S)
    ]


def _groups(element: ET.Element, prefix: str) -> List[ET.Element]:
    """matplotlib's groups (`axes_1`, `legend_1`, `xtick_3`, `curve-train_loss`) by id."""
    return [g for g in element.iter(f"{SVG}g") if (g.get("id") or "").startswith(prefix)]


def _texts(element: ET.Element) -> List[str]:
    return ["".join(t.itertext()).strip() for t in element.iter(f"{SVG}text")]


def _tick_labels(axes: ET.Element, axis: str) -> List[str]:
    return [label for tick in _groups(axes, f"{axis}tick_") for label in _texts(tick)]


def _assert_no_empty_panel(svg: ET.Element) -> None:
    panels = _groups(svg, "axes_")
    assert panels
    for axes in panels:  # every panel draws a curve, not only checkpoint lines
        assert _groups(axes, "curve-"), _texts(axes)


INTEGER = re.compile(r"^[−-]?\d+$")  # matplotlib writes a minus sign as U+2212


def _job(method: str, curves: Dict[str, list], checkpoints: int = 3) -> JobCurves:
    steps = curves["step"]
    marks = [
        {"id": f"ftckpt_{i}", "step_number": steps[-1] * i // checkpoints}
        for i in range(1, checkpoints + 1)
    ]
    summary = {"id": "ftjob-t", "model": "m", "method": method, "best_checkpoint_id": "ftckpt_1"}
    return JobCurves(summary, curves, marks)


def test_a_metric_no_step_recorded_gets_a_note_not_empty_axes():
    steps = list(range(1, 26))
    reward = [0.2 + i / 50 for i in steps]
    no_loss = _job(
        "reinforcement",
        {
            "step": steps,
            "train_reward_mean": reward,
            "valid_reward_mean": reward,
            "train_loss": [None] * 25,
        },
    )
    chart = job_chart(no_loss)
    (svg,) = _svgs(chart, "job-chart")
    assert len(_groups(svg, "axes_")) == 1  # the reward alone
    _assert_no_empty_panel(svg)
    assert chart.endswith('<p class="note">No loss recorded at any step.</p>')
    (legend,) = _groups(svg, "legend_")
    assert _texts(legend) == ["train reward", "valid reward", "checkpoint", "best checkpoint"]

    both = _job(
        "supervised", {"step": steps, "train_loss": reward, "train_mean_token_accuracy": reward}
    )
    chart = job_chart(both)
    (svg,) = _svgs(chart, "job-chart")
    assert len(_groups(svg, "axes_")) == 2 and "note" not in chart
    _assert_no_empty_panel(svg)
    for legend in _groups(svg, "legend_"):  # the dotted lines are named, once
        assert _texts(legend)[-2:] == ["checkpoint", "best checkpoint"]
    for axes in _groups(svg, "axes_"):  # steps are whole numbers
        assert all(INTEGER.match(label) for label in _tick_labels(axes, "x"))

    nothing = _job("dpo", {"step": steps, "train_loss": [None] * 25})
    assert job_chart(nothing) == (
        '<p class="note">No loss or token accuracy recorded at any step.</p>'
    )


def test_epochs_are_whole_numbers_on_the_comparison_chart():
    jobs = [
        {"id": f"ftjob-{i}", "model": "gpt-4o-2024-08-06", "final_valid_loss": 0.3 + i / 10}
        for i in range(6)
    ]
    hyper = {
        job["id"]: {"learning_rate_multiplier": 0.5 + i / 4, "n_epochs": float(2 + i % 3)}
        for i, job in enumerate(jobs)
    }
    (svg,) = _svgs(comparison_chart(jobs, hyper), "summary-chart")
    _, by_rate, by_epochs = _groups(svg, "axes_")
    assert _tick_labels(by_epochs, "x") == ["2", "3", "4"]
    assert not all(INTEGER.match(label) for label in _tick_labels(by_rate, "x"))


def test_base_model_ticks_are_short_lines_a_fine_tuned_base_cut_after_its_base():
    # a newcomer saw "ft:gpt-4.1-mini-2025-04-14:sandbox::W…" run into its neighbours
    models = ["ft:gpt-4.1-mini-2025-04-14:sandbox::W2x9", "gpt-4.1-mini-2025-04-14", "o4-mini"]
    jobs = [
        {"id": f"ftjob-{i}", "model": model, "final_valid_loss": 0.3}
        for i, model in enumerate(models)
    ]
    (svg,) = _svgs(comparison_chart(jobs, {}), "summary-chart")
    by_model = _groups(svg, "axes_")[0]
    assert _tick_labels(by_model, "x") == [
        "ft:gpt-4.1-mini",
        "2025-04-14…",
        "gpt-4.1-mini",
        "2025-04-14",
        "o4-mini",
    ]


def test_report_charts_of_the_sandbox(report, tmp_path):
    out = tmp_path / "report.html"
    assert report("--out", str(out), "--charts", "50")[0] == 0
    text = out.read_text(encoding="utf-8")
    charts = _svgs(text, "job-chart")
    assert charts
    for svg in charts:
        _assert_no_empty_panel(svg)
        for axes in _groups(svg, "axes_"):
            assert all(INTEGER.match(label) for label in _tick_labels(axes, "x"))
    # the dotted lines of the checkpoints besides the best one have a legend entry
    dotted = [
        axes for svg in charts for axes in _groups(svg, "axes_") if _groups(axes, "checkpoint-")
    ]
    assert dotted
    for axes in dotted:
        (legend,) = _groups(axes, "legend_")
        assert "checkpoint" in _texts(legend)
    (summary,) = _svgs(text, "summary-chart")
    by_epochs = _groups(summary, "axes_")[2]
    assert all(INTEGER.match(label) for label in _tick_labels(by_epochs, "x"))


def _rules(css: str, selector: str) -> List[str]:
    """The declarations of every rule whose selector list names `selector`."""
    return [
        body
        for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css)
        if selector in [s.strip() for s in selectors.split(",")]
    ]


def test_the_jobs_table_never_scrolls_sideways():
    screen, _, printed = STYLE.partition("@media print")
    assert "nowrap" not in " ".join(_rules(screen, "td") + _rules(screen, "th"))
    (box,) = _rules(screen, ".scroll")
    assert "overflow-x: hidden" in box and "overflow:" not in box
    assert "width: 100%" in " ".join(_rules(screen, "table"))
    (box,) = _rules(printed, ".scroll")  # printed: every row, no box
    assert "max-height: none" in box and "overflow: visible" in box
    assert "position: static" in " ".join(_rules(printed, "th"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI renders the report in Chromium: install Debian's chromium")
        pytest.skip("no Chromium: install Debian's chromium to render the report")
    return CHROMIUM


@pytest.mark.browser
def test_report_renders_in_headless_chromium(chromium, loader, world, tmp_path, capsys):
    loader.run()
    out = tmp_path / "report.html"
    assert main(["report", "--duckdb-path", str(loader.duckdb_path), "--out", str(out)]) == 0
    capsys.readouterr()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [chromium, *HEADLESS, *profile, "--dump-dom", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    charted = _jobs_with_steps(world)[:20]
    assert len(re.findall(r'<svg class="job-chart"', dom)) == len(charted)
    assert len(re.findall(r"<section class=\"job\"", dom)) == len(charted)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            *HEADLESS,
            *profile,
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            out.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from matplotlib.image import imread

    pixels = imread(str(shot))[:, :, :3]
    not_white = (pixels < 0.95).any(axis=2).mean()
    assert pixels.shape[:2] == (2000, 1280)
    assert 0.02 < not_white < 0.9, not_white  # text, table lines and curves, not a blank page
    assert pixels.std() > 0.05


# measures the jobs table where the browser laid it out (the report itself has no script)
MEASURE = """<script>
const box = document.querySelector(".scroll"), table = box.querySelector("table");
const cut = [...table.querySelectorAll("th, td")].filter(c => c.scrollWidth > c.clientWidth);
document.body.setAttribute("data-fit", JSON.stringify({
  table: table.scrollWidth, box: box.clientWidth, page: document.documentElement.clientWidth,
  right: box.getBoundingClientRect().right, cut: cut.length,
  hidden_rows: box.scrollHeight > box.clientHeight + 1,
  shutdown_tables: [...document.querySelectorAll("table.shutdown-models")].map(t => ({
    right: t.getBoundingClientRect().right, width: t.scrollWidth, box: t.clientWidth,
    cut: [...t.querySelectorAll("th, td")].filter(c => c.scrollWidth > c.clientWidth).length,
  })),
  timeline: document.querySelector("svg.shutdown-timeline").getBoundingClientRect().right,
}));
</script>"""


@pytest.mark.browser
@pytest.mark.parametrize(
    "media, width",
    [("screen", 1024), ("print", 980)],  # print: US Letter landscape within 10 mm margins
)
def test_every_column_of_the_jobs_table_fits_the_page(chromium, report, tmp_path, media, width):
    import html
    import json

    out = tmp_path / "report.html"
    assert report("--out", str(out), "--charts", "0")[0] == 0
    page = out.read_text(encoding="utf-8")
    if media == "print":  # headless Chromium lays a page out for the screen: apply the print CSS
        page = page.replace("@media print {", "@media all {")
    measured = tmp_path / "measured.html"
    measured.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    profile = "--user-data-dir=" + str(tmp_path / "profile")
    dom = subprocess.run(
        [
            chromium,
            *HEADLESS,
            profile,
            f"--window-size={width},900",
            "--dump-dom",
            measured.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    fit = json.loads(html.unescape(re.search(r'data-fit="([^"]*)"', dom).group(1)))
    assert fit["page"] == width
    assert fit["table"] <= fit["box"] and fit["right"] <= width, fit  # no column off the side
    assert fit["cut"] == 0, fit  # nor any cell's text clipped
    if media == "print":
        assert not fit["hidden_rows"], fit  # every row on paper
    # the shutdown calendar's tables and timeline fit too, no cell clipped
    assert fit["shutdown_tables"] and fit["timeline"] <= width, fit
    for table in fit["shutdown_tables"]:
        assert table["right"] <= width and table["width"] <= table["box"], fit
        assert table["cut"] == 0, fit


# ---- the "Model shutdowns" section ----------------------------------------------------------

VOID = {"br", "wbr", "col", "meta", "img", "hr", "input", "link"}


@dataclass
class Node:
    """An element of the parsed page: enough of a DOM to read the section as a reader does."""

    tag: str
    attrs: Dict[str, str] = field(default_factory=dict)
    children: List[Any] = field(default_factory=list)  # Nodes and strings

    @property
    def classes(self) -> List[str]:
        return (self.attrs.get("class") or "").split()

    def text(self) -> str:
        """The visible text, whitespace collapsed; a `<br>` reads as a line break."""
        parts = [
            "\n"
            if isinstance(c, Node) and c.tag == "br"
            else c.text()
            if isinstance(c, Node)
            else c
            for c in self.children
        ]
        return "\n".join(" ".join(line.split()) for line in "".join(parts).split("\n")).strip()

    def find_all(self, tag: str, css: Optional[str] = None) -> List[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and (css is None or css in child.classes):
                    found.append(child)
                found += child.find_all(tag, css)
        return found

    def children_of(self, tag: str) -> List[Node]:
        return [c for c in self.children if isinstance(c, Node) and c.tag == tag]


class TreeParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("document")
        self._open = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self._open[-1].children.append(node)
        if tag not in VOID:
            self._open.append(node)

    def handle_startendtag(self, tag, attrs):
        self._open[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for index in range(len(self._open) - 1, 0, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data):
        self._open[-1].children.append(data)


def _shutdowns(path: Path) -> Node:
    """The section, checked to come before the jobs table."""
    text = path.read_text(encoding="utf-8")
    assert text.index('<section class="shutdowns"') < text.index("<h2>Jobs</h2>")
    parser = TreeParser()
    parser.feed(text)
    (section,) = parser.root.find_all("section", "shutdowns")
    assert section.children_of("h2")[0].text() == "Model shutdowns"
    return section


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _kinds(rows) -> str:
    points = sum(r["kind"] == "checkpoint" for r in rows)
    tuned = len(rows) - points
    parts = [_plural(tuned, "fine-tuned model")] if tuned else []
    return " and ".join(parts + ([_plural(points, "checkpoint model")] if points else []))


def _days(days: int) -> str:
    return (
        "today"
        if days == 0
        else f"in {_plural(days, 'day')}"
        if days > 0
        else (f"{_plural(-days, 'day')} ago")
    )


def _by_date(rows) -> List[tuple]:
    rows = sorted(rows, key=lambda r: r["shutdown_date"])
    return [(d, list(g)) for d, g in groupby(rows, key=lambda r: r["shutdown_date"])]


def _expected_lead(truth) -> str:
    soon = [r for r in truth if r["state"] == "retiring" and r["days_left"] <= 90]
    assert soon, "the sandbox has a date within 90 days"
    first = min(soon, key=lambda r: r["days_left"])
    missing = sum(not r["training_data_archived"] for r in soon)
    lead = (
        f"{_plural(len(soon), 'fine-tuned model')} {'stops' if len(soon) == 1 else 'stop'}"
        f" serving within 90 days ({sum(r['kind'] == 'checkpoint' for r in soon)} of them"
        f" checkpoints); the first on {first['shutdown_date']} ({_days(first['days_left'])}); "
    )
    if missing:
        return lead + (
            f"{missing} without archived training data — run openai-ft load to archive what"
            " OpenAI still has (a file deleted upstream before a load read it cannot be"
            " recovered: training_files shows it without bytes), then openai-ft export --job ID"
            " to write it out for retraining elsewhere."
        )
    return lead + (
        "all with archived training data — openai-ft export --job ID writes it out for"
        " retraining elsewhere."
    )


def _expected_count(label: str, rows) -> List[str]:
    if not rows:
        return []
    jobs = len({r["fine_tuning_job_id"] for r in rows})
    missing = sum(not r["training_data_archived"] for r in rows)
    data = f"; {missing} without archived training data" if missing else ""
    return [f"{label}: {_kinds(rows)} of {_plural(jobs, 'job')}{data}."]


def _steps(models: List[str]) -> str:
    steps = sorted(int(m.rsplit("-", 1)[1]) for m in models)
    shown = [f"{s:,}" for s in steps]
    shown = [*shown[:6], "…", *shown[-3:]] if len(shown) > 10 else shown
    return ("step " if len(steps) == 1 else "steps ") + ", ".join(shown)


def _expected_block(day: date, rows) -> Dict[str, Any]:
    """What one date's block must show: heading, facts, one row per job (those without
    archived training data first), each naming all its models."""
    days = rows[0]["days_left"]
    missing = sum(not r["training_data_archived"] for r in rows)
    jobs = {}
    for row in rows:
        jobs.setdefault(row["fine_tuning_job_id"], []).append(row)
    verb = "stopped" if days < 0 else "stops" if len(rows) == 1 else "stop"
    data = (
        f"{missing} without archived training data"
        if missing
        else ("all with archived training data")
    )
    table = []
    for job_id, models in sorted(
        jobs.items(), key=lambda item: (item[1][0]["training_data_archived"], item[0])
    ):
        tuned = [m for m in models if m["kind"] == "fine-tuned"]
        points = [m["model"] for m in models if m["kind"] == "checkpoint"]
        lines = [m["model"] + ("\nown shutdown date" * (m["date_from"] == "model")) for m in tuned]
        if len(points) == 1 and not tuned:
            lines.append(points[0])
        elif points:
            counted = _plural(len(points), "checkpoint model")
            lines.append(
                f"+ {counted} · {_steps(points)}" if tuned else f"{counted}\n{_steps(points)}"
            )
        kinds = (["fine-tuned"] if tuned else []) + (
            [_plural(len(points), "checkpoint")] if points else []
        )
        base = models[0]["base_model"]
        if models[0]["root_model"] != base:
            base += f"\nroot {models[0]['root_model']}"
        archived = models[0]["training_data_archived"]
        assert all(m["training_data_archived"] == archived for m in models)  # a job's flag
        table.append(
            {
                "models": sorted(m["model"] for m in models),
                "highlighted": not archived,
                "cells": [
                    "\n".join(lines),
                    " + ".join(kinds),
                    job_id,
                    base,
                    "yes" if archived else "no",
                ],
            }
        )
    return {
        "date": day.isoformat(),
        "css": "passed" if days < 0 else "soon" if days <= 90 else "later",
        "heading": f"{day.isoformat()} · {_days(days)}",
        "facts": f"{_kinds(rows)} of {_plural(len(jobs), 'job')} {verb} serving · {data}",
        "rows": table,
    }


def _shown_block(block: Node) -> Dict[str, Any]:
    (table,) = block.find_all("table", "shutdown-models")
    heads = [th.text() for th in table.find_all("th")]
    assert heads == ["model", "kind", "job", "base model", "training data archived"]
    rows = table.find_all("tbody")[0].children_of("tr")
    return {
        "date": block.attrs["data-date"],
        "css": [c for c in block.classes if c != "shutdown-date"][0],
        "heading": block.children_of("h3")[0].text(),
        "facts": block.find_all("p", "facts")[0].text(),
        "rows": [
            {
                "models": sorted(tr.children_of("td")[0].attrs["title"].split("\n")),
                "highlighted": "unarchived" in tr.classes,
                "cells": [td.text() for td in tr.children_of("td")],
            }
            for tr in rows
        ],
    }


def assert_shutdowns_equal_truth(section: Node, truth: List[Dict[str, Any]]) -> None:
    """The section lists exactly the truth's dates ahead (soonest first, also on the
    timeline), then those passed (latest first) under "Already shut down", each with exactly
    its models, jobs and archived flags; the serving and not-listed ones counted."""
    ahead = _by_date(r for r in truth if r["state"] == "retiring")
    passed = _by_date(r for r in truth if r["state"] == "shut down")[::-1]
    assert ahead and passed, "the sandbox has dates ahead and passed"
    (lead,) = section.find_all("p", "lead")
    assert lead.text() == _expected_lead(truth)
    assert ("alert" in lead.classes) == ("without archived" in lead.text())
    assert [p.text() for p in section.find_all("p", "count")] == [
        *_expected_count(
            "No shutdown date announced (serving)", [r for r in truth if r["state"] == "serving"]
        ),
        *_expected_count(
            "Not in the models list (deleted, or not visible to this key)",
            [r for r in truth if r["state"] == "not listed"],
        ),
    ]
    (timeline,) = section.find_all("svg", "shutdown-timeline")
    marks = timeline.find_all("g", "timeline-date")
    assert [g.attrs["data-date"] for g in marks] == [d.isoformat() for d, _ in ahead]
    for mark, (_, rows) in zip(marks, ahead, strict=True):
        missing = sum(not r["training_data_archived"] for r in rows)
        note = f" · {missing} not archived" if missing else ""
        assert [t.text() for t in mark.find_all("text")][1] == _plural(len(rows), "model") + note
    blocks = section.find_all("div", "shutdown-date")
    assert [_shown_block(b) for b in blocks] == [
        _expected_block(day, rows) for day, rows in ahead + passed
    ]
    # "Already shut down" heads the dates passed, after every date ahead
    kinds = [
        "passed-head" if n.tag == "h3" else n.attrs["data-date"]
        for n in section.children
        if isinstance(n, Node) and (n.tag == "h3" or "shutdown-date" in n.classes)
    ]
    assert kinds == [d.isoformat() for d, _ in ahead] + ["passed-head"] + [
        d.isoformat() for d, _ in passed
    ]
    assert section.find_all("h3", "passed")[0].text() == "Already shut down"
    # every model of the truth with a date that passed or is ahead is in exactly one row
    shown = [m for b in blocks for tr in _shown_block(b)["rows"] for m in tr["models"]]
    assert sorted(shown) == sorted(
        r["model"] for r in truth if r["state"] in ("retiring", "shut down")
    )


def test_shutdowns_list_the_dates_models_and_archived_flags_of_the_truth(
    report, loaded_world, tmp_path
):
    out = tmp_path / "report.html"
    assert report("--out", str(out), "--charts", "3")[0] == 0
    truth = lifecycle_truth(loaded_world, date.today())
    section = _shutdowns(out)
    assert_shutdowns_equal_truth(section, truth)
    # a job charted below is linked from its row; the others are not
    charted = set(_parse(out).sections)
    for tr in section.find_all("tr"):
        links = tr.find_all("a")
        if "data-job" in tr.attrs:
            assert [a.attrs["href"] for a in links] == (
                [f"#{tr.attrs['data-job']}"] if tr.attrs["data-job"] in charted else []
            )


def _report_of(loader, tmp_path, capsys) -> Path:
    out = tmp_path / "report.html"
    code = main(["report", "--duckdb-path", str(loader.duckdb_path), "--out", str(out)])
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    return out


def test_shutdowns_highlight_the_models_whose_training_data_is_not_archived(
    loader, world, tmp_path, capsys
):
    """Loaded without training data: every model's row is highlighted, and the summary line
    says what to run."""
    loader.run(resources=["jobs", "checkpoints", "models"])
    truth = [
        {**row, "training_data_archived": False} for row in lifecycle_truth(world, date.today())
    ]
    section = _shutdowns(_report_of(loader, tmp_path, capsys))
    assert_shutdowns_equal_truth(section, truth)
    rows = section.find_all("tr")[1:]
    assert all(
        "unarchived" in tr.classes and tr.find_all("td", "archived")[0].text() == "no"
        for tr in rows
        if tr.attrs.get("data-job")
    )
    assert "alert" in section.find_all("p", "lead")[0].classes


def test_shutdowns_say_when_the_models_list_was_not_read_or_the_view_is_missing(
    loader, world, sandbox, tmp_path, capsys
):
    sandbox.models_forbidden = True
    loader.run()
    truth = lifecycle_truth(world, date.today(), models_read=False)
    assert truth and {r["state"] for r in truth} == {"unknown"}
    section = _shutdowns(_report_of(loader, tmp_path, capsys))
    assert [p.text() for p in section.find_all("p")] == [
        "The models list could not be read (the key may lack the api.model.read scope), so no"
        f" shutdown date is known for the {len(truth)} fine-tuned models in the archive; load"
        " again with a key that may list models."
    ]
    assert not section.find_all("svg") and not section.find_all("table")

    # a dataset loaded before the view existed
    with duckdb.connect(str(loader.duckdb_path)) as connection:
        connection.execute("DROP VIEW openai_fine_tuning.model_lifecycle")
    out = _report_of(loader, tmp_path, capsys)
    assert [p.text() for p in _shutdowns(out).find_all("p")] == [
        "This dataset has no model_lifecycle view (it was loaded before the view existed): run"
        " openai-ft load once to create it."
    ]
    assert _parse(out).summary_rows == 1 + len(world.job_ids())  # the rest is reported


@pytest.mark.parametrize("world", [{"jobs": 3, "max_checkpoints": 0}], indirect=True)
def test_shutdowns_of_an_archive_without_fine_tuned_models(loader, world, tmp_path, capsys):
    loader.run()
    assert lifecycle_truth(world, date.today()) == []
    section = _shutdowns(_report_of(loader, tmp_path, capsys))
    assert [p.text() for p in section.find_all("p")] == [
        "The archive holds no fine-tuned model: no job has produced a model or a checkpoint yet."
    ]


def _row(model: str, kind: str, job: str, days: Optional[int], archived: bool = True, **extra):
    today = date(2026, 12, 1)
    return {
        "model": model,
        "kind": kind,
        "fine_tuning_job_id": job,
        "base_model": "gpt-4o-2024-08-06",
        "root_model": "gpt-4o-2024-08-06",
        "shutdown_date": None if days is None else today + timedelta(days=days),
        "date_from": None if days is None else "root model",
        "days_left": days,
        "state": "serving" if days is None else "shut down" if days < 0 else "retiring",
        "training_data_archived": archived,
        **extra,
    }


def test_shutdowns_beyond_the_horizon_today_and_many_checkpoints():
    ft = "ft:gpt-4o-2024-08-06:acme::A1"
    rows = [
        _row(ft, "fine-tuned", "ftjob-a", 0, date_from="model"),
        _row(f"{ft}:ckpt-step-5", "checkpoint", "ftjob-b", 0, archived=False),
        *(_row(f"{ft}:ckpt-step-{s}", "checkpoint", "ftjob-c", 120) for s in range(10, 130, 10)),
    ]
    parser = TreeParser()
    parser.feed(shutdowns_section(rows[2:], set()))
    (lead,) = parser.root.find_all("p", "lead")
    assert lead.text() == (
        "No fine-tuned model stops serving within 90 days; the next date is 2027-03-31"
        " (in 120 days, 12 models)."
    )
    (block,) = parser.root.find_all("div", "shutdown-date")
    assert _shown_block(block)["css"] == "later"
    assert _shown_block(block)["rows"][0]["cells"][:2] == [
        "12 checkpoint models\nsteps 10, 20, 30, 40, 50, 60, …, 100, 110, 120",
        "12 checkpoints",
    ]
    parser = TreeParser()
    parser.feed(shutdowns_section(rows[:2], {"ftjob-a"}))
    (block,) = parser.root.find_all("div", "shutdown-date")
    shown = _shown_block(block)
    assert shown["heading"] == "2026-12-01 · today"
    assert shown["facts"] == (
        "1 fine-tuned model and 1 checkpoint model of 2 jobs stop serving"
        " · 1 without archived training data"
    )
    assert [(r["highlighted"], r["cells"][0], r["cells"][1]) for r in shown["rows"]] == [
        (True, f"{ft}:ckpt-step-5", "1 checkpoint"),  # not archived: first
        (False, f"{ft}\nown shutdown date", "fine-tuned"),
    ]
    assert parser.root.find_all("a")[0].attrs["href"] == "#ftjob-a"
