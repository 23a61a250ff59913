"""`convtrain sweep`'s display: the engine's events, drawn live on a terminal, plain lines elsewhere.

The library (convtrain.search) only emits events; a real one-trial sweep shows which, in what
order, and that nothing of it is printed by the library itself.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

from convtrain.commands.sweepview import SweepView
from convtrain.search.events import (
    Opened,
    Reclaimed,
    Tally,
    TrialEnded,
    TrialKilled,
    TrialOutput,
    TrialStarted,
)

LOG = Path("s/logs/t0009.log")
EVENTS = [
    Opened(Path("s"), "sw-1a2b", "journal:///s/study.journal", "val_accuracy", maximize=True),
    Tally(complete=8, pruned=1, failed=0, running=0, total=14, best=0.9012),
    Reclaimed((3, 4)),
    Tally(complete=8, pruned=1, failed=0, running=1, total=14, best=0.9012),
    TrialStarted(9, ("train.optimizer.learning_rate=0.01",), "t0009", LOG),
    TrialOutput(9, "epoch 1/20: loss 1.0986"),
    TrialKilled(9, 9),
    TrialEnded(9, "complete", 0.92114, 20, "t0009-20261201-120000"),
    TrialEnded(10, "pruned", epochs=2, run_name="t0010-20261201-120500"),
    TrialEnded(11, "failed", reason="exit code 1"),
    TrialEnded(12, "failed", reason="model.layers[0]: too big", sets=("k=27",)),
    Tally(complete=9, pruned=2, failed=2, running=1, total=14, best=0.92114),
]
LINES = [
    "sweep s: study sw-1a2b in journal:///s/study.journal",
    "trials 3, 4 lost their process: retried (resumed from their run directories)",
    f"trial 9 started: train.optimizer.learning_rate=0.01 (t0009, log {LOG})",
    "trial 9: its process was killed (signal 9); resuming its run",
    "trial 9 complete: value 0.9211 after 20 epochs (t0009-20261201-120000)",
    "trial 10 pruned after epoch 2 (t0010-20261201-120500)",
    "trial 11 failed: exit code 1",
    "trial 12 failed: k=27: model.layers[0]: too big",
]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def show(events, workers: int = 1, terminal: bool = False) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with SweepView(workers, out=out, err=err, terminal=terminal) as view:
        for event in events:
            view(event)
    return out.getvalue(), err.getvalue()


def test_off_a_terminal_each_event_is_its_plain_line() -> None:
    out, err = show(EVENTS)
    assert out.splitlines() == LINES  # the counts are the live display's only
    assert err.splitlines() == ["epoch 1/20: loss 1.0986"]  # the trial process's own, on stderr
    _, err = show(EVENTS, workers=2)
    assert err.splitlines() == ["[trial 9] epoch 1/20: loss 1.0986"]


def test_on_a_terminal_a_live_count_under_the_lines(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    out, err = show(EVENTS, workers=2, terminal=True)
    assert err == ""  # everything above one live line, on the same screen
    assert "\x1b[" in out  # drawn and redrawn in place
    plain = ANSI.sub("", out)
    last = plain.replace("\r", "\n").splitlines()[-1]
    assert re.fullmatch(
        r"sweep\s.*\s13/14 trials, 1 running, 2 pruned, 2 failed, "
        r"best val_accuracy 0\.9211 \d:\d\d:\d\d\s*",
        last,
    ), last
    for line in [*LINES, "[trial 9] epoch 1/20: loss 1.0986"]:
        assert line in plain


def test_on_a_terminal_before_any_trial_ends(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    out, _ = show([EVENTS[0], Tally(running=1, total=None)], terminal=True)
    last = ANSI.sub("", out).replace("\r", "\n").splitlines()[-1]
    assert "0/? trials, 1 running, 0 pruned, 0 failed, no best yet" in last


@pytest.mark.slow
def test_a_real_sweep_emits_its_events_and_prints_nothing(tmp_path, tiny_data_env, capfd):
    from convtrain.search.engine import run_sweep
    from convtrain.search.plan import Options

    cfg = tmp_path / "c.yaml"
    sweep = {"grid": {"model.layers[0].filters": [4]}}
    cfg.write_text(yaml.safe_dump(tiny_config("sw", 5, 1, sweep=sweep)))
    monkey = pytest.MonkeyPatch()
    for key in ("CONVTRAIN_DATA_ROOT", "CONVTRAIN_CACHE_DIR", "TF_CPP_MIN_LOG_LEVEL"):
        monkey.setenv(key, tiny_data_env[key])
    events: list = []
    try:
        run_sweep(str(cfg), (), Options(sweep_dir=str(tmp_path / "s")), emit=events.append)
    finally:
        monkey.undo()
    assert capfd.readouterr() == ("", "")  # the library printed nothing
    kinds = [type(e).__name__ for e in events if not isinstance(e, TrialOutput)]
    assert kinds == ["Opened", "Tally", "Tally", "TrialStarted", "TrialEnded", "Tally"]
    assert events[1] == Tally(total=1)
    assert events[2] == Tally(running=1, total=1)
    ended = next(e for e in events if isinstance(e, TrialEnded))
    assert ended.state == "complete" and ended.epochs == 1
    assert events[-1] == Tally(complete=1, total=1, best=ended.value)
    assert any(e.text.startswith("epoch 1/1") for e in events if isinstance(e, TrialOutput))
    out, _ = show(events)
    assert re.search(r"^trial 0 complete: value [\d.]+ after 1 epochs \(t0000-", out, re.M)
