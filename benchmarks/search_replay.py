"""Replay the search benchmark's grid: which sampler and pruner find its best, over many seeds?

    python benchmarks/search_replay.py [--grid DIR] [--seeds N]

One run of `make bench-search` is one draw: a sampler's seed and the study's name (Hyperband
puts a trial in a bracket by a hash of it) decide which trials it sees. Training here is
deterministic (a configuration trained twice gives the same validation accuracy at every
epoch, checked below against every search of the benchmark), so every trial of the grid's 27
configurations can be replayed from the curve the grid recorded, in a second. This runs the
engine's own samplers and pruners (convtrain.search.samplers) and its rule for a configuration
drawn again (convtrain.search.runner.twin_of) over the recorded curves, for N seeds of each
strategy, and for the study `make bench-search` runs (its own name and seed), which is what its
real run must give if the replay is right. Writes benchmarks/results/<date>-search-replay.json
and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import matplotlib  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from convtrain.plots.save import save_figure  # noqa: E402
from convtrain.search import storage as storages  # noqa: E402
from convtrain.search.runner import twin_of  # noqa: E402
from convtrain.search.samplers import first_judged_epoch, make_pruner, make_sampler  # noqa: E402
from convtrain.search.study import load_study  # noqa: E402

POINT, SHARE = 0.01, 1 / 3  # the benchmark's criterion (benchmarks/search_bench.py)
# (sampler, pruner, first epoch judged or None for the pruner's default), 27 trials each
STRATEGIES = [
    *[(s, "asha", m) for s in ("tpe", "random") for m in (1, 2, 3, 5, 9)],
    *[(s, "median", m) for s in ("tpe", "random") for m in (2, 5, 9)],
    *[(s, "hyperband", m) for s in ("tpe", "random") for m in (None, 3)],
    *[(s, "none", None) for s in ("tpe", "random")],
]


def _key(params: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


class Grid:
    """The grid's recorded curves: configuration -> (value, validation accuracy by epoch)."""

    def __init__(self, sweep_dir: Path) -> None:
        _, study = load_study(sweep_dir)
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        self.curves = {_key(t.params): (t.value, [t.intermediate_values[e]
                       for e in sorted(t.intermediate_values)]) for t in done}  # fmt: skip
        # The space as the sweep suggests it: the same names, order and choices, so that a seed
        # draws the same values here as in a real study.
        self.choices = {k: list(d.choices) for k, d in done[0].distributions.items()}
        self.best = max(v for v, _ in self.curves.values())
        self.epochs = sum(len(c) for _, c in self.curves.values())

    def deviation(self, sweep_dir: Path) -> tuple[int, float]:
        """Epochs compared, and the largest difference, between a real search and the grid."""
        _, study = load_study(sweep_dir)
        n, worst = 0, 0.0
        for t in study.trials:
            _, curve = self.curves.get(_key(t.params), (None, []))
            for epoch, value in t.intermediate_values.items():
                if epoch <= len(curve):
                    n, worst = n + 1, max(worst, abs(value - curve[epoch - 1]))
        return n, worst


def replay(grid: Grid, strategy: tuple, seed: int, name: str, trials: int = 27) -> dict:
    sampler_name, pruner_name, first = strategy
    epochs = max(len(c) for _, c in grid.curves.values())
    study = optuna.create_study(
        study_name=name,
        direction="maximize",
        sampler=make_sampler(sampler_name, seed, None, trials),
        pruner=make_pruner(pruner_name, epochs, first),
    )
    spent, reached = 0, None

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent, reached
        for k, values in grid.choices.items():
            trial.suggest_categorical(k, values)
        twin = twin_of(trial)
        if twin is not None:  # drawn again: the earlier result, 0 epochs
            if twin.state == TrialState.PRUNED:
                raise optuna.TrialPruned()
            return float(twin.value)
        value, curve = grid.curves[_key(trial.params)]
        for epoch, v in enumerate(curve, 1):
            spent += 1
            trial.report(v, epoch)
            if epoch < len(curve) and trial.should_prune():  # as StudyReporter does
                raise optuna.TrialPruned()
        if reached is None and value >= grid.best - POINT:
            reached = spent
        return value

    with storages.optuna_quiet():
        study.optimize(objective, n_trials=trials)
    found = max((t.value for t in study.trials if t.state == TrialState.COMPLETE), default=0.0)
    return {
        "trials": [{"params": t.params, "state": t.state.name.lower()} for t in study.trials],
        "best": found,
        "epochs": spent,
        "reached_at": reached,
        "passed": found >= grid.best - POINT and spent <= SHARE * grid.epochs,
    }


def label(strategy: tuple) -> str:
    sampler, pruner, first = strategy
    if pruner == "none":
        return f"{sampler}, no pruning"
    return f"{sampler} + {pruner} from epoch {first_judged_epoch(pruner, first)}"


def plot(rows: list[dict], seeds: int, out: Path) -> Path:
    """Share of seeds that pass, per strategy, best first; the epochs spent beside each bar."""
    rows = sorted(rows, key=lambda r: (r["pass_rate"], -r["mean_epoch_share"]))
    colours = {"asha": "#1f77b4", "median": "#9467bd", "hyperband": "#2ca02c", "none": "#7f7f7f"}
    fig = Figure(figsize=(8, 0.32 * len(rows) + 1.4))
    ax = fig.subplots()
    ys = range(len(rows))
    ax.barh(ys, [100 * r["pass_rate"] for r in rows],
            color=[colours[r["strategy"][1]] for r in rows])  # fmt: skip
    for y, r in zip(ys, rows, strict=True):
        ax.text(100 * r["pass_rate"] + 1, y, f"{100 * r['mean_epoch_share']:.0f}% of the epochs",
                va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(list(ys), [label(r["strategy"]) for r in rows], fontsize=8)
    ax.set_xlim(0, 125)
    ax.set_xlabel(f"seeds that pass (%, of {seeds}): within 1 point of the grid's best, "
                  "at most a third of its epochs")  # fmt: skip
    ax.set_title("The search benchmark's grid replayed: 27 trials per search", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out, tight=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-search" / "full",
                        help="the benchmark's work folder (its grid/ and search-*/ sweeps)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--study", action="append", default=[], metavar="SAMPLER,PRUNER,NAME,SEED",
                        help="also replay this study exactly (the benchmark's own)")  # fmt: skip
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # thousands of studies, in memory
    grid = Grid(args.work / "grid")
    checked = {d.name: grid.deviation(d) for d in sorted(args.work.glob("search*")) if d.is_dir()}
    rows = []
    for strategy in STRATEGIES:
        runs = [replay(grid, strategy, seed, f"replay-{seed}") for seed in range(args.seeds)]
        for r in runs:
            del r["trials"]  # kept for the exact studies only
        rows.append({
            "strategy": strategy,
            "pass_rate": sum(r["passed"] for r in runs) / len(runs),
            "mean_epoch_share": sum(r["epochs"] for r in runs) / len(runs) / grid.epochs,
            "mean_gap_points": round(sum(100 * (grid.best - r["best"]) for r in runs) / len(runs), 2),
        })  # fmt: skip
        print(f"{label(strategy):32} pass {rows[-1]['pass_rate']:.0%}, "
              f"{rows[-1]['mean_epoch_share']:.0%} of the epochs", flush=True)  # fmt: skip
    exact = []
    for spec in args.study:
        sampler, pruner, name, seed = spec.split(",")
        got = replay(grid, (sampler, pruner, None), int(seed), name)
        exact.append(
            {"sampler": sampler, "pruner": pruner, "study": name, "seed": int(seed), **got}
        )
        print(f"study {name} ({sampler} + {pruner}, seed {seed}): best {got['best']:.4f}, "
              f"{got['epochs']} epochs, {'PASS' if got['passed'] else 'FAIL'}")  # fmt: skip
    date = datetime.now(timezone.utc)
    out = REPO / "benchmarks" / "results" / f"{date:%Y-%m-%d}-search-replay.json"
    result = {"date": date.isoformat(timespec="seconds"), "seeds": args.seeds,
              "grid": {"best": grid.best, "epochs": grid.epochs, "configurations": len(grid.curves)},
              "determinism": {k: {"epochs_compared": n, "largest_difference": d}
                              for k, (n, d) in checked.items()},
              "strategies": rows, "studies": exact}  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"determinism: {checked}; wrote {out} and {plot(rows, args.seeds, out.with_suffix('.png'))}"
    )


if __name__ == "__main__":
    main()
