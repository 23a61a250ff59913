"""The byte progress bar: throttled plain lines when stderr is not a terminal."""

from __future__ import annotations

import io

from convtrain.data.byte_progress import ByteProgress, human_bytes


def test_log_output_is_throttled_to_a_final_line() -> None:
    stream = io.StringIO()  # not a terminal: a line every few seconds, here none before close
    with ByteProgress("downloading x.zip", 4_000_000, done=1_000_000, stream=stream) as bar:
        for _ in range(30):
            bar.update(100_000)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"downloading x.zip: [{'#' * 24}] 100% 4.0 MB / 4.0 MB  ") and lines[
        0
    ].endswith("B/s")


def test_terminal_output_redraws_one_line() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with ByteProgress("extracting a.tar.gz", 100, stream=stream) as bar:
        bar.update(50)
    assert stream.getvalue().startswith(
        "\rextracting a.tar.gz: [############............]  50% 50 B / 100 B  "
    )
    assert stream.getvalue().endswith("B/s\x1b[K\n")


def test_unknown_total_shows_the_amount_only() -> None:
    stream = io.StringIO()
    bar = ByteProgress("downloading", None, stream=stream)
    bar.update(2_500)
    bar.close()
    bar.close()  # closing twice draws once
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("downloading: 2.5 KB  ") and line.endswith("/s")


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (999, 1_000, 131_740_031, 2_000_000_000)] == [
        "999 B", "1.0 KB", "131.7 MB", "2.0 GB"
    ]  # fmt: skip
