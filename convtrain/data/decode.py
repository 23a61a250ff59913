"""Decode one image file into a uint8 array of the experiment's size and colour mode.

Every image reaching a model goes through `decode_image` (training via the cache, predict
directly), so training and inference see identical preprocessing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from convtrain.config.schema import DataConfig
from convtrain.errors import ConvtrainError

# Part of the cache key: bump it whenever decode_image's output changes for the same input.
DECODER_VERSION = 1

_RESAMPLE = Image.Resampling.BILINEAR


def _to_mode(img: Image.Image, color_mode: str) -> Image.Image:
    """RGB or L from any Pillow mode (grayscale, CMYK, palette, with or without alpha)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white, as an image viewer shows them, not black.
        rgba = img.convert("RGBA")
        img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img.alpha_composite(rgba)
    target = "RGB" if color_mode == "rgb" else "L"
    return img if img.mode == target else img.convert(target)


def _resize(img: Image.Image, height: int, width: int, resize: str) -> Image.Image:
    w, h = img.size
    if resize == "stretch":
        return img.resize((width, height), _RESAMPLE)
    if resize == "crop":
        # The largest centred window with the target aspect ratio, resized in one step.
        scale = min(w / width, h / height)
        cw, ch = width * scale, height * scale
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        return img.resize((width, height), _RESAMPLE, box=box)
    # pad: fit inside the target, letterbox with black
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new(img.mode, (width, height))
    canvas.paste(img.resize((nw, nh), _RESAMPLE), ((width - nw) // 2, (height - nh) // 2))
    return canvas


def _draft_size(w: int, h: int, height: int, width: int, resize: str) -> tuple[int, int]:
    """The smallest size JPEG draft mode may reduce to without losing output resolution."""
    if resize == "pad":
        scale = min(width / w, height / h)
        return max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))
    return width, height  # draft keeps both sides >= the request, enough for stretch and crop


def decode_image(
    path: Path, image_size: tuple[int, int], resize: str, color_mode: str
) -> np.ndarray:
    """uint8 [height, width, channels] (image_size is (height, width), as in Keras).

    Raises ConvtrainError naming the file when it is empty, truncated or not an image.
    """
    height, width = image_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                if img.format == "JPEG":
                    # DCT scaling while decoding: 2-8x faster for images much larger than the target.
                    draft_mode = "RGB" if color_mode == "rgb" else "L"
                    img.draft(draft_mode, _draft_size(*img.size, height, width, resize))
                img.load()
                img = ImageOps.exif_transpose(img)
                img = _to_mode(img, color_mode)
                out = np.asarray(_resize(img, height, width, resize), dtype=np.uint8)
    except FileNotFoundError:
        raise ConvtrainError(f"{path}: no such image file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = "not an image" if exc.__class__.__name__ == "UnidentifiedImageError" else str(exc)
        raise ConvtrainError(f"{path}: cannot decode the image ({reason})") from None
    return out[..., None] if out.ndim == 2 else out


def decode_images(paths: Sequence[str | Path], data: DataConfig) -> list[np.ndarray]:
    """Each file decoded as data.* says (as the run's pipeline does); one line naming a bad one."""
    return [decode_image(Path(p), data.image_size, data.resize, data.color_mode) for p in paths]
