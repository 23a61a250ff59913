from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convtrain.data.decode import decode_image
from convtrain.errors import ConvtrainError

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _thirds(path: Path, width: int = 90, height: int = 30) -> Path:
    """Red outer thirds, green middle third: tells stretch, crop and pad apart."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:] = RED
    pixels[:, width // 3 : 2 * width // 3] = GREEN
    Image.fromarray(pixels).save(path)  # PNG: exact colours
    return path


@pytest.mark.parametrize("resize", ["stretch", "pad", "crop"])
@pytest.mark.parametrize("color_mode,channels", [("rgb", 3), ("grayscale", 1)])
def test_shape_and_dtype(tmp_path: Path, resize: str, color_mode: str, channels: int) -> None:
    out = decode_image(_thirds(tmp_path / "a.png"), (24, 40), resize, color_mode)
    assert out.shape == (24, 40, channels)
    assert out.dtype == np.uint8


def test_stretch_crop_and_pad(tmp_path: Path) -> None:
    path = _thirds(tmp_path / "a.png")
    stretched = decode_image(path, (30, 30), "stretch", "rgb")
    assert tuple(stretched[15, 2]) == RED and tuple(stretched[15, 15]) == GREEN
    cropped = decode_image(path, (30, 30), "crop", "rgb")  # the centred 30x30 window is green
    assert (cropped == GREEN).all(axis=-1).mean() > 0.95
    padded = decode_image(path, (30, 30), "pad", "rgb")  # 90x30 fits as 30x10, letterboxed
    assert (padded[:10] == 0).all() and (padded[20:] == 0).all()
    assert tuple(padded[15, 1]) == RED and tuple(padded[15, 15]) == GREEN


def test_colour_conversions(tmp_path: Path) -> None:
    Image.fromarray(np.full((20, 20), 100, np.uint8), mode="L").save(tmp_path / "g.jpg")
    rgb = decode_image(tmp_path / "g.jpg", (8, 8), "stretch", "rgb")
    assert rgb.shape == (8, 8, 3) and (rgb[..., 0] == rgb[..., 1]).all()
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    cmyk = decode_image(tmp_path / "c.jpg", (8, 8), "stretch", "rgb")
    assert cmyk[..., 0].mean() > 200 and cmyk[..., 1].mean() < 60  # red
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 255] * 256)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    transparent = decode_image(tmp_path / "p.png", (8, 8), "stretch", "rgb")
    assert (transparent == 255).all()  # fully transparent: shown on white
    Image.new("RGBA", (20, 20), (0, 0, 255, 255)).save(tmp_path / "rgba.png")
    assert tuple(decode_image(tmp_path / "rgba.png", (8, 8), "stretch", "rgb")[4, 4]) == (0, 0, 255)
    gray = decode_image(tmp_path / "rgba.png", (8, 8), "stretch", "grayscale")
    assert gray.shape == (8, 8, 1) and 20 < int(gray[4, 4, 0]) < 40  # L = 0.114 * 255


def test_draft_mode_matches_a_full_decode(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    pixels = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1) + rng.normal(0, 5, (300, 400, 3))
    path = tmp_path / "big.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=95)
    fast = decode_image(path, (32, 32), "stretch", "rgb").astype(float)
    with Image.open(path) as img:
        full = np.asarray(img.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), float)
    assert np.abs(fast - full).mean() < 4.0


def test_unreadable_files_raise_convtrain_error(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.7)])
    with pytest.raises(ConvtrainError) as err:
        decode_image(truncated, (16, 16), "stretch", "rgb")
    assert str(err.value).startswith(
        f"{truncated}: cannot decode the image (image file is truncated"
    )
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ConvtrainError) as err:
        decode_image(tmp_path / "empty.jpg", (16, 16), "stretch", "rgb")
    assert str(err.value) == f"{tmp_path / 'empty.jpg'}: cannot decode the image (not an image)"
    with pytest.raises(ConvtrainError) as err:
        decode_image(tmp_path / "nope.jpg", (16, 16), "stretch", "rgb")
    assert str(err.value) == f"{tmp_path / 'nope.jpg'}: no such image file"
