from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_dataset

from convtrain.config.schema import DataConfig
from convtrain.data.index import index_dataset, resolve_root
from convtrain.errors import ConvtrainError


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVTRAIN_DATA_ROOT", raising=False)


def test_labels_are_sorted_folder_names_and_odd_files_are_reported(synthetic_root: Path) -> None:
    index = index_dataset(DataConfig(root=str(synthetic_root)))
    assert index.root == synthetic_root
    assert index.classes == ("alpha", "beta", "gamma")
    paths = dict(index.items)
    assert len(index.items) == 12 + 12 + 12 + 2  # + the grayscale JPEG and `tmp`
    assert paths["alpha/tmp"] == 0  # a JPEG without extension is an image
    assert paths["alpha/image_gray.jpg"] == 0
    assert paths["gamma/image_0012.jpg"] == 2
    assert [p for p, _ in index.items] == sorted(p for p, _ in index.items)
    skipped = dict(index.skipped)
    assert skipped["alpha/image_empty.jpg"] == "empty file"
    assert skipped["alpha/notes.txt"] == "not an image"
    # Cut at a third, this small JPEG loses its header: caught here, not at decode time.
    assert skipped["alpha/image_truncated.jpg"].startswith("truncated or corrupt (")
    assert len(index.meta) == len(index.items)
    gray = [p for (p, _), m in zip(index.items, index.meta, strict=True) if m.grayscale]
    assert gray == ["alpha/image_gray.jpg"]
    assert index.label_counts() == [14, 12, 12]


def test_dangling_links_and_sub_folders_are_skipped(synthetic_root: Path) -> None:
    (synthetic_root / "beta" / "gone.jpg").symlink_to(synthetic_root / "nowhere.jpg")
    (synthetic_root / "beta" / "nested").mkdir()
    skipped = dict(index_dataset(DataConfig(root=str(synthetic_root))).skipped)
    assert skipped["beta/gone.jpg"] == "unreadable (No such file or directory)"
    assert skipped["beta/nested/"] == "a folder inside a class folder"


def test_background_google_is_excluded_by_default(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, {"BACKGROUND_Google": 2, "Faces": 2, "ant": 2})
    assert index_dataset(DataConfig(root=str(root))).classes == ("Faces", "ant")
    assert index_dataset(DataConfig(root=str(root), exclude=[])).classes == (
        "BACKGROUND_Google",
        "Faces",
        "ant",
    )


def test_class_selection_and_unknown_classes(synthetic_root: Path) -> None:
    index = index_dataset(DataConfig(root=str(synthetic_root), classes=["gamma", "alpha"]))
    assert index.classes == ("alpha", "gamma")
    assert {label for _, label in index.items} == {0, 1}
    with pytest.raises(ConvtrainError) as err:
        index_dataset(DataConfig(root=str(synthetic_root), classes=["alpha", "betta", "zzz"]))
    assert str(err.value) == (
        f"data.classes: expected class folders of {synthetic_root}, received unknown classes "
        f"'betta' (did you mean beta?); 'zzz'"
    )


def test_fewer_than_two_classes(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, {"BACKGROUND_Google": 1, "only": 2})
    with pytest.raises(ConvtrainError) as err:
        index_dataset(DataConfig(root=str(root)))
    assert str(err.value) == (
        f"data.classes: expected at least 2 classes in {root}, received 1 after "
        f"data.exclude=['BACKGROUND_Google']"
    )


def test_missing_root_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConvtrainError) as err:
        resolve_root(DataConfig(root=str(missing)))
    message = str(err.value)
    assert message.startswith(f"{missing}: dataset folder not found (from data.root={missing}); ")
    assert "run `convtrain data fetch` (or `make data`)" in message
    monkeypatch.setenv("CONVTRAIN_DATA_ROOT", str(missing))
    with pytest.raises(ConvtrainError, match=r"from CONVTRAIN_DATA_ROOT="):
        resolve_root(DataConfig())
    monkeypatch.delenv("CONVTRAIN_DATA_ROOT")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConvtrainError, match="received a file"):
        resolve_root(DataConfig(root=str(tmp_path / "file")))


def test_env_overrides_root_and_parent_folder_is_accepted(
    synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVTRAIN_DATA_ROOT", str(synthetic_root))
    assert resolve_root(DataConfig(root="does/not/exist")) == synthetic_root
    # Pointing at the folder holding only 101_ObjectCategories/ finds the classes inside.
    monkeypatch.setenv("CONVTRAIN_DATA_ROOT", str(synthetic_root.parent))
    assert resolve_root(DataConfig()) == synthetic_root
    explicit = index_dataset(DataConfig(root="does/not/exist"), root=synthetic_root)
    assert explicit.classes == ("alpha", "beta", "gamma")


@pytest.mark.real_data
def test_real_caltech101_counts(real_root: Path) -> None:
    everything = index_dataset(DataConfig(root=str(real_root), exclude=[]))
    assert len(everything.classes) == 102
    assert len(everything.items) == 9145  # 9,144 .jpg + BACKGROUND_Google/tmp
    assert ("BACKGROUND_Google/tmp", 0) in everything.items
    assert everything.skipped == ()
    assert sum(m.grayscale for m in everything.meta) == 411
    default = index_dataset(DataConfig(root=str(real_root)))
    assert len(default.classes) == 101 and "BACKGROUND_Google" not in default.classes
    assert len(default.items) == 8677
