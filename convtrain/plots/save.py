"""The one way a figure becomes a PNG: rendered in memory, written atomically, then released."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from convtrain.io import atomic_write_bytes

DPI = 120


def save_figure(fig: Figure, path: str | Path, *, dpi: int = DPI, tight: bool = False) -> Path:
    """`tight`: crop the canvas to what is drawn (for figures without a layout engine)."""
    buf = io.BytesIO()
    try:
        # No timestamp or version in the PNG metadata: the same figure writes the same bytes.
        fig.savefig(
            buf,
            format="png",
            dpi=dpi,
            metadata={"Software": None},
            bbox_inches="tight" if tight else None,
        )
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
