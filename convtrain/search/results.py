"""What a study found, read from the study itself: the trials table and the best trial.

The study holds every trial's params, value (train.monitor on the validation split), state,
epochs, cost and the test figures of its run, so this works on any machine that reaches the
storage, including one that ran none of the trials.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from convtrain.search.study import SweepRecord

STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def configurations(study: Any) -> list[Any]:
    """One trial per configuration: the latest of an original and its retries, skipped ones out."""
    latest: dict[int, Any] = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("skipped"):
            continue
        chain = t.system_attrs.get("failed_trial", t.number)
        if chain not in latest or t.number > latest[chain].number:
            latest[chain] = t
    return sorted(latest.values(), key=lambda t: t.number)


def best(study: Any) -> Any | None:
    complete = [t for t in configurations(study) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    maximize = study.direction.name == "MAXIMIZE"
    return (max if maximize else min)(complete, key=lambda t: t.value)


def train_command(sweep_dir: Path, record: SweepRecord, trial: Any) -> str:
    """The `convtrain train` command that trains this trial's config again, exactly."""
    sets = [*record.overrides, *trial.user_attrs.get("overrides", [])]
    args = " ".join(f"--set {shlex.quote(s)}" for s in sets)
    return f"convtrain train {shlex.quote(str(sweep_dir / 'base.yaml'))} {args}".rstrip()


def _param(value: Any) -> Any:
    """A sampled float in 4 significant digits (a learning rate of 2.7e-05 is not 0.0000)."""
    return f"{value:.4g}" if isinstance(value, float) else value


def _duration(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f}"


def trials_table(study: Any, record: SweepRecord) -> tuple[list[str], list[list[Any]]]:
    """Best first (by value; trials without one after them), then by number."""
    keys = list(record.space)
    split = "test"
    header = ["trial", "state", record.monitor, *keys, "epochs", "time_s", "params", "MACs",
              f"{split}_accuracy", f"{split}_mean_per_class_accuracy", "run", "note"]  # fmt: skip
    rows = []
    for t in configurations(study):
        a = t.user_attrs
        retried = t.system_attrs.get("retry_history")
        note = a.get("error") if t.state == TrialState.FAIL else None
        if retried and not note:
            note = f"retry of trial {retried[0]}"
        if t.state == TrialState.PRUNED:
            note = f"pruned after epoch {a.get('pruned_at_epoch', a.get('epochs'))}"
        if a.get("duplicate_of") is not None:
            note = f"the configuration of trial {a['duplicate_of']}: not trained again"
        rows.append(
            [t.number, STATES.get(t.state, t.state.name.lower()), t.value,
             *(_param(t.params.get(k)) for k in keys),
             a.get("epochs"), _duration(t), a.get("params"), a.get("macs"),
             a.get(f"{split}_accuracy"), a.get(f"{split}_mean_per_class_accuracy"),
             Path(a["run_dir"]).name if a.get("run_dir") else None, note]
        )  # fmt: skip
    sign = -1 if study.direction.name == "MAXIMIZE" else 1
    rows.sort(key=lambda r: (r[2] is None, sign * (r[2] or 0.0), r[0]))
    return header, rows


def epochs_trained(trial: Any) -> int:
    """The epochs a configuration's run holds: a pruned one's until it stopped; a running one's
    so far (the epochs it reported). A retry resumes its original's run, so counts it once."""
    epochs = trial.user_attrs.get("epochs")
    return int(epochs) if epochs is not None else len(trial.intermediate_values)


def cost_line(study: Any, record: SweepRecord, train_seconds: float | None = None,
              runs: int = 0) -> str:  # fmt: skip
    """What the search cost, against training every configuration it tried to the end."""
    configs = configurations(study)
    done = sum(epochs_trained(t) for t in configs)
    full = len(configs) * record.epochs
    share = f" ({done / full:.0%})" if full else ""
    line = (
        f"cost: {done:,} epochs trained of the {full:,} that {len(configs)} configurations "
        f"trained to the end would take{share}"
    )
    if train_seconds is not None and runs:
        line += (
            f"; {train_seconds / 3600:.2f} h of training in the {runs} evaluated "
            f"run{'s' if runs != 1 else ''} on this machine (their epoch times)"
        )
    return line


def summary_lines(outcome: Any) -> list[str]:
    study, record, sweep_dir = outcome.study, outcome.record, outcome.sweep_dir
    c = outcome.counts
    total = sum(c.values())
    budget = f" (budget {record.trials})" if record.trials else ""
    lines = [
        f"sweep {sweep_dir}: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed "
        f"of {total} trials{budget}",
        cost_line(study, record),
    ]
    if outcome.elsewhere:
        lines.append(
            f"{outcome.elsewhere} trials still running or waiting in other processes; run the same "
            f"command again to take over those whose process died"
        )
    top = best(study)
    if top is not None:
        a = top.user_attrs
        test = (
            f" (test accuracy {a['test_accuracy']:.4f}, not used to select)"
            if "test_accuracy" in a
            else ""
        )
        lines.append(f"best: trial {top.number}, {record.monitor} {top.value:.4f}{test}")
        lines.append(f"  {train_command(sweep_dir, record, top)}")
    lines.append(f"compare with: convtrain compare {sweep_dir}")
    return lines
