"""`convtrain explain` on runs trained here, with a known answer: the class is the colour of a
square placed anywhere on a noisy image, so after a short training a Grad-CAM that works peaks
on the square, wherever it is. The model has a global-pool head: a class given by position could
not be learned through a global pool, and a flatten head would give Grad-CAM no spatial
weighting. A grayscale run trained in bfloat16 (bright against dark squares) must do the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from convtrain.cli import main
from convtrain.explain.records import Explanation
from convtrain.rundir import RunDir

SIZE, SIDE = 32, 8
COLOURS = {"blue": (40, 70, 230), "green": (40, 200, 60), "red": (230, 40, 40)}
GRAYS = {"bright": (235,), "dark": (20,)}
# Where the known-answer images put the square: corners, edges and the middle.
PLACES = [(0, 0), (0, 24), (24, 0), (24, 24), (12, 12), (3, 17), (20, 9)]


def square(rng: np.random.Generator, colour: tuple, top: int, left: int) -> np.ndarray:
    channels = len(colour)
    # Gray noise (the same in every channel): colour is only in the square.
    img = np.repeat(rng.normal(128, 32, (SIZE, SIZE, 1)), channels, axis=-1)
    img[top : top + SIDE, left : left + SIDE] = np.array(colour) + rng.normal(
        0, 8, (SIDE, SIDE, channels)
    )
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def write_squares(root: Path, colours: dict, per_class: int, seed: int) -> Path:
    """`root/101_ObjectCategories/<colour>/image_NNNN.png`, the square anywhere (PNG: exact)."""
    rng = np.random.default_rng(seed)
    base = root / "101_ObjectCategories"
    for name, colour in colours.items():
        (base / name).mkdir(parents=True)
        for i in range(per_class):
            top, left = rng.integers(0, SIZE - SIDE + 1, size=2)
            Image.fromarray(square(rng, colour, top, left)).save(
                base / name / f"image_{i + 1:04d}.png"
            )
    return base


def train(base: Path, colours: dict, **train_options) -> RunDir:
    from convtrain.commands import main

    root = write_squares(base / "data", colours, per_class=30, seed=1)
    config = {
        "name": "squares",
        "seed": 0,
        "data": {"root": str(root), "cache_dir": str(base / "cache"), "image_size": SIZE,
                 "color_mode": "rgb" if len(next(iter(colours.values()))) == 3 else "grayscale",
                 "split": {"method": "stratified", "val": 0.15, "test": 0.2}},
        "model": {
            "defaults": {"conv2d": {"filters": 16, "kernel_size": 3, "padding": "same",
                                    "activation": "relu", "kernel_initializer": "he_normal"}},
            "layers": [{"type": "conv2d"}, {"type": "conv2d"}, {"type": "global_avg_pool"}]},
        # Measured: 4 of 4 seeds learn it (a global average dilutes the square: smaller rates
        # or batches of 16 stalled for a while in some runs).
        "train": {"epochs": 20, "batch_size": 8, "optimizer": {"type": "adam", "learning_rate": 0.005},
                  "monitor": "val_loss",
                  **train_options},
        "eval": {"top_k": 2},
    }  # fmt: skip
    path = base / "squares.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as done:  # `convtrain train`, in this process
        main(["train", str(path), "--runs-dir", str(base / "runs")])
    assert done.value.code == 0
    (run,) = (base / "runs").iterdir()
    return RunDir(run)


@pytest.fixture(scope="module")
def square_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return train(tmp_path_factory.mktemp("squares"), COLOURS)


@pytest.fixture(scope="module")
def gray_bf16_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return train(tmp_path_factory.mktemp("gray"), GRAYS, mixed_precision="bfloat16")


def placed(tmp: Path, colours: dict, seed: int = 7) -> list[tuple[str, str, int, int]]:
    """New images (never trained on): every colour at every place. (path, class, top, left)."""
    rng = np.random.default_rng(seed)
    out = []
    for name, colour in colours.items():
        for top, left in PLACES:
            path = tmp / f"{name}-{top}-{left}.png"
            Image.fromarray(square(rng, colour, top, left)).save(path)
            out.append((str(path), name, top, left))
    return out


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def assert_peaks_on_the_square(result: Explanation, images: list) -> None:
    for record, (_, name, top, left) in zip(result.images, images, strict=True):
        assert record.predictions[0].class_name == name, record.image
        (g,) = [g for g in record.gradcam if g.role == "predicted"]
        assert g.peak is not None and g.strength > 0
        row, col = g.peak
        assert top <= row < top + SIDE and left <= col < left + SIDE, (record.image, g.peak)


def test_gradcam_peaks_on_the_square_wherever_it_is_put(square_run, tmp_path) -> None:
    from convtrain.explain.run import explain

    images = placed(tmp_path, COLOURS)
    result = explain(square_run.path, [p for p, *_ in images], pictures=False)
    assert result.failed == [] and len(result.images) == len(images)
    assert_peaks_on_the_square(result, images)


def test_a_grayscale_bfloat16_run_is_explained_the_same_way(gray_bf16_run, tmp_path) -> None:
    import keras

    from convtrain.explain.run import explain

    model = keras.models.load_model(gray_bf16_run.checkpoint("best"), compile=False)
    assert model.get_layer("conv2d_1").compute_dtype == "bfloat16"  # it computes in bfloat16
    images = placed(tmp_path, GRAYS)
    result = explain(gray_bf16_run.path, [p for p, *_ in images], pictures=False)
    assert result.failed == []
    assert_peaks_on_the_square(result, images)
    assert all(
        r.receptive_field.effective.inside_share == pytest.approx(1.0) for r in result.images
    )
    # and its pictures: a grayscale image is drawn, every file is written
    out = tmp_path / "out"
    drawn = explain(gray_bf16_run.path, [images[0][0]], out=out)
    assert [Path(p).name for p in (drawn.images[0].png, drawn.html, drawn.filters_png)] == [
        "01-" + Path(images[0][0]).parent.name + "-" + Path(images[0][0]).stem + ".png",
        "explain.html",
        "filters.png",
    ]


def test_the_cli_prints_what_explain_json_holds_with_a_png_each(square_run, tmp_path, capsys):
    images = placed(tmp_path, COLOURS)[::7]  # one of each colour
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "explain", str(square_run.path), *[p for p, *_ in images],
                               "--out", str(out), "--format", "json", "--class", "red")  # fmt: skip
    assert code == 0, stderr
    result = Explanation.model_validate_json(stdout)
    assert Explanation.model_validate_json((out / "explain.json").read_text()) == result
    assert sorted(p.name for p in out.glob("*.png")) == sorted(
        [Path(r.png).name for r in result.images] + ["filters.png"]
    )
    page = (out / "explain.html").read_text()
    assert all(f'src="{Path(r.png).name}"' in page for r in result.images)
    for r in result.images:  # not files of the split: no true class; --class adds its map
        assert r.true_class is None and r.split is None
        assert [(g.role, g.class_name) for g in r.gradcam][1:] == [("requested", "red")]
    code, table, _ = cli(capsys, "explain", str(square_run.path), images[0][0], "--out", str(out))
    assert code == 0
    assert table.splitlines()[0] == f"{images[0][0]}  [not in the split]"
    assert f"wrote {out / 'explain.html'}" in table


def test_gradcam_is_the_gradient_of_the_score_before_the_softmax(square_run, tmp_path) -> None:
    """An independent Grad-CAM: the head cloned with a linear activation, Keras and numpy only."""
    import keras
    import tensorflow as tf

    from convtrain.config.load import load_config
    from convtrain.explain import geometry
    from convtrain.explain.probe import Probe
    from convtrain.model.plan import plan_model

    model = keras.models.load_model(square_run.checkpoint("best"), safe_mode=True, compile=False)
    head = model.layers[-1]
    linear = keras.layers.Dense(head.units, activation=None)
    features = model.get_layer("conv2d_2").output
    oracle = keras.Model(model.inputs, [features, linear(head.input)])
    linear.set_weights(head.get_weights())
    rng = np.random.default_rng(5)
    x = np.stack([square(rng, COLOURS[c], 4, 20) for c in sorted(COLOURS)]).astype("float32") / 255
    with tf.GradientTape() as tape:
        a, logits = oracle(x)
        chosen = tf.reduce_sum(logits * tf.one_hot(tf.argmax(logits, axis=1), head.units))
    weights = tf.reduce_mean(tape.gradient(chosen, a), axis=(1, 2), keepdims=True)
    expected = np.maximum(tf.reduce_sum(weights * a, axis=-1).numpy(), 0)

    plan = plan_model(load_config(square_run.config), len(COLOURS))
    probed = Probe(model, geometry.choose_layer(plan, None))(x)
    np.testing.assert_allclose(probed.cams["predicted"], expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(probed.probs, model.predict(x, verbose=0), atol=1e-6)


def test_split_images_keep_their_true_class_and_predictions_are_predicts(square_run, capsys):
    from convtrain.evaluate.predict import predict_images
    from convtrain.explain.run import explain

    result = explain(square_run.path, split="test", per_class=2, pictures=False)
    split = json.loads(square_run.split.read_text())
    firsts: dict[int, list[str]] = {}
    for path, label in split["test"]:
        firsts.setdefault(label, []).append(path)
    assert [(r.image, r.true_class, r.split) for r in result.images] == [
        (p, split["classes"][label], "test")
        for label in sorted(firsts)
        for p in sorted(firsts[label][:2])
    ]
    for r in result.images:
        assert [g.role for g in r.gradcam] == ["predicted", "true"]
    root = Path(yaml.safe_load(square_run.config.read_text())["data"]["root"])
    predicted = predict_images(square_run, [root / r.image for r in result.images], 2, "best")
    for r, p in zip(result.images, predicted, strict=True):
        assert [
            (c.class_name, pytest.approx(c.probability, abs=1e-6)) for c in r.predictions
        ] == list(p.top)
    # a named file of the split is recognised as one
    named = explain(square_run.path, [str(root / result.images[0].image)], pictures=False)
    assert named.images[0].true_class == result.images[0].true_class


def test_unreadable_images_get_one_line_each_and_the_others_go_through(
    square_run, tmp_path, capsys
):
    good = placed(tmp_path, COLOURS)[0][0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    missing = tmp_path / "missing.jpg"
    code, stdout, stderr = cli(capsys, "explain", str(square_run.path), str(broken), good,
                               str(missing), "--format", "json", "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 2  # as predict: an unreadable image is the user's mistake
    result = Explanation.model_validate_json(stdout)
    assert [r.image for r in result.images] == [good]
    assert stderr.splitlines() == [
        f"error: {broken}: cannot decode the image (not an image)",
        f"error: {missing}: no such image file",
    ]
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--layer", "conv9"], "error: --layer: expected the name of a layer with a spatial "
         "output, one of conv2d_1, conv2d_2; received 'conv9', which is not a layer of this model"),
        (["--layer", "global_avg_pool_1"], "error: --layer: expected a layer with a spatial output"),
        (["--class", "purple"], "error: --class: expected one of the run's classes (blue, green, "
         "red), received 'purple'"),
        ([], "error: explain: expected IMAGE files or --split test|val|train"),
    ],
)  # fmt: skip
def test_bad_options_are_one_line_and_exit_2(square_run, tmp_path, capsys, args, expected):
    images = [] if not args else [placed(tmp_path, COLOURS)[0][0]]
    code, stdout, stderr = cli(capsys, "explain", str(square_run.path), *images, *args)
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith(expected), stderr
    assert not (square_run.path / "explain").exists()  # nothing written


def test_filters_show_the_change_from_the_initial_checkpoint(square_run) -> None:
    import keras

    from convtrain.config.load import load_config
    from convtrain.explain import geometry
    from convtrain.explain.filters import kernels
    from convtrain.model.plan import plan_model

    best = keras.models.load_model(square_run.checkpoint("best"), compile=False)
    initial = keras.models.load_model(square_run.checkpoint("initial"), compile=False)
    plan = plan_model(load_config(square_run.config), len(COLOURS))
    found = kernels(best, initial, geometry.conv_layers(plan), plan.input)
    assert [k.mode for k in found] == ["rgb", "channels"]
    for k in found:
        w = best.get_layer(k.layer.name).kernel.numpy()
        w0 = initial.get_layer(k.layer.name).kernel.numpy()
        assert k.relative_change == pytest.approx(np.linalg.norm(w - w0) / np.linalg.norm(w0))
        assert k.relative_change > 0.05  # training moved them


def test_evaluate_shows_what_the_network_looks_at(square_run) -> None:
    """The training's own evaluation drew the Grad-CAM section into plots/ and report.html."""
    plot = square_run.plots / "what_the_network_looks_at.png"
    assert plot.is_file() and Image.open(plot).size[0] > 400
    page = (square_run.path / "report.html").read_text()
    assert "<h2>what the network looks at</h2>" in page
