"""Every file convtrain writes and reads back is a typed record that rejects a damaged copy of
itself with one line: the file, the field, what was expected and what was received."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convtrain.data.cache import Manifest
from convtrain.data.split import Split
from convtrain.data.verify import Marker
from convtrain.errors import ConvtrainError
from convtrain.evaluate.summary import MetricsRecord
from convtrain.records import Record
from convtrain.train.environment import Cpu, Distribution, Environment, Resumed
from convtrain.train.state import Monitor, Owner, PlateauState, TrainState


def _state() -> TrainState:
    state = TrainState.begin(4, Monitor("val_accuracy", "max"), plateau=PlateauState(lr=0.1))
    for epoch, acc in ((1, 0.5), (2, 0.75)):
        state.record({"epoch": epoch, "loss": 1.0 / epoch, "val_accuracy": acc, "lr": 0.1})
    state.owner = Owner(hostname="host", pid=42)
    return state


DISTRIBUTION = Distribution(
    strategy="auto",
    tf_strategy="_DefaultDistributionStrategy",
    replicas=1,
    global_batch=8,
    per_replica_batch=8,
    learning_rate=0.01,
)

SAMPLES: dict[str, Record] = {
    "state.json": _state(),
    "split.json": Split(
        classes=("a", "b"),
        train=(("a/1.jpg", 0), ("b/1.jpg", 1)),
        val=(("a/2.jpg", 0),),
        test=(("b/2.jpg", 1),),
        protocol={"method": "stratified", "seed": 3},
    ),
    "environment.json": Environment(
        convtrain="0.1.0",
        tensorflow="2.21.0",
        keras="3.15.1",
        python="3.11.7",
        numpy="2.4.6",
        platform="Linux",
        seed=3,
        cpu=Cpu(model="AMD EPYC", count=2),
        gpus=[],
        start_time="2026-12-01T20:25:40+00:00",
        command_line="convtrain train cfg.yaml",
        hostname="host",
        resumed=[
            Resumed(
                start_time="2026-12-01T21:00:00+00:00",
                command_line="convtrain train --resume runs/x",
                hostname="host",
                seed=5,
                completed_epochs=2,
                distribute=DISTRIBUTION,
            )
        ],
        distribute=DISTRIBUTION,
    ),
    "reports/metrics.json": MetricsRecord(
        checkpoint="best",
        split="test",
        num_images=9,
        num_classes=3,
        accuracy=0.6667,
        mean_per_class_accuracy=0.6667,
        top_k=2,
        top_k_accuracy=0.8889,
    ),
    "cache/manifest.json": Manifest(
        format=1,
        decoder_version=1,
        root="/data/101_ObjectCategories",
        image_size=(16, 16),
        resize="stretch",
        color_mode="rgb",
        images="images-0123456789ab.npy",
        shape=(2, 16, 16, 3),
        files=[("a/1.jpg", 1234, 1700000000000000000), ("b/1.jpg", 99, 1700000000000000001)],
        failed={"b/2.jpg": "cannot decode the image (truncated)"},
    ),
    "101_ObjectCategories/.convtrain-dataset.json": Marker.create(
        "caltech-101.zip", "ab" * 32, True, {"a": 2, "b": 2}
    ),
}
NAMES = list(SAMPLES)
# A value no field of any record accepts: every field's error is then that field's.
WRONG = [[["?"]]]


def _written(tmp_path: Path, name: str) -> tuple[Path, Record]:
    record = SAMPLES[name]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    record.write(path)
    return path, record


def _one_line(error: ConvtrainError, path: Path) -> str:
    text = str(error)
    assert "\n" not in text and text.startswith(f"{path}: "), text
    return text.removeprefix(f"{path}: ")


@pytest.mark.parametrize("name", NAMES)
def test_every_record_reads_back_what_it_wrote(tmp_path: Path, name: str) -> None:
    path, record = _written(tmp_path, name)
    assert type(record).read(path) == record
    assert type(record).read(path).dumps() == path.read_text()


@pytest.mark.parametrize("name", NAMES)
def test_every_record_rejects_each_field_with_the_wrong_value_in_one_line(
    tmp_path: Path, name: str
) -> None:
    path, record = _written(tmp_path, name)
    good = json.loads(path.read_text())
    for field in good:
        if field not in type(record).model_fields:
            continue  # written for readers (split.json's counts), not read back
        path.write_text(json.dumps({**good, field: WRONG}))
        with pytest.raises(ConvtrainError) as info:
            type(record).read(path)
        line = _one_line(info.value, path)
        assert line.startswith(field) and "expected " in line, line
        assert "received [" in line, line


@pytest.mark.parametrize("name", NAMES)
def test_every_record_rejects_a_truncated_copy_in_one_line(tmp_path: Path, name: str) -> None:
    path, record = _written(tmp_path, name)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ConvtrainError) as info:
        type(record).read(path)
    assert _one_line(info.value, path).startswith("expected JSON, received invalid text (")


@pytest.mark.parametrize("name", NAMES)
def test_every_record_rejects_a_foreign_file_in_one_line(tmp_path: Path, name: str) -> None:
    path, record = _written(tmp_path, name)
    other = NAMES[(NAMES.index(name) + 1) % len(NAMES)]
    path.write_text(SAMPLES[other].dumps())  # another convtrain file, in this one's place
    with pytest.raises(ConvtrainError) as info:
        type(record).read(path)
    line = _one_line(info.value, path)
    assert "expected " in line and ", received " in line, line
    path.write_text("[1, 2, 3]")
    with pytest.raises(ConvtrainError) as info:
        type(record).read(path)
    assert _one_line(info.value, path) == "expected a JSON object, received list"


def test_a_missing_record_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConvtrainError) as info:
        TrainState.read(tmp_path / "state.json")
    assert str(info.value) == f"{tmp_path / 'state.json'}: missing from the run directory"
