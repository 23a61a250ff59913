"""Write a matplotlib figure as a PNG, atomically, and release it."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from convtrain.io import atomic_write_bytes

DPI = 120


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    buf = io.BytesIO()
    try:
        # No timestamp in the PNG metadata: the same evaluation writes the same bytes.
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
