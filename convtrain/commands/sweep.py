"""`convtrain sweep CONFIG --grid KEY=V1,V2`: every trial a normal run under one sweep directory."""

from __future__ import annotations

import click

from convtrain.commands.options import config_arg, set_option


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
    "--random",
    "random_trials",
    type=click.IntRange(1),
    default=None,
    help="Run this many random combinations instead of the whole grid.",
)
@click.option(
    "--sweep-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Sweep directory (default: runs/sweeps/<name>-<timestamp>); give an existing one to resume it.",
)
@click.option("--retry-failed", is_flag=True, help="When resuming, run failed trials again.")
@click.option(
    "--dry-run", is_flag=True, help="Validate and list the trials with their cost; train nothing."
)
def sweep(
    config: str,
    overrides: tuple[str, ...],
    grid: tuple[str, ...],
    random_trials: int | None,
    sweep_dir: str | None,
    retry_failed: bool,
    dry_run: bool,
) -> None:
    """Run every combination of the --grid values as a normal run under one sweep directory."""
    from convtrain.experiments.sweep import run_sweep

    run_sweep(config, grid, random_trials, overrides, sweep_dir, retry_failed, dry_run)
