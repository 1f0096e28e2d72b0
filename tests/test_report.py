"""`openai-ft report`: one self-contained HTML file with the job summary and one chart per job
that has steps, checked as HTML and rendered in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List

import duckdb
import pytest

from pipelines.cli import main
from pipelines.report import STYLE
from pipelines.report_charts import comparison_chart, job_chart
from pipelines.report_data import JobCurves
from tests.test_sql_command import held_by_another_process, locked_line


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


def test_a_file_taken_after_the_check_is_said_the_same(tmp_path, capsys, monkeypatch):
    """Another process takes the file between `existing_pipeline`'s check and the report's
    reading: dlt's bare IOException becomes the same one line."""

    class Unchecked:
        def close(self) -> None:
            pass

    monkeypatch.setattr("pipelines.guards.open_duckdb_file", lambda path: Unchecked())
    path = tmp_path / "held.duckdb"
    duckdb.connect(str(path)).close()
    with held_by_another_process(path) as pid:
        code = main(["report", "--duckdb-path", str(path), "--out", str(tmp_path / "r.html")])
    assert code == 5
    assert capsys.readouterr().err.splitlines() == [locked_line(path, pid)]


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
