from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from convtrain.commands import cli
from convtrain.config.schema import DataConfig
from convtrain.data.cache import open_cache
from convtrain.data.index import index_dataset
from convtrain.errors import ConvtrainError

MODEL = {
    "layers": [{"type": "flatten"}, {"type": "dense", "units": "classes", "activation": "softmax"}]
}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONVTRAIN_DATA_ROOT", raising=False)
    monkeypatch.setenv("CONVTRAIN_CACHE_DIR", str(tmp_path / "cache"))


def _info(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["data", "info", *args])
    return result.exit_code, result.output


def test_report_of_a_folder(synthetic_root: Path) -> None:
    code, out = _info("--root", str(synthetic_root))
    assert code == 0
    lines = out.splitlines()
    assert lines[:11] == [
        f"dataset    {synthetic_root}",
        "classes    3",
        "images     38; grayscale 1 (2.6%)",
        "per class  min 12  median 12  max 14",
        "imbalance  1.2x (max/min: alpha 14 / beta 12)",
        "width px   min 24  median 41  max 59",
        "height px  min 24  median 38  max 55",
        "skipped    3 files",
        "  alpha/image_empty.jpg: empty file",
        "  alpha/image_truncated.jpg: truncated or corrupt (Truncated File Read)",
        "  alpha/notes.txt: not an image",
    ]
    assert "  (not yet decoded: truncated images are found by the first train or preview)" in lines
    assert lines[-2:] == ["images per class, most first:", "  alpha 14   beta  12   gamma 12"]


def test_decode_failures_of_an_existing_cache_are_listed(synthetic_root: Path) -> None:
    big = synthetic_root / "gamma" / "image_big.jpg"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(big)
    (synthetic_root / "gamma" / "image_cut.jpg").write_bytes(
        big.read_bytes()[: int(big.stat().st_size * 0.7)]
    )
    data = DataConfig(root=str(synthetic_root), image_size=8)
    open_cache(index_dataset(data), data)
    code, out = _info("--root", str(synthetic_root))
    assert code == 0
    assert "skipped    4 files" in out
    assert "  gamma/image_cut.jpg: cannot decode the image (image file is truncated" in out
    assert "not yet decoded" not in out


def test_config_selects_classes(synthetic_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"data": {"root": str(synthetic_root)}, "model": MODEL}))
    code, out = _info(str(config), "--set", "data.classes=[beta, gamma]")
    assert code == 0
    assert "classes    2 (selected by data.classes)" in out.splitlines()
    assert "images     24; grayscale 0 (0.0%)" in out.splitlines()


def test_set_without_config_is_an_error() -> None:
    with pytest.raises(ConvtrainError) as err:
        CliRunner().invoke(
            cli, ["data", "info", "--set", "data.image_size=8"], catch_exceptions=False
        )
    assert str(err.value) == (
        "--set data.image_size=8: expected a CONFIG to override (convtrain data info CONFIG "
        "--set ...), received none"
    )


def test_missing_dataset_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "convtrain", "data", "info", "--root", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        f"error: {tmp_path / 'none'}: dataset folder not found (from --root); "
    )
    assert "run `convtrain data fetch` (or `make data`)" in result.stderr


@pytest.mark.real_data
def test_real_caltech101_report(real_root: Path) -> None:
    code, out = _info("--root", str(real_root))
    assert code == 0
    lines = out.splitlines()
    assert "classes    101 (excluded: BACKGROUND_Google)" in lines
    assert "images     8,677; grayscale 381 (4.4%)" in lines
    assert "imbalance  25.8x (max/min: airplanes 800 / inline_skate 31)" in lines


def test_data_modules_without_tensorflow_stay_tensorflow_free() -> None:
    code = (
        "import sys\n"
        "import convtrain.data.info, convtrain.data.split, convtrain.data.cache\n"
        "import convtrain.data.preview\n"  # imports TensorFlow only when it runs
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout == "False False\n", result.stderr
