from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from convtrain.config.load import validate
from convtrain.config.schema import Experiment
from convtrain.data.split import Split, make_split
from convtrain.errors import ConvtrainError

MODEL = {
    "layers": [{"type": "flatten"}, {"type": "dense", "units": "classes", "activation": "softmax"}]
}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVTRAIN_DATA_ROOT", raising=False)
    monkeypatch.delenv("CONVTRAIN_CACHE_DIR", raising=False)


def experiment(
    root: Path, cache: Path, split: dict[str, Any], seed: int = 42, **data
) -> Experiment:
    raw = {
        "seed": seed,
        "data": {
            "root": str(root),
            "cache_dir": str(cache),
            "image_size": 16,
            "split": split,
            **data,
        },
        "model": MODEL,
    }
    return validate(raw)


def _by_class(items: tuple[tuple[str, int], ...], n: int) -> list[int]:
    return np.bincount([label for _, label in items], minlength=n).tolist()


def test_stratified_sizes_and_disjoint_parts(synthetic_root: Path, tmp_path: Path) -> None:
    exp = experiment(
        synthetic_root, tmp_path / "c", {"method": "stratified", "val": 0.1, "test": 0.2}
    )
    split = make_split(exp)
    assert split.classes == ("alpha", "beta", "gamma")
    # alpha: 12 + gray + tmp = 14 usable; 14 * 0.2 -> 3 test, 14 * 0.1 -> 1 val
    assert _by_class(split.test, 3) == [3, 2, 2]
    assert _by_class(split.val, 3) == [1, 1, 1]
    assert _by_class(split.train, 3) == [10, 9, 9]
    paths = [p for part in (split.train, split.val, split.test) for p, _ in part]
    assert len(paths) == len(set(paths)) == 38
    assert split.protocol["method"] == "stratified" and split.protocol["seed"] == 42
    assert ["alpha/notes.txt", "not an image"] in split.protocol["skipped"]


def test_deterministic_for_a_seed(synthetic_root: Path, tmp_path: Path) -> None:
    method = {"method": "stratified", "val": 0.2, "test": 0.3}
    a = make_split(experiment(synthetic_root, tmp_path / "c", method, seed=1))
    b = make_split(experiment(synthetic_root, tmp_path / "c", method, seed=1))
    c = make_split(experiment(synthetic_root, tmp_path / "c", method, seed=2))
    assert a == b
    assert a.test != c.test
    # split.seed takes precedence over the experiment seed
    d = make_split(experiment(synthetic_root, tmp_path / "c", {**method, "seed": 1}, seed=2))
    assert d.train == a.train and d.protocol["seed"] == 1


def test_adding_a_class_keeps_the_other_splits(tmp_path: Path) -> None:
    method = {"method": "stratified", "val": 0.2, "test": 0.2}
    small = make_dataset(tmp_path / "a", {"x": 10, "y": 10})
    large = make_dataset(tmp_path / "b", {"x": 10, "y": 10, "z": 10})
    two = make_split(experiment(small, tmp_path / "c", method))
    three = make_split(experiment(large, tmp_path / "c", method))
    assert [p for p, _ in three.test if not p.startswith("z/")] == [p for p, _ in two.test]


def test_per_class_protocol(synthetic_root: Path, tmp_path: Path) -> None:
    method = {"method": "per_class", "train_per_class": 5, "val_per_class": 2, "test_per_class": 4}
    split = make_split(experiment(synthetic_root, tmp_path / "c", method))
    assert _by_class(split.train, 3) == [5, 5, 5]
    assert _by_class(split.val, 3) == [2, 2, 2]
    assert _by_class(split.test, 3) == [4, 4, 4]
    too_many = {"method": "per_class", "train_per_class": 12}
    with pytest.raises(ConvtrainError) as err:
        make_split(experiment(synthetic_root, tmp_path / "c", too_many))
    assert str(err.value) == (
        "data.split: per_class needs at least 13 images in every class (train_per_class 12 + "
        "val_per_class 0 + 1 test image), received fewer in beta (12), gamma (12); lower "
        "train_per_class or use method: stratified"
    )


def test_files_failing_to_decode_are_dropped(synthetic_root: Path, tmp_path: Path) -> None:
    big = synthetic_root / "beta" / "image_big.jpg"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(big)
    cut = big.read_bytes()[: int(big.stat().st_size * 0.7)]  # header intact, data cut
    (synthetic_root / "beta" / "image_cut.jpg").write_bytes(cut)
    split = make_split(experiment(synthetic_root, tmp_path / "c", {"method": "stratified"}))
    paths = {p for part in (split.train, split.val, split.test) for p, _ in part}
    assert "beta/image_big.jpg" in paths and "beta/image_cut.jpg" not in paths
    reasons = dict(split.protocol["skipped"])
    assert reasons["beta/image_cut.jpg"].startswith(
        "cannot decode the image (image file is truncated"
    )


def test_file_round_trip_and_method_file(synthetic_root: Path, tmp_path: Path) -> None:
    split = make_split(experiment(synthetic_root, tmp_path / "c", {"method": "stratified"}, seed=7))
    path = tmp_path / "run" / "split.json"
    split.write(path)
    payload = json.loads(path.read_text())
    assert payload["classes"] == ["alpha", "beta", "gamma"]
    assert payload["counts"] == {"train": 28, "val": 3, "test": 7}
    assert payload["train"][0] == list(split.train[0])
    assert Split.read(path) == split
    loaded = make_split(
        experiment(synthetic_root, tmp_path / "c", {"method": "file", "file": str(path)})
    )
    assert loaded == split
    (synthetic_root / split.test[0][0]).unlink()
    with pytest.raises(ConvtrainError) as err:
        make_split(
            experiment(synthetic_root, tmp_path / "c", {"method": "file", "file": str(path)})
        )
    assert str(err.value) == (
        f"{path}: expected every listed image under {synthetic_root}, received 1 missing "
        f"(first: {split.test[0][0]}); is data.root the dataset the split was made from?"
    )


GOOD = {"classes": ["a", "b"], "train": [["a/1.jpg", 0]], "val": [], "test": [["b/2.jpg", 1]]}


@pytest.mark.parametrize(
    "payload,message",
    [
        ([], "expected a JSON object, received list"),
        ({"classes": ["a", "b"]}, "expected the keys train, val, test, received none"),
        (
            {**GOOD, "classes": ["a"]},
            "classes: expected a list of at least 2 folder names, received ['a']",
        ),
        (
            {**GOOD, "classes": ["a", "a"]},
            "classes: expected distinct names, received duplicates in ['a', 'a']",
        ),
        ({**GOOD, "train": {"a": 1}}, "train: expected a list, received {'a': 1}"),
        ({**GOOD, "train": [["a/1.jpg", 2]]}, "train[0]: expected a label in 0..1, received 2"),
        ({**GOOD, "train": [["a/1.jpg", True]]}, "train[0][1]: expected an integer, received True"),
        (
            {**GOOD, "train": [["../x/1.jpg", 0]]},
            "train[0]: expected a path 'class/file' inside the dataset root, received '../x/1.jpg'",
        ),
        (
            {**GOOD, "train": [["b/1.jpg", 0]]},
            "train[0]: label 0 is class 'a' but the file is in folder 'b'",
        ),
        ({**GOOD, "val": [["b/2.jpg", 1]]}, "test[0]: 'b/2.jpg' is listed twice (also in val[0])"),
        ({**GOOD, "test": []}, "test: expected at least one image, received an empty list"),
        ({**GOOD, "format": 2}, "format: expected one of 1, received 2"),
    ],
)
def test_malformed_split_file(payload: Any, message: str) -> None:
    with pytest.raises(ConvtrainError) as err:
        Split.parse(json.dumps(payload), "runs/x/split.json")
    assert str(err.value) == f"runs/x/split.json: {message}"


def test_unreadable_split_files(tmp_path: Path) -> None:
    with pytest.raises(ConvtrainError) as err:
        Split.read(tmp_path / "none.json")
    assert str(err.value) == (
        f"{tmp_path / 'none.json'}: no such split file; expected the split.json written by an "
        f"earlier run (runs/<name>-<timestamp>/split.json)"
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"classes": [,]}')
    with pytest.raises(ConvtrainError) as err:
        Split.read(bad)
    assert str(err.value) == (
        f"{bad}: expected JSON, received invalid text (expected value at line 1 column 14)"
    )


@pytest.mark.real_data
def test_real_caltech101_standard_protocol(real_root: Path, tmp_path: Path) -> None:
    exp = experiment(real_root, tmp_path / "c", {"method": "per_class"}, image_size=8)
    split = make_split(exp)
    assert len(split.classes) == 101
    assert _by_class(split.train, 101) == [30] * 101
    test = _by_class(split.test, 101)
    assert max(test) == 50 and min(test) == 1  # inline_skate: 31 images
    assert split.val == ()


def test_split_file_lists_one_image_per_line(tmp_path: Path) -> None:
    split = Split(
        classes=("a", "b"),
        train=(("a/1.jpg", 0), ("b/1.jpg", 1)),
        val=(),
        test=(("b/2.jpg", 1),),
        protocol={"seed": 3},
    )
    path = tmp_path / "split.json"
    split.write(path)
    lines = path.read_text().splitlines()
    assert lines[lines.index('  "train": [') + 1 : lines.index('  "train": [') + 3] == [
        '    ["a/1.jpg", 0],',
        '    ["b/1.jpg", 1]',
    ]
    assert '  "val": [],' in lines
    assert Split.read(path) == split
