"""`convtrain evaluate RUN_DIR`: reports and plots of a run's checkpoint on one split."""

from __future__ import annotations

import click

from convtrain.commands.options import run_arg


@click.command()
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
