from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convtrain.data.cache as cache_module
from convtrain.config.load import validate
from convtrain.config.schema import Experiment
from convtrain.data.cache import open_cache
from convtrain.data.index import index_dataset
from convtrain.data.pipeline import make_datasets, make_eval_dataset
from convtrain.data.split import make_split
from convtrain.errors import ConvtrainError

MODEL = {
    "layers": [{"type": "flatten"}, {"type": "dense", "units": "classes", "activation": "softmax"}]
}
AUGMENT = {"horizontal_flip": True, "rotation": 20, "zoom": 0.1, "brightness": 0.1}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVTRAIN_DATA_ROOT", raising=False)
    monkeypatch.delenv("CONVTRAIN_CACHE_DIR", raising=False)


def experiment(
    root: Path, tmp_path: Path, seed: int = 42, augment: Any = None, **data
) -> Experiment:
    raw = {
        "seed": seed,
        "data": {
            "root": str(root),
            "cache_dir": str(tmp_path / "cache"),
            "image_size": [16, 12],
            **data,
        },
        "augment": AUGMENT if augment is None else augment,
        "train": {"batch_size": 8},
        "model": MODEL,
    }
    return validate(raw)


def _raw(exp: Experiment, items) -> np.ndarray:
    """The cached images of `items`, scaled as the pipeline scales them."""
    cache = open_cache(index_dataset(exp.data), exp.data)
    return np.stack([cache.images[cache.rows[p]] for p, _ in items]).astype(np.float32) / 255.0


def test_element_spec_and_sizes(synthetic_root: Path, tmp_path: Path) -> None:
    exp = experiment(synthetic_root, tmp_path)
    split = make_split(exp)
    ds = make_datasets(exp, split)
    assert ds.split is split
    assert ds.steps_per_epoch == 4  # 28 training images in batches of 8
    assert int(ds.train.cardinality()) == 4  # known, so Keras shows progress and epochs end
    for dataset in (ds.train, ds.val, ds.test):
        images, labels = dataset.element_spec
        assert images.shape.as_list() == [None, 16, 12, 3] and images.dtype.name == "float32"
        assert labels.shape.as_list() == [None, 3] and labels.dtype.name == "float32"
    batches = list(ds.train)
    assert [len(x) for x, _ in batches] == [8, 8, 8, 4]
    x, y = batches[0]
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
    np.testing.assert_array_equal(np.sum(y, axis=1), np.ones(8))


def test_same_seed_same_batches_other_seed_differs(synthetic_root: Path, tmp_path: Path) -> None:
    first = experiment(synthetic_root, tmp_path, seed=3)
    split = make_split(first)
    a = next(iter(make_datasets(first, split).train))
    b = next(iter(make_datasets(first, split).train))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = next(iter(make_datasets(experiment(synthetic_root, tmp_path, seed=4), split).train))
    assert not np.array_equal(a[0], c[0])


def test_each_epoch_reshuffles_and_reaugments(synthetic_root: Path, tmp_path: Path) -> None:
    exp = experiment(synthetic_root, tmp_path)
    ds = make_datasets(exp, make_split(exp))
    one = [(x.numpy(), y.numpy()) for x, y in ds.train]
    two = [(x.numpy(), y.numpy()) for x, y in ds.train]
    labels_one = np.concatenate([y for _, y in one]).argmax(1)
    labels_two = np.concatenate([y for _, y in two]).argmax(1)
    assert sorted(labels_one) == sorted(labels_two)
    assert not np.array_equal(one[0][0], two[0][0])


def test_augmentation_is_applied_to_training_only(synthetic_root: Path, tmp_path: Path) -> None:
    exp = experiment(synthetic_root, tmp_path, augment={"rotation": 40, "brightness": 0.2})
    split = make_split(exp)
    ds = make_datasets(exp, split)
    test = np.concatenate([x.numpy() for x, _ in ds.test])
    np.testing.assert_array_equal(test, _raw(exp, split.test))  # in split order, untouched
    val = np.concatenate([x.numpy() for x, _ in ds.val])
    np.testing.assert_array_equal(val, _raw(exp, split.val))
    train = np.concatenate([x.numpy() for x, _ in ds.train])
    raw = _raw(exp, split.train)
    assert not any(np.array_equal(t, r) for t in train for r in raw)
    # Without augmentation the training images are the cached ones, shuffled.
    plain = experiment(synthetic_root, tmp_path, augment={})
    unaugmented = np.concatenate([x.numpy() for x, _ in make_datasets(plain, split).train])
    order = lambda a: a[np.lexsort(a.reshape(len(a), -1).T)]  # noqa: E731
    np.testing.assert_array_equal(order(unaugmented), order(raw))


def test_no_validation_split_gives_none(synthetic_root: Path, tmp_path: Path) -> None:
    split_cfg = {"method": "per_class", "train_per_class": 4, "test_per_class": 3}
    exp = experiment(synthetic_root, tmp_path, split=split_cfg)
    ds = make_datasets(exp, make_split(exp))
    assert ds.val is None
    assert sum(len(x) for x, _ in ds.test) == 9


def test_prepared_cache_is_not_decoded_again(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = experiment(synthetic_root, tmp_path)
    split = make_split(exp)

    def fail(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_module, "decode_image", fail)
    ds = make_datasets(exp, split)
    assert sum(len(x) for x, _ in ds.train) == 28


def test_eval_dataset_keeps_order(synthetic_root: Path, tmp_path: Path) -> None:
    exp = experiment(synthetic_root, tmp_path)
    split = make_split(exp)
    items = list(reversed(split.test))
    batches = list(make_eval_dataset(exp, items, num_classes=5))
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(images, _raw(exp, items))
    assert labels.shape == (len(items), 5)
    assert labels.argmax(1).tolist() == [label for _, label in items]
    with pytest.raises(ConvtrainError, match="expected at least one image to evaluate"):
        make_eval_dataset(exp, [], num_classes=3)


def test_split_file_with_other_classes(synthetic_root: Path, tmp_path: Path) -> None:
    everything = experiment(synthetic_root, tmp_path)
    split = make_split(everything)
    path = tmp_path / "split.json"
    split.write(path)
    # The file, not data.classes, decides the classes.
    narrow = experiment(
        synthetic_root,
        tmp_path,
        classes=["alpha", "beta"],
        split={"method": "file", "file": str(path)},
    )
    loaded = make_split(narrow)
    ds = make_datasets(narrow, loaded)
    assert ds.train.element_spec[1].shape.as_list() == [None, 3]


def test_missing_image_is_a_clear_error(synthetic_root: Path, tmp_path: Path) -> None:
    exp = experiment(synthetic_root, tmp_path)
    split = make_split(exp)
    gone = split.train[0][0]
    (synthetic_root / gone).unlink()
    with pytest.raises(ConvtrainError) as err:
        make_datasets(exp, split)
    assert str(err.value) == (
        f"{synthetic_root}: expected every image of the split to be readable, received 1 that "
        f"are not (first: {gone}: not in the dataset folder)"
    )


def test_memory_mapped_and_resident_caches_give_the_same_batches(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small caches are copied into memory, large ones stay memory-mapped: same batches."""
    import convtrain.data.pipeline as pipeline

    exp = experiment(synthetic_root, tmp_path)
    split = make_split(exp)
    resident = [(x.numpy(), y.numpy()) for x, y in make_datasets(exp, split).train]
    eval_resident = [x.numpy() for x, _ in make_eval_dataset(exp, split.test, 3)]
    monkeypatch.setattr(pipeline, "IN_MEMORY_BYTES", 0)  # force the memory map
    mapped = [(x.numpy(), y.numpy()) for x, y in make_datasets(exp, split).train]
    eval_mapped = [x.numpy() for x, _ in make_eval_dataset(exp, split.test, 3)]
    assert len(resident) == len(mapped)
    for (xa, ya), (xb, yb) in zip(resident, mapped, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    for a, b in zip(eval_resident, eval_mapped, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.concatenate(eval_mapped), _raw(exp, split.test))


def test_training_batches_are_prepared_on_one_thread_when_the_cpu_trains(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """No GPU here: train.data_threads defaults to 1 (a parallel pipeline took cores from the
    training step); a configured count is used as given, with the same batches."""
    import tensorflow as tf

    from convtrain.data.pipeline import data_threads

    assert not tf.config.list_physical_devices("GPU")
    assert data_threads(None) == 1 and data_threads(3) == 3
    exp = experiment(synthetic_root, tmp_path)
    split = make_split(exp)
    default = make_datasets(exp, split).train
    assert default.options().threading.private_threadpool_size == 1
    three = validate({**exp.model_dump(mode="json"), "train": {"batch_size": 8, "data_threads": 3}})
    wider = make_datasets(three, split).train
    assert wider.options().threading.private_threadpool_size == 3
    for a, b in zip(default, wider, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
