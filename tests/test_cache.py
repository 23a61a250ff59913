from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convtrain.data.cache as cache_module
from convtrain.commands.console import Console
from convtrain.config.schema import DataConfig
from convtrain.data.cache import cache_directory, open_cache, open_cache_for, recorded_failures
from convtrain.data.decode import decode_image
from convtrain.data.index import index_dataset
from convtrain.errors import ConvtrainError


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVTRAIN_DATA_ROOT", raising=False)
    monkeypatch.delenv("CONVTRAIN_CACHE_DIR", raising=False)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the cache decodes, in order."""
    seen: list[Path] = []

    def counting(path: Path, *args):
        seen.append(path)
        return decode_image(path, *args)

    monkeypatch.setattr(cache_module, "decode_image", counting)
    return seen


def _data(root: Path, tmp_path: Path, **kw) -> DataConfig:
    return DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), image_size=(16, 20), **kw)


def _open(data: DataConfig):
    return open_cache(index_dataset(data), data)


def test_second_open_decodes_nothing(synthetic_root: Path, tmp_path: Path, decodes) -> None:
    data = _data(synthetic_root, tmp_path)
    first = _open(data)
    assert first.decoded == 38 and len(decodes) == 38
    assert first.images.shape == (38, 16, 20, 3) and first.images.dtype == np.uint8
    row = first.rows["beta/image_0003.jpg"]
    expected = decode_image(synthetic_root / "beta/image_0003.jpg", (16, 20), "stretch", "rgb")
    np.testing.assert_array_equal(first.images[row], expected)
    (npy,) = first.directory.glob("images-*.npy")
    stamp = npy.stat().st_mtime_ns
    second = _open(data)
    assert second.decoded == 0 and len(decodes) == 38
    assert isinstance(second.images, np.memmap)
    assert npy.stat().st_mtime_ns == stamp
    assert dict(second.rows) == dict(first.rows)
    np.testing.assert_array_equal(second.images, first.images)


def test_added_or_changed_files_are_decoded_again_alone(
    synthetic_root: Path, tmp_path: Path, decodes
) -> None:
    data = _data(synthetic_root, tmp_path)
    before = _open(data)
    (old_npy,) = before.directory.glob("images-*.npy")
    new = synthetic_root / "gamma" / "image_0099.jpg"
    Image.new("RGB", (30, 30), (10, 200, 30)).save(new)
    changed = synthetic_root / "beta" / "image_0001.jpg"
    Image.new("RGB", (30, 30), (250, 0, 0)).save(changed)
    os.utime(changed, ns=(1, 1))
    decodes.clear()
    after = _open(data)
    assert sorted(p.name for p in decodes) == ["image_0001.jpg", "image_0099.jpg"]
    assert after.decoded == 2 and after.images.shape[0] == 39
    pixel = after.images[after.rows["gamma/image_0099.jpg"]][5, 5].astype(int)
    assert np.abs(pixel - (10, 200, 30)).max() <= 3  # JPEG rounding
    pixel = after.images[after.rows["beta/image_0001.jpg"]][5, 5].astype(int)
    assert np.abs(pixel - (250, 0, 0)).max() <= 3
    same = "alpha/image_0005.jpg"
    np.testing.assert_array_equal(after.images[after.rows[same]], before.images[before.rows[same]])
    assert not old_npy.exists()  # one cache per (root, preprocessing): the stale array is gone


def test_preprocessing_change_uses_another_cache(synthetic_root: Path, tmp_path: Path) -> None:
    small = _open(_data(synthetic_root, tmp_path))
    other = _data(synthetic_root, tmp_path, color_mode="grayscale")
    gray = _open(other)
    assert gray.decoded == 38 and gray.images.shape == (38, 16, 20, 1)
    assert gray.directory != small.directory
    assert gray.directory == cache_directory(synthetic_root, other)
    assert gray.directory.name.startswith("101_ObjectCategories-16x20-stretch-grayscale-")
    bigger = DataConfig(root=str(synthetic_root), cache_dir=str(tmp_path / "cache"), image_size=24)
    assert _open(bigger).images.shape == (38, 24, 24, 3)


def test_corrupt_cache_is_rebuilt(synthetic_root: Path, tmp_path: Path, decodes) -> None:
    data = _data(synthetic_root, tmp_path)
    good = np.array(_open(data).images)
    (npy,) = cache_directory(synthetic_root, data).glob("images-*.npy")
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    rebuilt = _open(data)
    assert rebuilt.decoded == 38
    np.testing.assert_array_equal(rebuilt.images, good)
    manifest = rebuilt.directory / "manifest.json"
    manifest.write_text("{ not json")
    assert _open(data).decoded == 38
    payload = json.loads(manifest.read_text())
    payload["decoder_version"] = -1  # written by another decoder: never trusted
    manifest.write_text(json.dumps(payload))
    assert _open(data).decoded == 38


def test_truncated_jpeg_is_recorded_not_fatal(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = synthetic_root / "beta" / "image_big.jpg"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(big)
    cut = synthetic_root / "beta" / "image_cut.jpg"
    cut.write_bytes(big.read_bytes()[: int(big.stat().st_size * 0.7)])  # header intact
    data = _data(synthetic_root, tmp_path)
    index = index_dataset(data)
    assert "beta/image_cut.jpg" in dict(index.items)  # headers cannot tell
    cache = open_cache(index, data, Console())
    failed = dict(cache.failed)
    assert list(failed) == ["beta/image_cut.jpg"]
    assert failed["beta/image_cut.jpg"].startswith(
        "cannot decode the image (image file is truncated"
    )
    assert "beta/image_cut.jpg" not in cache.rows and "beta/image_big.jpg" in cache.rows
    assert f"warning: skipped {cut}: cannot decode the image" in capsys.readouterr().err
    assert dict(open_cache(index, data).failed) == failed  # remembered
    assert recorded_failures(synthetic_root, data) == failed
    assert recorded_failures(tmp_path, data) is None


def test_progress_lines_when_stderr_is_not_a_terminal(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(synthetic_root, tmp_path)
    open_cache(index_dataset(data), data, Console())
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"building the image cache in {cache_directory(synthetic_root, data)}: 38 images to decode"
    )
    assert err[-1].startswith("decoding images: 38/38 (")


def test_open_cache_for_checks_the_files(synthetic_root: Path, tmp_path: Path) -> None:
    data = _data(synthetic_root, tmp_path)
    items = [("alpha/image_0001.jpg", 0), ("beta/image_0002.jpg", 1)]
    assert open_cache_for(synthetic_root, items, data) is None  # nothing built yet
    _open(data)
    found = open_cache_for(synthetic_root, items, data)
    assert found is not None and found.decoded == 0
    os.utime(synthetic_root / "beta/image_0002.jpg", ns=(5, 5))
    assert open_cache_for(synthetic_root, items, data) is None


def test_cache_dir_environment_variable(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVTRAIN_CACHE_DIR", str(tmp_path / "elsewhere"))
    cache = _open(_data(synthetic_root, tmp_path))
    assert cache.directory.parent == tmp_path / "elsewhere"


def test_unwritable_cache_dir_is_a_clear_error(synthetic_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    data = DataConfig(root=str(synthetic_root), cache_dir=str(blocker), image_size=10)
    with pytest.raises(ConvtrainError) as err:
        _open(data)
    assert str(err.value) == (
        f"{cache_directory(synthetic_root, data)}: cannot write it (not a directory); check that "
        f"path, or point data.cache_dir or CONVTRAIN_CACHE_DIR at a writable folder with room "
        f"for 11.1 KiB, then run the command again"
    )
