"""`make bench`: how fast convtrain trains, evaluates, prepares data and starts, on this machine.

    python benchmarks/bench.py [--quick] [--config CONFIG] [--set KEY=VALUE ...]

Prints a table and writes it as JSON to benchmarks/results/<date>-<mode>.json. Every figure is
measured in this run, ratios side by side in the same process, because the machine is shared
and noisy: the load average before and after is part of the result.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import click  # noqa: E402

from benchmarks import measure  # noqa: E402
from convtrain.config.load import load_config  # noqa: E402
from convtrain.data.index import resolve_root  # noqa: E402
from convtrain.errors import ConvtrainError  # noqa: E402
from convtrain.io import atomic_write_json  # noqa: E402

# Each variant is the config plus these overrides (--flags go to benchmarks.trainbench),
# trained in a process of its own.
VARIANTS: dict[str, tuple[str, ...]] = {
    # The same-work hand loop (augmenting as convtrain does) only for the default: the summary
    # compares the same work there, and it would add a third of each variant's time.
    "default": ("--same-work",),
    "bfloat16": ("train.mixed_precision=bfloat16",),
    "xla": ("train.jit_compile=true",),
    "steps_per_execution_8": ("train.steps_per_execution=8",),
    "threads_1": ("train.threads=1",),
    "keras_batch_norm": ("train.fused_batch_norm=false",),
    # Not options: the pipeline without augmentation, to see what augmenting costs, and the
    # trainer as it was before fit_data (Keras makes a new tf.data iterator every epoch).
    "no_augment": ("augment={}",),
    "iterator_per_epoch": ("--fresh-iterators",),
}

# XLA trains at about a fifth of the default's speed: two steady epochs show that, and five
# would take a third of the full run.
MAX_EPOCHS: dict[str, int] = {"xla": 3}


@dataclass(frozen=True)
class Mode:
    epochs: int  # per training variant; the first is dropped as warm-up
    variants: tuple[str, ...]
    startup_repeats: int
    matmul_seconds: float
    matmul_size: int
    stream_size: int | None  # image size of the memory check (cache read from disk); None: skip


MODES: dict[str, Mode] = {
    "full": Mode(5, tuple(VARIANTS), 5, 3.0, 2048, 224),
    "quick": Mode(
        3,
        ("default", "bfloat16", "keras_batch_norm", "no_augment", "iterator_per_epoch"),
        3,
        1.0,
        1024,
        None,
    ),
    # For tests on a synthetic dataset: every piece runs once, as briefly as it can.
    "tiny": Mode(2, ("default", "no_augment", "iterator_per_epoch"), 1, 0.05, 64, 16),
}


def _overrides(base: Sequence[str], variant: str) -> list[str]:
    return [*base, *VARIANTS[variant]]


def variant_epochs(mode: Mode, variant: str) -> int:
    return min(mode.epochs, MAX_EPOCHS.get(variant, mode.epochs))


def run_benchmark(
    mode: Mode, config: str, overrides: Sequence[str], prep_sizes: Sequence[int]
) -> dict[str, Any]:
    experiment = load_config(config, overrides)
    root = resolve_root(experiment.data)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "overrides": list(overrides),
        "mode": asdict(mode),
        "machine": measure.machine(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    work = Path(tempfile.mkdtemp(prefix="convtrain-bench-"))
    try:
        say("matrix-multiply rate")
        result["matmul_flops"] = measure.child(
            "matmul", str(mode.matmul_size), str(mode.matmul_seconds)
        )
        say("dataset preparation")
        sizes = dict.fromkeys([*prep_sizes, *([mode.stream_size] if mode.stream_size else [])])
        result["preparation"] = [measure.preparation(root, s, work) for s in sizes]
        if mode.stream_size is not None:
            say(f"reading the whole {mode.stream_size}px cache")
            result["streaming"] = measure.child(
                "streaming",
                str(root),
                str(mode.stream_size),
                env={"CONVTRAIN_CACHE_DIR": str(work / f"cache-{mode.stream_size}")},
            )
        say("start-up")
        result["startup_s"] = {
            "convtrain --help": measure.startup(["--help"], mode.startup_repeats),
            f"convtrain inspect {config}": measure.startup(
                ["inspect", config, *_set_flags(overrides)], mode.startup_repeats
            ),
        }
        result["flops"] = _flops(config, overrides)
        variants = {}
        for name in mode.variants:
            say(f"training variant {name}")
            variants[name] = measure.child(
                "train", config, str(variant_epochs(mode, name)), *_overrides(overrides, name)
            )
        result["variants"] = variants
        say("a real `convtrain train` run")
        result["training_run"] = measure.training_run(
            config, [*overrides, f"train.epochs={mode.epochs}"], work
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["summary"] = summarise(result)
    return result


def _set_flags(overrides: Sequence[str]) -> list[str]:
    return [flag for item in overrides for flag in ("--set", item)]


def _flops(config: str, overrides: Sequence[str]) -> dict[str, int]:
    """Forward FLOPs per image from `convtrain inspect`; training counts three passes' worth."""
    from convtrain.data.index import index_dataset
    from convtrain.model.inspect import report

    experiment = load_config(config, overrides)
    num_classes = len(index_dataset(experiment.data).classes)
    forward = int(report(experiment, num_classes, "")["totals"]["flops"])
    # Backward costs about twice the forward (gradients of inputs and of weights).
    return {"forward_per_image": forward, "train_per_image": 3 * forward}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures: ratios and fractions computed from the raw measurements."""
    variants = result["variants"]
    base = variants["default"]
    peak = result["matmul_flops"]["float32"]
    achieved = base["convtrain_images_per_s"] * result["flops"]["train_per_image"]
    same_work = base.get("hand_augmented_images_per_s") or base["hand_images_per_s"]
    summary = {
        "convtrain_images_per_s": base["convtrain_images_per_s"],
        # The target's reference: the model written by hand with stock Keras (float32, no XLA,
        # Keras's own batch norm), trained on in-memory tensors without augmentation.
        "plain_keras_loop_images_per_s": base["reference_images_per_s"],
        "convtrain_over_plain_keras_loop": _ratio(
            base["convtrain_images_per_s"], base["reference_images_per_s"]
        ),
        # convtrain's own model and options in the hand loop: what the pipeline and the trainer
        # cost, model only and with the same augmentation.
        "hand_loop_images_per_s": base["hand_images_per_s"],
        "convtrain_over_hand_loop": _ratio(
            base["convtrain_images_per_s"], base["hand_images_per_s"]
        ),
        # The same work: the hand loop augmenting as convtrain does (the model-only loop when
        # the config has no augmentation).
        "hand_loop_same_work_images_per_s": same_work,
        "convtrain_over_hand_loop_same_work": _ratio(base["convtrain_images_per_s"], same_work),
        "achieved_gflops": round(achieved / 1e9, 2),
        "matmul_gflops_float32": round(peak / 1e9, 1),
        "fraction_of_matmul_rate": round(achieved / peak, 3),
        "eval_images_per_s": base["eval_images_per_s"],
        "options": {
            name: {
                "speedup_convtrain": _ratio(
                    v["convtrain_images_per_s"], base["convtrain_images_per_s"]
                ),
                # Each against the float32 hand loop of its own process: load-independent.
                "speedup_normalised": _ratio(
                    v["convtrain_images_per_s"] / v["reference_images_per_s"],
                    base["convtrain_images_per_s"] / base["reference_images_per_s"],
                ),
                "speedup_hand_loop": _ratio(v["hand_images_per_s"], base["hand_images_per_s"]),
                "convtrain_over_hand_loop": _ratio(
                    v["convtrain_images_per_s"], v["hand_images_per_s"]
                ),
                "test_accuracy": v["test_accuracy"],
            }
            for name, v in variants.items()
        },
    }
    return summary


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def format_table(result: dict[str, Any]) -> str:
    s, lines = result["summary"], []

    def row(label: str, value: Any) -> None:
        lines.append(f"  {label:<52} {value}")

    m = result["machine"]
    lines.append(
        f"convtrain benchmark, {result['date']}, {m['cores']} cores ({m['cpu']}), "
        f"load average {result['loadavg_before'][0]} -> {result['loadavg_after'][0]}"
    )
    lines.append(f"config {result['config']} {' '.join(result['overrides'])}".rstrip())
    lines.append("training (images/s, median of steady epochs)")
    row("convtrain (pipeline + trainer, the config's augmentation)", s["convtrain_images_per_s"])
    row("plain Keras hand loop, in-memory tensors, model only", s["plain_keras_loop_images_per_s"])
    row("hand loop with convtrain's model and options, model only", s["hand_loop_images_per_s"])
    row(
        "  the same, with the config's augmentation in its step",
        s["hand_loop_same_work_images_per_s"],
    )
    row("ratio convtrain / plain Keras loop (target >= 1.0)", s["convtrain_over_plain_keras_loop"])
    row("ratio convtrain / hand loop, same options, model only", s["convtrain_over_hand_loop"])
    row(
        "ratio convtrain / hand loop, same options, same work",
        s["convtrain_over_hand_loop_same_work"],
    )
    flops = result["flops"]
    row("FLOPs per training image (3 x forward)", f"{flops['train_per_image'] / 1e6:.1f} M")
    row("achieved GFLOP/s", s["achieved_gflops"])
    row("float32 matmul GFLOP/s (this machine, now)", s["matmul_gflops_float32"])
    bf16 = result["matmul_flops"]["bfloat16"] / 1e9
    row("bfloat16 matmul GFLOP/s", round(bf16, 1))
    row("fraction of the float32 matmul rate", s["fraction_of_matmul_rate"])
    row("evaluation images/s", s["eval_images_per_s"])
    lines.append(
        "options: convtrain speed-up over the default, normalised by each process's plain Keras "
        "hand loop (raw in brackets); test accuracy after the short run"
    )
    for name, o in s["options"].items():
        row(
            name,
            f"x{o['speedup_normalised']} (raw x{o['speedup_convtrain']}), "
            f"hand loop x{o['speedup_hand_loop']}, "
            f"convtrain/hand {o['convtrain_over_hand_loop']}, accuracy {o['test_accuracy']}",
        )
    lines.append("data preparation, every image of the dataset")
    for p in result["preparation"]:
        row(
            f"{p['images']} images at {p['image_size']}px: cold / warm (s)",
            f"{p['cold_s']} / {p['warm_s']} (cache {p['cache_mb']} MB)",
        )
    if "streaming" in result:
        st = result["streaming"]
        row(
            f"read the {st['image_size']}px cache ({st['cache_mb']} MB): own / mapped MB",
            f"{st['peak_anon_mb']} / {st['peak_file_mb']}",
        )
    run = result["training_run"]
    row("`convtrain train` peak memory (MB)", run["peak_rss_mb"])
    row("`convtrain train` images/s, accuracy", f"{run['images_per_s']}, {run['test_accuracy']}")
    lines.append("start-up (s, median)")
    for command, seconds in result["startup_s"].items():
        row(command, seconds)
    return "\n".join(lines)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@click.command()
@click.option("--quick", is_flag=True, help="A few minutes: fewer variants, epochs and repeats.")
@click.option("--tiny", is_flag=True, help="Seconds per piece, for tests on a synthetic dataset.")
@click.option("--config", default="configs/stridednet.yaml", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@click.option("--prep-size", "prep_sizes", multiple=True, type=int, default=[96], show_default=True)
@click.option("--epochs", type=int, default=None, help="Epochs per training variant.")
@click.option("--variant", "variants", multiple=True, type=click.Choice(list(VARIANTS)))
@click.option(
    "--out", default="benchmarks/results", show_default=True, type=click.Path(file_okay=False)
)
def main(
    quick: bool,
    tiny: bool,
    config: str,
    overrides: tuple[str, ...],
    prep_sizes: tuple[int, ...],
    epochs: int | None,
    variants: tuple[str, ...],
    out: str,
) -> None:
    if epochs is not None and epochs < 2:
        raise click.BadParameter(
            f"expected at least 2 (the first is warm-up), received {epochs}", param_hint="--epochs"
        )
    name = "tiny" if tiny else "quick" if quick else "full"
    mode = MODES[name]
    if epochs is not None:
        mode = Mode(**{**asdict(mode), "epochs": epochs})
    if variants:
        mode = Mode(**{**asdict(mode), "variants": tuple(dict.fromkeys(("default", *variants)))})
    try:
        result = run_benchmark(mode, config, overrides, prep_sizes)
    except ConvtrainError as exc:  # no dataset, a bad config: one line and exit 2, as convtrain
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    path = Path(out) / f"{datetime.now(timezone.utc):%Y-%m-%d}-{name}.json"
    atomic_write_json(path, result)
    print(format_table(result))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
