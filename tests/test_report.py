"""`openai-ft report`: one self-contained HTML file with the job summary and one chart per job
that has steps, checked as HTML and rendered in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List

import pytest

from pipelines.cli import main


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
