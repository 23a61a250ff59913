"""The official counts table, structure checks and the dataset marker."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_dataset

from convtrain.data.verify import (
    MARKER_NAME,
    OFFICIAL_COUNTS,
    Marker,
    check_counts,
    read_marker,
    scan_counts,
    verified_marker,
)
from convtrain.errors import ConvtrainError


def test_official_table_matches_the_published_totals() -> None:
    assert len(OFFICIAL_COUNTS) == 102
    assert sum(OFFICIAL_COUNTS.values()) == 9_145  # 9,144 JPEGs and BACKGROUND_Google/tmp
    assert (min(OFFICIAL_COUNTS.values()), max(OFFICIAL_COUNTS.values())) == (31, 800)


def test_scan_counts_ignores_hidden_files_and_loose_files(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, {"alpha": 3, "beta": 2}, extras=True)
    (root / "alpha" / ".DS_Store").write_text("")
    (root / ".hidden").mkdir()
    (root / "README").write_text("")
    # extras add 5 files to alpha: gray, truncated, empty, notes.txt and tmp
    assert scan_counts(root) == {"alpha": 8, "beta": 2}


def test_extra_folders_and_files_are_warnings() -> None:
    warnings = check_counts({"a": 5, "b": 2, "zzz": 1}, {"a": 4, "b": 2}, "here")
    assert warnings == [
        "here: folders that are not in CALTECH-101: zzz",
        "here: folders with more files than CALTECH-101: a (5 of 4)",
    ]


def test_missing_and_short_folders_are_an_error() -> None:
    with pytest.raises(ConvtrainError) as err:
        check_counts({"a": 3, "c": 1}, {"a": 4, "b": 2, "c": 1}, "here")
    assert str(err.value) == (
        "here: expected CALTECH-101's 3 folders with 7 files, received 2 folders with 4 files; "
        "missing folders: b; folders with too few files: a (3 of 4)"
    )


def test_marker_round_trip_and_staleness(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, {"alpha": 3, "beta": 2})
    counts = scan_counts(root)
    Marker.create("src.tar.gz", "ab" * 32, False, counts).write(root / MARKER_NAME)

    marker = read_marker(root)
    assert marker is not None and (marker.source, marker.counts) == ("src.tar.gz", counts)
    assert verified_marker(root, counts) == marker
    assert verified_marker(root, {"alpha": 3, "beta": 3}) is None  # does not pass the table

    (root / "beta" / "image_0001.jpg").unlink()
    assert verified_marker(root, {"alpha": 3, "beta": 1}) is None  # files changed since

    (root / MARKER_NAME).write_text("{not json")
    assert read_marker(root) is None
