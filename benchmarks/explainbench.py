"""`make bench-explain RUN=...`: how long `convtrain explain` takes on a run, after TensorFlow starts.

    python benchmarks/explainbench.py RUN_DIR [--images 8] [--repeats 3]

The target (issue 16): 8 test images of a StridedNet run in under 5 s on 2 CPU cores, counted
from the moment TensorFlow has started (its import, 5 to 10 s here, is the same for every
command). Each repeat is a fresh process, as a user's command is: its first explanation pays
for loading the checkpoints, tracing the probe and drawing every caption once. A second
explanation in the same process is reported beside it. Writes the result as JSON to
benchmarks/results/<date>-explain.json; the load average is part of it (the machine is shared).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import click  # noqa: E402

from convtrain.io import atomic_write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 5.0


def _images(run_dir: str, n: int) -> list[str]:
    """The first test images of the run's split, taking each class in turn."""
    from convtrain.config.load import load_config
    from convtrain.data.index import resolve_root

    split = json.loads((Path(run_dir) / "split.json").read_text())
    root = resolve_root(load_config(Path(run_dir) / "config.yaml").data)
    by_class: dict[int, list[str]] = {}
    for path, label in split["test"]:
        by_class.setdefault(label, []).append(path)
    order = [p for group in zip(*by_class.values(), strict=False) for p in group]
    return [str(root / p) for p in order[:n]]


def child(run_dir: str, images: list[str]) -> dict[str, float]:
    """In a fresh process: TensorFlow's start, then two explanations of the same images."""
    start = time.perf_counter()
    from convtrain.tfquiet import import_tensorflow

    import_tensorflow()
    started = time.perf_counter()
    from convtrain.explain.run import explain

    out = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            result = explain(run_dir, images, out=tmp)
            out.append(time.perf_counter() - t)
            if result.failed or len(result.images) != len(images):
                raise RuntimeError(f"explain failed: {result.failed}")
    return {"tensorflow_start_s": started - start, "first_s": out[0], "second_s": out[1]}


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--images", default=8, show_default=True, type=click.IntRange(1))
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1))
@click.option("--child-images", hidden=True, default=None)
def main(run_dir: str, images: int, repeats: int, child_images: str | None) -> None:
    if child_images is not None:
        click.echo(json.dumps(child(run_dir, json.loads(child_images))))
        return
    paths = _images(run_dir, images)
    before = os.getloadavg()
    runs = []
    for i in range(repeats):
        done = subprocess.run(
            [sys.executable, __file__, run_dir, "--child-images", json.dumps(paths)],
            cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise click.ClickException(f"repeat {i + 1} failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        click.echo(
            f"repeat {i + 1}: TensorFlow started in {runs[-1]['tensorflow_start_s']:.1f} s; "
            f"explain {len(paths)} images {runs[-1]['first_s']:.2f} s (again in the same "
            f"process: {runs[-1]['second_s']:.2f} s)",
            err=True,
        )
    first = [r["first_s"] for r in runs]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": str(Path(run_dir).resolve()),
        "images": len(paths),
        "cores": len(os.sched_getaffinity(0)),
        "loadavg_before": [round(x, 2) for x in before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "repeats": runs,
        "median_first_s": statistics.median(first),
        "target_s": TARGET_S,
        "within_target": statistics.median(first) < TARGET_S,
    }
    out = REPO / "benchmarks" / "results" / f"{datetime.now():%Y-%m-%d}-explain.json"
    atomic_write_json(out, result)
    click.echo(
        f"explain, {len(paths)} images after TensorFlow starts: median {result['median_first_s']:.2f} s "
        f"over {repeats} fresh processes (target < {TARGET_S:g} s; load average "
        f"{result['loadavg_before'][0]} -> {result['loadavg_after'][0]}, "
        f"{result['cores']} cores); wrote {out.relative_to(REPO)}"
    )


if __name__ == "__main__":
    main()
