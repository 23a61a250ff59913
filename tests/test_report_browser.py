"""The two report.html pages, seen in headless Chromium at a desktop and a phone width.

A tiny two-trial grid sweep gives both: each trial is a run with its own report.html (written
by the evaluation at the end of training), and `convtrain compare` writes the sweep's. Every
image must load and scale to the window, carry alt text, and the page must not scroll sideways,
log an error or ask for anything outside the machine. Screenshots go to tmp_path, and to
$CONVTRAIN_SCREENSHOTS when it is set, for a person to look at.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from browser import NARROW, WIDE, chromium, look, problems
from conftest import tiny_config
from PIL import Image

from convtrain.evaluate.figures import PLOTS
from convtrain.experiments import html as html_report
from convtrain.search.figures import FIGURES

pytestmark = pytest.mark.slow

RUN_SECTIONS = ["Metrics", "Training", "Layers", "Classification report", "Config"]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "convtrain", *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory, tiny_data_env: dict[str, str]) -> Path:
    """Two trials searched on a grid over the conv kernels' L2, as the benchmark's search does
    (a `{choice: [...]}` under a Keras-object key once made `convtrain compare` crash)."""
    base = tmp_path_factory.mktemp("browser")
    search = {"model.defaults.conv2d.kernel_regularizer": {"choice": [None, {"l2": 0.001}]}}
    cfg = base / "sweep.yaml"
    sweep = {"search": search, "sampler": "grid"}
    cfg.write_text(yaml.safe_dump(tiny_config("sw", 5, 2, sweep=sweep)))
    cli("sweep", str(cfg), "--sweep-dir", str(base / "sweep"), env=tiny_data_env)
    cli("compare", str(base / "sweep"), env=tiny_data_env)
    return base / "sweep"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def first_run(sweep_dir: Path) -> Path:
    return sorted((sweep_dir / "trials").iterdir())[0]


def run_sections(run: Path) -> list[str]:
    """A heading for each plot the evaluation draws (misclassified only if something was)."""
    plots = [Path(n).stem for n in PLOTS.values()]
    if json.loads((run / "reports" / "metrics.json").read_text())["accuracy"] == 1.0:
        plots.remove("misclassified")
    return RUN_SECTIONS + [p.replace("_", " ") for p in plots]


def sweep_sections(sweep_dir: Path) -> list[str]:
    figures = [title.capitalize() for title, _ in FIGURES.values()]
    return ["Trials", "Cost", "Curves", "What the network looks at", *figures]


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_the_run_report_reads_well(browser, sweep_dir, tmp_path, width):
    run = first_run(sweep_dir)
    seen = look(browser, run / "report.html", width, tmp_path / f"run-{width}.png")
    assert problems(seen, run_sections(run)) == []
    assert len(seen.images) == len(list((run / "plots").glob("*.png")))
    assert seen.screenshot.stat().st_size > 10_000


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_the_sweep_report_reads_well(browser, sweep_dir, tmp_path, width):
    seen = look(browser, sweep_dir / "report.html", width, tmp_path / f"sweep-{width}.png")
    assert problems(seen, sweep_sections(sweep_dir)) == []
    assert any(h.startswith("Best trial: ") for h in seen.headings)
    assert seen.screenshot.stat().st_size > 10_000


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_the_explain_page_reads_well(browser, sweep_dir, tmp_path, tiny_data_env, width):
    """`convtrain explain`'s explain.html: a section per image and the filters, every picture
    loaded and fitting the window."""
    run, out = first_run(sweep_dir), tmp_path / "explained"
    cli("explain", str(run), "--split", "test", "--per-class", "1", "--out", str(out),
        env=tiny_data_env)  # fmt: skip
    seen = look(browser, out / "explain.html", width, tmp_path / f"explain-{width}.png")
    images = sorted(p.name for p in out.glob("*.png") if p.name != "filters.png")
    assert len(images) == 3  # one test image of each of the three classes
    assert problems(seen, ["Filters"]) == []
    assert len(seen.images) == len(list(out.glob("*.png")))
    assert sum(h.endswith(".jpg") for h in seen.headings) == 3


def damaged_run(sweep_dir: Path, tmp_path: Path, env: dict[str, str], damage) -> Path:
    """A copy of a trial's run with `damage(plots)` done, its report.html written again."""
    run = tmp_path / "run"
    shutil.copytree(first_run(sweep_dir), run)
    damage(run / "plots")
    cli("report", str(run), env=env)
    return run


@pytest.mark.parametrize(
    "keep, seen_as", [(0, "image did not load"), (2000, "image is damaged")], ids=["empty", "cut"]
)
def test_a_corrupt_plot_is_named(browser, sweep_dir, tmp_path, tiny_data_env, keep, seen_as):
    """An empty PNG does not load; Chromium draws a cut-short one in part and calls it loaded."""

    def cut(plots: Path) -> None:
        png = plots / "confusion_matrix.png"
        png.write_bytes(png.read_bytes()[:keep])

    run = damaged_run(sweep_dir, tmp_path, tiny_data_env, cut)
    seen = look(browser, run / "report.html", WIDE, tmp_path / f"corrupt-{keep}.png")
    alt = html_report.PLOTS["confusion_matrix"]
    assert problems(seen, run_sections(run)) == [f"{seen_as}: {alt}"]


def test_a_deleted_plot_is_named_as_the_missing_section(
    browser, sweep_dir, tmp_path, tiny_data_env
):
    run = damaged_run(
        sweep_dir, tmp_path, tiny_data_env, lambda p: (p / "learning_curves.png").unlink()
    )
    seen = look(browser, run / "report.html", WIDE, tmp_path / "deleted.png")
    assert problems(seen, run_sections(run)) == ["missing section: learning curves"]


BAD_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bad</title></head>
<body><h1>bad</h1><h2>Numbers</h2><div style="width:2000px">a row too wide</div>
<h2>Nothing here</h2><h2>Picture</h2><img src="data:image/png;base64,{png}">
<img alt="remote" src="http://example.com/x.png"><p>TODO</p>
<script>console.error("a console error"); undefinedFunction();</script></body></html>"""


def test_every_check_can_fail(browser, tmp_path):
    """A page with one of each mistake: each check names its own."""
    png = tmp_path / "one.png"
    Image.new("RGB", (4, 4), "red").save(png)
    page = tmp_path / "bad.html"
    page.write_text(BAD_PAGE.format(png=base64.b64encode(png.read_bytes()).decode()))
    seen = look(browser, page, WIDE, tmp_path / "bad.png")
    found = problems(seen, ["Numbers", "Config"])
    expected = [
        "image did not load: remote",
        "image without alt text: data:image/png;base64,",
        "console error: a console error",
        "console error: Failed to load resource",  # Chromium's own line for the aborted request
        "page error: undefinedFunction is not defined",
        "network request outside the machine: http://example.com/x.png",
        "request that is not a local file: http://example.com/x.png",
        "the page scrolls sideways at 1280px (2008 > 1280): div ends at 2008px",
        "missing section: Config",
        "empty section: Nothing here",
        "placeholder text: TODO",
    ]
    for line in expected:
        assert any(f.startswith(line) for f in found), (line, "\n".join(found))
    assert len(found) == len(expected), "\n".join(found)
