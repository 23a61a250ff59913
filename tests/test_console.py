"""What the commands show while they work: rich bars on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import re

import pytest

from convtrain.commands.console import Console, on_terminal


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_line_at_every_tenth_and_one_at_the_end() -> None:
    stream = io.StringIO()
    with Console(stream).task("decoding images", 20) as advance:
        for _ in range(20):
            advance(1)
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        *(f"decoding images: {n}/20" for n in range(2, 20, 2)),
        "decoding images: 20/20",
    ]
    assert re.fullmatch(r"decoding images: 2/20 \(10%, [\d.]+/s, ETA \d:\d\d:\d\d\)", lines[0])
    assert re.fullmatch(r"decoding images: 20/20 \(100%, [\d.]+/s, done in [\d.]+ s\)", lines[-1])


def test_bytes_count_from_where_a_resumed_download_started() -> None:
    stream = io.StringIO()
    with Console(stream).task("downloading x.zip", 4_000_000, done=1_000_000, unit="bytes") as adv:
        for _ in range(30):
            adv(100_000)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("downloading x.zip: 1.2 MB / 4.0 MB (30%, ")
    assert re.fullmatch(
        r"downloading x\.zip: 4\.0 MB / 4\.0 MB \(100%, [\d.]+ [KMG]?B/s, done in [\d.]+ s\)",
        lines[-1],
    )


def test_an_unknown_total_shows_the_amount_only() -> None:
    stream = io.StringIO()
    with Console(stream).task("downloading", None, unit="bytes") as advance:
        advance(2_500)
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(r"downloading: 2\.5 KB \([\d.]+ [KMG]?B/s, done in [\d.]+ s\)", line)


def test_nothing_to_do_shows_nothing_and_a_failure_no_final_line() -> None:
    stream = io.StringIO()
    with Console(stream).task("decoding images", 0) as advance:
        advance(0)
    assert stream.getvalue() == ""
    with pytest.raises(RuntimeError), Console(stream).task("evaluate", 3) as advance:
        advance(1)
        raise RuntimeError("interrupted")
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("evaluate: 1/3 (33%, ") and "done in" not in line


def test_on_a_terminal_a_rich_bar_with_rate_and_time_left(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stream = Terminal()
    assert on_terminal(stream)
    with Console(stream).task("extracting a.tar.gz", 1_000_000, unit="bytes") as advance:
        advance(500_000)
        advance(500_000)
    text = stream.getvalue()
    assert "\x1b[" in text  # drawn and redrawn in place, not printed line after line
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "extracting a.tar.gz" in plain and "100%" in plain and "1.0/1.0 MB" in plain
    assert not re.search(r"\(\d+%, ", plain)


def test_ci_gets_plain_lines_even_on_a_terminal(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert not on_terminal(Terminal())
    monkeypatch.setenv("CI", "")
    monkeypatch.setenv("TERM", "dumb")
    assert not on_terminal(Terminal())
    assert not on_terminal(io.StringIO())


def test_notes_and_warnings_are_single_lines_on_stderr(capsys) -> None:
    console = Console()
    console.note("run directory: runs/x")
    console.warning("runs/x/state.json: epochs: expected an integer, received 'x'")
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "run directory: runs/x\n"
        "warning: runs/x/state.json: epochs: expected an integer, received 'x'\n"
    )
