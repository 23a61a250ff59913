"""`convtrain sweep CONFIG`: grid, random or Optuna search; every trial a normal run."""

from __future__ import annotations

import sys

import click

from convtrain.commands.options import config_arg, set_option
from convtrain.commands.sweepview import SweepView
from convtrain.search.engine import SweepInterrupted, run_sweep
from convtrain.search.engine import dry_run as plan_lines
from convtrain.search.plan import Options
from convtrain.search.results import summary_lines


@click.command()
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
    "--min-epochs",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Judge no trial before epoch N (the pruner's first rung; default: sweep.min_epochs or 1).",
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
    opts = Options(random=random_trials, retry_failed=retry_failed, **options)  # type: ignore[arg-type]
    if dry_run:
        for line in plan_lines(config, overrides, opts):
            click.echo(line)
        return
    try:
        with SweepView(opts.workers) as view:
            outcome = run_sweep(config, overrides, opts, emit=view)
    except SweepInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    for line in summary_lines(outcome):
        click.echo(line)
