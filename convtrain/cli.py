"""The `convtrain` command line.

Each command imports its implementation lazily, so `convtrain --help` never loads TensorFlow.
User mistakes raise ConvtrainError: one line per problem on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import gc
import os
import sys

import click

from convtrain import __version__
from convtrain.errors import ConvtrainError

# TensorFlow's C++ start-up chatter buries the real output; users can still set it to 0.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SET_HELP = "Override a config value: dotted path, YAML value (repeatable), e.g. model.layers[0].filters=64."
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
config_arg = click.argument("config", type=click.Path(dir_okay=False))
run_arg = click.argument("run_dir", type=click.Path(file_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="convtrain")
def cli() -> None:
    """Convolutional-network experiments on CALTECH-101, one YAML config per experiment.

    \b
    Typical session:
      convtrain data fetch                      # get CALTECH-101 into data/
      convtrain inspect configs/stridednet.yaml # shapes, parameters, receptive fields
      convtrain train configs/stridednet.yaml   # writes runs/stridednet-<timestamp>/
      convtrain evaluate runs/stridednet-...    # reports and plots of a run
      convtrain explain runs/stridednet-... --split test  # where it looks, what each layer sees
    """


@cli.command()
@config_arg
@set_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--classes",
    "num_classes",
    type=int,
    default=None,
    help="Number of classes for the head (default: from data.classes, or the dataset).",
)
def inspect(config: str, overrides: tuple[str, ...], fmt: str, num_classes: int | None) -> None:
    """Per layer: output shape, parameters, multiply-accumulates, receptive field, jump."""
    from convtrain.model.inspect import run_inspect

    run_inspect(config, overrides, fmt=fmt, num_classes=num_classes)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a config, for editors (see docs/config.md)."""
    from convtrain.config.jsonschema import schema_text

    click.echo(schema_text(), nl=False)


@cli.group()
def data() -> None:
    """Get CALTECH-101, describe it, preview augmentation."""


@data.command("fetch")
@click.option(
    "--source",
    default=None,
    help="URL, local .zip/.tar.gz, or an extracted 101_ObjectCategories/ folder (default: the official CaltechDATA archive).",
)
@click.option(
    "--data-dir", default="data/caltech-101", show_default=True, type=click.Path(file_okay=False)
)
def data_fetch(source: str | None, data_dir: str) -> None:
    """Download (resumable, verified) and safely extract CALTECH-101."""
    from convtrain.data.fetch import run_fetch

    run_fetch(source=source, data_dir=data_dir)


@data.command("info")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option(
    "--root",
    default=None,
    help="Dataset folder (default: the config's data.root, or CONVTRAIN_DATA_ROOT).",
)
def data_info(config: str | None, overrides: tuple[str, ...], root: str | None) -> None:
    """Classes, images per class, sizes, grayscale count, imbalance, skipped files."""
    from convtrain.data.info import run_info

    run_info(config, overrides, root=root)


@data.command("preview")
@config_arg
@set_option
@click.option("--out", default=None, help="PNG to write (default: preview-<name>.png).")
@click.option("--count", default=32, show_default=True, type=click.IntRange(1, 256))
def data_preview(config: str, overrides: tuple[str, ...], out: str | None, count: int) -> None:
    """Write a PNG grid of augmented training samples with their labels."""
    from convtrain.data.preview import run_preview

    run_preview(config, overrides, out=out, count=count)


@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option("--name", default=None, help="Run name (default: the config's name).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--resume",
    "resume",
    default=None,
    type=click.Path(file_okay=False),
    help="Continue an interrupted run directory.",
)
@click.option(
    "--workers",
    default=None,
    metavar="HOST:PORT,...",
    help="Multi-worker cluster (distribute.strategy multi_worker), the same list on every worker; instead of TF_CONFIG.",
)
@click.option(
    "--worker-index",
    type=click.IntRange(0),
    default=None,
    help="This worker's position in --workers (0 is the chief).",
)
def train(
    config: str | None,
    overrides: tuple[str, ...],
    name: str | None,
    runs_dir: str,
    resume: str | None,
    workers: str | None,
    worker_index: int | None,
) -> None:
    """Validate CONFIG, train, and write a run directory with reports and plots.

    `convtrain train --resume RUN_DIR` (no CONFIG) continues an interrupted run.
    Several GPUs and machines: see docs/distribute.md.
    """
    from convtrain.train.run import run_train

    run_train(
        config,
        overrides,
        name=name,
        runs_dir=runs_dir,
        resume=resume,
        workers=workers,
        worker_index=worker_index,
    )


@cli.command()
@run_arg
@click.option(
    "--checkpoint",
    type=click.Choice(["best", "last"]),
    default=None,
    help="Default: the config's eval.checkpoint.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "val"]),
    default=None,
    help="Default: the config's eval.split.",
)
def evaluate(run_dir: str, checkpoint: str | None, split: str | None) -> None:
    """Re-evaluate a run: classification report, metrics and plots."""
    from convtrain.evaluate.run import run_evaluate

    run_evaluate(run_dir, checkpoint=checkpoint, split=split)


@cli.command()
@run_arg
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True
)
def predict(run_dir: str, images: tuple[str, ...], top_k: int, fmt: str, checkpoint: str) -> None:
    """Top-k classes with probabilities for each image, with the run's own preprocessing."""
    from convtrain.evaluate.predict import run_predict

    run_predict(run_dir, images, top_k=top_k, fmt=fmt, checkpoint=checkpoint)


@cli.command()
@run_arg
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--layer", default=None, help="Conv layer or block (default: the last spatial one).")
@click.option("--class", "class_name", default=None, help="Also a Grad-CAM map for this class.")
@click.option(
    "--out", default=None, type=click.Path(file_okay=False), help="Default: RUN_DIR/explain."
)
@click.option(
    "--split",
    type=click.Choice(["test", "val", "train"]),
    default=None,
    help="Take images from the run's split.",
)
@click.option(
    "--per-class",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Images per class, with --split.",
)
@click.option(
    "--checkpoint",
    type=click.Choice(["best", "last"]),
    default=None,
    help="Default: eval.checkpoint.",
)
@click.option("--top-k", type=click.IntRange(1, 1000), default=None, help="Default: eval.top_k.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def explain(run_dir: str, images: tuple[str, ...], fmt: str, **options: object) -> int:
    """Grad-CAM, feature maps, receptive fields and filters of IMAGEs, as PNGs and explain.html."""
    from convtrain.explain import run

    result = run.explain(run_dir, images, **options)  # type: ignore[arg-type]
    click.echo(result.to_json() if fmt == "json" else run.format_table(result))
    for failure in result.failed:
        click.echo(f"error: {failure.error}", err=True)
    return 2 if result.failed else 0  # as predict: an unreadable image is the user's mistake


@cli.command()
@config_arg
@set_option
@click.option(
    "--grid",
    "grid",
    multiple=True,
    metavar="KEY=V1,V2,...",
    help="An axis to sweep (repeatable; values are YAML). Adds to the config's sweep.grid.",
)
@click.option(
    "--search",
    "search",
    multiple=True,
    metavar="KEY=SPEC",
    help="A distribution to search (repeatable; SPEC is YAML): '{float: [1.0e-4, 1.0e-2], log: true}', '{int: [8, 64], step: 8}', '{choice: [relu, tanh]}'.",
)
@click.option(
    "--random",
    "random_trials",
    type=click.IntRange(1),
    default=None,
    help="Run this many of the grid's combinations, in a seeded random order, instead of all.",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "grid", "cmaes"]),
    default=None,
    help="Optuna sampler (default: grid, or tpe for a search).",
)
@click.option(
    "--trials", type=click.IntRange(1), default=None, help="The study's budget of trials."
)
@click.option(
    "--timeout",
    default=None,
    metavar="DURATION",
    help="Start no trial after this long (90s, 30m, 2h).",
)
@click.option(
    "--prune",
    type=click.Choice(["none", "median", "asha", "hyperband"]),
    default=None,
    help="Stop hopeless trials early, on train.monitor after every epoch (default: none).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Trial processes at once on this machine (the cores, or one GPU each).",
)
@click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="Optuna storage shared by several machines: postgresql://USER@HOST/DB, mysql://..., sqlite:///PATH (default: SWEEP_DIR/study.journal).",
)
@click.option(
    "--study",
    default=None,
    help="Study name in the storage (default: the config's name and a digest).",
)
@click.option(
    "--sweep-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Sweep directory (default: runs/sweeps/<name>-<timestamp>); give an existing one to resume it.",
)
@click.option("--retry-failed", is_flag=True, help="When resuming, run failed trials again.")
@click.option(
    "--dry-run", is_flag=True, help="Print the space, sampler, pruner and budget; train nothing."
)
def sweep(
    config: str,
    overrides: tuple[str, ...],
    random_trials: int | None,
    retry_failed: bool,
    dry_run: bool,
    **options: object,
) -> None:
    """Grid, random or smart search (Optuna) over config values; every trial is a normal run.

    \b
    Several processes or machines share a study: run the same command with the same
    --sweep-dir (one machine) or the same --storage URL (several). See docs/experiments.md.
    """
    from convtrain.search.engine import SweepInterrupted, run_sweep
    from convtrain.search.engine import dry_run as plan_lines
    from convtrain.search.plan import Options
    from convtrain.search.results import summary_lines

    opts = Options(random=random_trials, retry_failed=retry_failed, **options)  # type: ignore[arg-type]
    if dry_run:
        for line in plan_lines(config, overrides, opts):
            click.echo(line)
        return
    prefix = opts.workers > 1

    def output(trial: int, line: str) -> None:
        click.echo(f"[trial {trial}] {line}" if prefix else line, err=True)

    try:
        outcome = run_sweep(config, overrides, opts, echo=click.echo, output=output)
    except SweepInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    for line in summary_lines(outcome):
        click.echo(line)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(["accuracy", "mean_per_class_accuracy", "top_k_accuracy"]),
    default="accuracy",
    show_default=True,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Where to write compare.md/.csv and plots (default: the sweep directory, else the current directory).",
)
def compare(paths: tuple[str, ...], sort_by: str, fmt: str, out: str | None) -> None:
    """Compare runs (RUN_DIR... or a SWEEP_DIR): what differs, what it scored, what it cost."""
    from convtrain.experiments.report import run_compare

    run_compare(list(paths), sort_by=sort_by, fmt=fmt, out=out)


@cli.command()
@click.argument("path", type=click.Path(file_okay=False))
def report(path: str) -> None:
    """Write a self-contained report.html for a run or a sweep directory."""
    from convtrain.experiments.report import run_report

    run_report(path)


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="convtrain", standalone_mode=False)
    except ConvtrainError as exc:
        for line in exc.lines():
            click.echo(f"error: {line}", err=True)
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    else:
        sys.exit(code if isinstance(code, int) else 0)
    # The error's traceback kept what failed alive (for a lost multi-worker peer, TensorFlow's
    # all-reduce ThreadPool): collected now, while the interpreter is whole, its finalizer runs
    # cleanly instead of printing a traceback during shutdown.
    gc.collect()
    sys.exit(code)
