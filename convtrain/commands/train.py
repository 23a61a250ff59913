"""`convtrain train CONFIG` / `convtrain train --resume RUN_DIR`."""

from __future__ import annotations

import click

from convtrain.commands.options import set_option


@click.command()
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
