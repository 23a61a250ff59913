from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from convtrain.commands.data import run_preview
from convtrain.config.schema import AugmentConfig
from convtrain.data.preview import describe_augment
from convtrain.plots.grid import image_grid

MODEL = {
    "layers": [{"type": "flatten"}, {"type": "dense", "units": "classes", "activation": "softmax"}]
}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVTRAIN_DATA_ROOT", raising=False)
    monkeypatch.delenv("CONVTRAIN_CACHE_DIR", raising=False)


def _config(tmp_path: Path, root: Path) -> Path:
    raw = {
        "name": "tiny",
        "data": {"root": str(root), "cache_dir": str(tmp_path / "cache"), "image_size": 24},
        "augment": {"horizontal_flip": True, "rotation": 15, "zoom": 0.1},
        "train": {"batch_size": 8},
        "model": MODEL,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def test_preview_writes_a_grid_of_augmented_images(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "grid.png"
    # 40 is more than the 28 training images: later epochs show new augmentations.
    assert run_preview(str(_config(tmp_path, synthetic_root)), (), out=str(out), count=40) == out
    assert capsys.readouterr().out == f"wrote {out} (40 augmented training images)\n"
    pixels = _pixels(out)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    assert pixels.std() > 20  # images, not a blank canvas
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500


def test_default_output_name(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_preview(str(_config(tmp_path, synthetic_root)), ("augment.vertical_flip=true",), count=4)
    assert (tmp_path / "preview-tiny.png").is_file()


def test_describe_augment() -> None:
    assert describe_augment(AugmentConfig()) == "no augmentation"
    cfg = AugmentConfig(
        horizontal_flip=True, rotation=15, zoom=0.1, random_crop=0.2, fill_mode="reflect"
    )
    assert (
        describe_augment(cfg)
        == "h-flip, rotation \u00b115\u00b0, zoom \u00b110%, random crop \u226420%; fill reflect"
    )


def test_image_grid_grayscale_uint8_and_title_colours(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 255, (5, 20, 30, 1), dtype=np.uint8)
    path = tmp_path / "g.png"
    image_grid(images, list("abcde"), path, "title", title_colors=["red"] * 4 + ["green"])
    assert _pixels(path).std() > 20
    r, g, b = _pixels(path).astype(int).transpose(2, 0, 1)
    assert ((r > 180) & (g < 90) & (b < 90)).sum() > 20  # red titles over gray images
    with pytest.raises(ValueError) as err:
        image_grid(images, ["a"], path, "title")
    assert str(err.value) == (
        "expected one title (and colour) per image: 5 images, received 1 titles and None colours"
    )
    with pytest.raises(ValueError, match=r"received shape \(5, 20, 30, 2\)"):
        image_grid(np.zeros((5, 20, 30, 2)), list("abcde"), path, "title")


def test_missing_config_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "convtrain", "data", "preview", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'none.yaml'}: no such file" in result.stderr
