"""What is in a dataset folder, from image headers only (fast, no TensorFlow): `data info`'s report."""

from __future__ import annotations

import statistics

from convtrain.config.schema import DataConfig
from convtrain.data.index import ImageIndex

_MAX_SKIPPED = 20


def _spread(values: list[int]) -> str:
    return f"min {min(values):,}  median {statistics.median(values):,.0f}  max {max(values):,}"


def _class_table(index: ImageIndex, width: int) -> list[str]:
    """Images per class, most first, in as many columns as the terminal width allows."""
    counts = sorted(
        zip(index.classes, index.label_counts(), strict=True), key=lambda c: (-c[1], c[0])
    )
    name_w = max(len(name) for name, _ in counts)
    num_w = max(len(f"{n:,}") for _, n in counts)
    cell = name_w + num_w + 4
    cols = max(1, min(len(counts), (width - 2) // cell))
    rows = -(-len(counts) // cols)
    lines = []
    for r in range(rows):
        cells = [counts[c * rows + r] for c in range(cols) if c * rows + r < len(counts)]
        lines.append("  " + "".join(f"{n:<{name_w}} {k:>{num_w},}   " for n, k in cells).rstrip())
    return lines


def describe(
    index: ImageIndex, data: DataConfig, decode_failures: dict[str, str] | None, width: int
) -> str:
    """The report, `width` columns wide; `decode_failures` None when no cache knows them yet."""
    counts = index.label_counts()
    n = len(index.items)
    lines = [f"dataset    {index.root}"]
    excluded = [c for c in data.exclude if data.classes == "all" and (index.root / c).is_dir()]
    lines.append(
        f"classes    {len(index.classes)}"
        + (f" (excluded: {', '.join(excluded)})" if excluded else "")
        + (" (selected by data.classes)" if data.classes != "all" else "")
    )
    if n == 0:
        lines.append("images     0")
    else:
        gray = sum(m.grayscale for m in index.meta)
        lines.append(f"images     {n:,}; grayscale {gray:,} ({gray / n:.1%})")
        low, high = counts.index(min(counts)), counts.index(max(counts))
        ratio = f"{max(counts) / min(counts):.1f}x" if min(counts) else "inf (an empty class)"
        lines.append(f"per class  {_spread(counts)}")
        lines.append(
            f"imbalance  {ratio} (max/min: {index.classes[high]} {counts[high]:,} / "
            f"{index.classes[low]} {counts[low]:,})"
        )
        lines.append(f"width px   {_spread([m.width for m in index.meta])}")
        lines.append(f"height px  {_spread([m.height for m in index.meta])}")
    selected = set(index.classes)
    failures = sorted(
        (p, r) for p, r in (decode_failures or {}).items() if p.split("/", 1)[0] in selected
    )
    skipped = [*index.skipped, *((p, f"{r} (found when decoding)") for p, r in failures)]
    lines.append(f"skipped    {len(skipped)} file{'s' if len(skipped) != 1 else ''}")
    for path, reason in skipped[:_MAX_SKIPPED]:
        lines.append(f"  {path}: {reason}")
    if len(skipped) > _MAX_SKIPPED:
        lines.append(f"  ... and {len(skipped) - _MAX_SKIPPED} more")
    if decode_failures is None:
        lines.append(
            "  (not yet decoded: truncated images are found by the first train or preview)"
        )
    lines.append("")
    lines.append("images per class, most first:")
    lines.extend(_class_table(index, width))
    return "\n".join(lines)
