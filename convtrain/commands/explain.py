"""`convtrain explain RUN_DIR [IMAGE...]`: where the network looks, what each layer sees."""

from __future__ import annotations

import click

from convtrain.commands.options import run_arg
from convtrain.explain import run


@click.command()
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
    result = run.explain(run_dir, images, **options)  # type: ignore[arg-type]
    click.echo(result.to_json() if fmt == "json" else run.format_table(result))
    for failure in result.failed:
        click.echo(f"error: {failure.error}", err=True)
    return 2 if result.failed else 0  # as predict: an unreadable image is the user's mistake
