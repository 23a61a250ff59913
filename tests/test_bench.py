"""benchmarks/: each piece on a tiny synthetic dataset (correctness of the measurements' plumbing,
never their speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, make_dataset

sys.path.insert(0, str(REPO))  # benchmarks/ is a folder of the repository, not installed

from benchmarks import measure  # noqa: E402
from benchmarks.bench import MODES, summarise, variant_epochs  # noqa: E402
from benchmarks.handloop import steady_rate  # noqa: E402

TINY_CONFIG = """\
name: tiny
seed: 1
data:
  root: {root}
  image_size: 16
  split: {{method: stratified, val: 0.2, test: 0.25}}
augment: {{rotation: 10, horizontal_flip: true}}
model:
  layers:
    - {{type: conv2d, filters: 4, kernel_size: 3, strides: 2, activation: relu}}
    - {{type: global_avg_pool}}
train: {{epochs: 1, batch_size: 8}}
"""


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(config, dataset root): three classes of 16 images, caches under tmp_path."""
    root = make_dataset(tmp_path / "ds", {"alpha": 16, "beta": 16, "gamma": 16})
    monkeypatch.setenv("CONVTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(root=root))
    return config, root


def test_steady_rate_drops_the_first_epoch() -> None:
    assert steady_rate(100, [10.0, 1.0, 2.0, 4.0]) == 50.0
    assert steady_rate(100, [4.0]) == 25.0


def test_the_xla_variant_trains_at_most_three_epochs() -> None:
    full = MODES["full"]
    assert full.epochs == 5
    assert variant_epochs(full, "xla") == 3
    assert variant_epochs(full, "bfloat16") == 5
    assert variant_epochs(MODES["tiny"], "xla") == 2


def test_summary_ratios_of_known_measurements() -> None:
    def variant(convtrain: float, reference: float, hand: float, augmented: float | None) -> dict:
        return {
            "convtrain_images_per_s": convtrain,
            "reference_images_per_s": reference,
            "hand_images_per_s": hand,
            "hand_augmented_images_per_s": augmented,
            "eval_images_per_s": 500.0,
            "test_accuracy": 0.5,
        }

    result = {
        "variants": {
            "default": variant(120, 100, 150, 96),
            "bfloat16": variant(180, 100, 300, None),
        },
        "matmul_flops": {"float32": 1e11},
        "flops": {"train_per_image": 1e8},
    }
    summary = summarise(result)
    assert summary["convtrain_over_plain_keras_loop"] == 1.2
    assert summary["convtrain_over_hand_loop"] == 0.8
    assert summary["convtrain_over_hand_loop_same_work"] == 1.25
    assert (summary["achieved_gflops"], summary["fraction_of_matmul_rate"]) == (12.0, 0.12)
    options = summary["options"]["bfloat16"]
    assert (options["speedup_convtrain"], options["speedup_normalised"]) == (1.5, 1.5)
    assert (options["speedup_hand_loop"], options["convtrain_over_hand_loop"]) == (2.0, 0.6)
    # Without an augmented hand loop the model-only loop is the same work.
    result["variants"]["default"]["hand_augmented_images_per_s"] = None
    assert summarise(result)["convtrain_over_hand_loop_same_work"] == 0.8


def test_preparation_cold_then_warm(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", {"a": 5, "b": 7})
    (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    prep = measure.preparation(root, 16, tmp_path / "work")
    assert prep["images"] == 12 and prep["skipped"] == 1
    assert prep["cache_mb"] == round(13 * 16 * 16 * 3 / 1e6, 1)
    assert prep["cold_s"] > 0 and prep["warm_s"] > 0


def test_child_failure_names_the_command() -> None:
    with pytest.raises(RuntimeError, match=r"benchmarks\.measure matmul x 1 failed"):
        measure.child("matmul", "x", "1")


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    config, root = tiny
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--tiny", "--config", str(config)]
        + ["--prep-size", "16", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*-tiny.json")
    result = json.loads(path.read_text())
    assert f"results: {path}" in done.stdout
    assert "ratio convtrain / plain Keras loop (target >= 1.0)" in done.stdout
    assert "ratio convtrain / hand loop, same options, model only" in done.stdout
    assert "ratio convtrain / hand loop, same options, same work" in done.stdout

    base = result["variants"]["default"]
    # 48 images: stratified test 0.25 and val 0.2 of each class of 16 leave 9 to train.
    assert base["train_images"] == 27 and base["test_images"] == 12
    assert len(base["convtrain_epoch_seconds"]) == len(base["hand_epoch_seconds"]) == 2
    assert set(result["variants"]) == {"default", "no_augment", "iterator_per_epoch"}
    assert result["variants"]["no_augment"]["overrides"] == ["augment={}"]
    assert result["variants"]["iterator_per_epoch"]["fresh_iterators"] is True
    assert result["variants"]["default"]["fresh_iterators"] is False
    # The config augments: the same-work hand loop augments too; without augmentation the
    # model-only loop is already the same work.
    assert len(base["hand_augmented_epoch_seconds"]) == 2
    no_augment = result["variants"]["no_augment"]
    assert no_augment["hand_augmented_epoch_seconds"] == []
    assert no_augment["hand_augmented_images_per_s"] is None
    # Only the default variant runs the same-work loop: the summary compares the same work there.
    assert result["variants"]["iterator_per_epoch"]["hand_augmented_epoch_seconds"] == []
    summary = result["summary"]
    assert summary["plain_keras_loop_images_per_s"] == base["reference_images_per_s"]
    assert summary["hand_loop_same_work_images_per_s"] == base["hand_augmented_images_per_s"]
    # What is printed is what the file holds.
    for label, key in (
        ("ratio convtrain / plain Keras loop (target >= 1.0)", "convtrain_over_plain_keras_loop"),
        ("ratio convtrain / hand loop, same options, model only", "convtrain_over_hand_loop"),
        (
            "ratio convtrain / hand loop, same options, same work",
            "convtrain_over_hand_loop_same_work",
        ),
    ):
        (line,) = [ln for ln in done.stdout.splitlines() if ln.strip().startswith(label)]
        assert line.split()[-1] == str(summary[key])
    # FLOPs per image from inspect: the valid 3x3 conv, stride 2 (7x7x4 outputs, 27 MACs each), and the 4->3 head.
    forward = 2 * (7 * 7 * 4 * 27 + 4 * 3)
    assert result["flops"] == {"forward_per_image": forward, "train_per_image": 3 * forward}
    assert result["matmul_flops"]["float32"] > 0
    assert [p["images"] for p in result["preparation"]] == [48]
    assert result["streaming"]["images"] == 48
    assert result["training_run"]["peak_rss_mb"] > 0
    assert 0.0 <= result["training_run"]["test_accuracy"] <= 1.0
    assert set(result["startup_s"]) == {"convtrain --help", f"convtrain inspect {config}"}
    assert len(result["loadavg_before"]) == len(result["loadavg_after"]) == 3
    for name in result["variants"]:
        assert f"  {name} " in done.stdout


def test_repeated_pipeline_gives_the_epochs_of_fresh_iterators(tiny: tuple[Path, Path]) -> None:
    """The trainer feeds fit() the repeated pipeline (one iterator, no stall at each epoch's
    start); its epochs must be the batches fresh iterators give: same order, same augmentation."""
    import numpy as np

    from convtrain.config.load import load_config
    from convtrain.data.pipeline import make_datasets
    from convtrain.data.split import make_split

    config, _ = tiny

    def epochs_of(repeated: bool) -> list[np.ndarray]:
        experiment = load_config(config)
        datasets = make_datasets(experiment, make_split(experiment))
        steps = datasets.steps_per_epoch
        if repeated:
            batches = list(datasets.train.repeat().take(2 * steps))
        else:
            batches = [*datasets.train, *datasets.train]
        return [
            np.concatenate([x.numpy() for x, _ in batches[i * steps : (i + 1) * steps]])
            for i in range(2)
        ]

    fresh, repeated = epochs_of(False), epochs_of(True)
    assert not np.array_equal(fresh[0], fresh[1])  # a new order and new draws every epoch
    for a, b in zip(fresh, repeated, strict=True):
        np.testing.assert_array_equal(a, b)


def test_same_work_hand_loop_augments_its_batches(tiny: tuple[Path, Path]) -> None:
    """HandLoop(augment=True) feeds the model augmented batches, redrawn at every step; the
    model-only loop feeds the images as they are."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.handloop import HandLoop
    from convtrain.config.load import load_config
    from convtrain.train.session import keras_session

    config, _ = tiny
    experiment = load_config(config)
    index = tf.constant(np.arange(8))
    with keras_session(experiment, experiment.seed):
        plain, augmented = HandLoop(experiment), HandLoop(experiment, augment=True)

        def batch(loop: HandLoop, draw: int) -> np.ndarray:
            seed = tf.constant([draw, 0], tf.int64)
            return loop._batch_fn(loop._x, loop._y, index, seed)[0].numpy()

        np.testing.assert_array_equal(batch(plain, 1), plain._x.numpy()[:8])
        first, second = batch(augmented, 1), batch(augmented, 2)
    assert first.shape == second.shape == plain._x.numpy()[:8].shape
    assert not np.array_equal(first, plain._x.numpy()[:8])
    assert not np.array_equal(first, second)
    assert augmented.epoch() > 0


def test_the_reference_loop_is_plain_keras(tiny: tuple[Path, Path]) -> None:
    """The target's reference is the model written with stock Keras: whatever the variant's
    options, its batch norm is Keras's own, in float32; the variant's hand loop follows them."""
    from benchmarks.handloop import HandLoop, is_plain, reference_loop
    from convtrain.config.load import load_config
    from convtrain.train.session import keras_session

    config, _ = tiny
    bn = (
        "model.layers=[{type: conv2d, filters: 4, kernel_size: 3}, {type: batch_norm}, "
        "{type: global_avg_pool}]"
    )
    experiment = load_config(config, [bn, "train.mixed_precision=bfloat16"])
    assert experiment.train.fused_batch_norm and not is_plain(experiment)
    with keras_session(experiment, experiment.seed):
        variant, reference = HandLoop(experiment), reference_loop(experiment)

    def ops(loop: HandLoop) -> set[str]:
        graph = loop._step.get_concrete_function(loop._x[:8], loop._y[:8]).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in ops(variant) and "FusedBatchNormV3" not in ops(reference)
    assert reference.epoch() > 0


def test_steps_per_execution_and_threads_reach_tensorflow(tiny: tuple[Path, Path]) -> None:
    """train.steps_per_execution is compiled into the model; train.threads sizes TensorFlow's
    intra-op pool (process-wide, hence a fresh interpreter)."""
    config, _ = tiny
    code = (
        "from convtrain.config.load import load_config\n"
        "from convtrain.model.build import build_model\n"
        "from convtrain.train.fit import compile_model\n"
        "from convtrain.train.session import keras_session\n"
        "import tensorflow as tf\n"
        f"e = load_config({str(config)!r}, ['train.steps_per_execution=4', 'train.threads=1'])\n"
        "with keras_session(e, e.seed):\n"
        "    m = build_model(e, 3)\n"
        "    compile_model(m, e, 3)\n"
        "print(m.steps_per_execution, tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.split()[-2:] == ["4", "1"]


def test_missing_dataset_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--tiny", "--set", f"data.root={missing}"]
        + ["--out", str(tmp_path / "results")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {missing}: dataset folder not found")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()
