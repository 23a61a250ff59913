"""A study's figures, drawn by Optuna's own matplotlib visualisations (no plotly).

Each figure needs enough finished trials (importances two complete ones with differing
params, parallel coordinates and slices one); one that cannot be drawn yet is left out and
named in the returned notes, never drawn empty.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; a sweep may run without a display

import matplotlib.pyplot as plt  # noqa: E402
import optuna.visualization.matplotlib as ovm  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from convtrain.plots.save import save_figure  # noqa: E402

FIGURES = {
    "study_history": ("optimisation history", ovm.plot_optimization_history),
    "study_importances": ("parameter importances", ovm.plot_param_importances),
    "study_parallel": ("parallel coordinates", ovm.plot_parallel_coordinate),
    "study_slices": ("slice plots", ovm.plot_slice),
    "study_epochs": ("validation curves (reported epochs)", ovm.plot_intermediate_values),
}


def _readable(fig: Any) -> None:
    """Optuna's figures as drawn cut their long parameter names (`model.layers[0].filters`) at
    the edge and run the slice plots' axis labels into each other: the canvas is cropped to
    what is drawn (save_figure's tight), each slice panel gets room, long labels break at dots."""
    panels = [ax for ax in fig.axes if ax.get_xlabel() and ax.get_label() != "<colorbar>"]
    if len(panels) > 1:
        width, height = fig.get_size_inches()
        fig.set_size_inches(max(width, 3.6 * len(panels)), height)
    for ax in panels:
        label = ax.get_xlabel()
        if len(label) > 20:
            ax.set_xlabel(label.replace(".", ".\n"), fontsize=9)
        for tick in ax.get_xticklabels():
            tick.set_fontsize(8)


LEGEND_MAX = 10  # trials named in a legend; past it the legend outgrows the plot


def _figure(result: Any) -> Any:
    """Optuna returns an Axes, or an array of them (slice plots): their figure."""
    first = result.flat[0] if hasattr(result, "flat") else result
    return first.get_figure()


def write_figures(study: Any, out_dir: Path, target_name: str) -> tuple[list[Path], list[str]]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written, notes = [], []
    for stem, (title, plot) in FIGURES.items():
        needs = 2 if stem == "study_importances" else 1
        if len(complete) < needs:
            notes.append(f"{title}: needs {needs} complete trials, the study has {len(complete)}")
            continue
        kwargs: dict[str, Any] = {} if stem == "study_epochs" else {"target_name": target_name}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib API experimental
                fig = _figure(plot(study, **kwargs))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            plt.close("all")
            notes.append(f"{title}: not drawn ({str(exc).splitlines()[0]})")
            continue
        _readable(fig)
        if stem == "study_epochs":
            for ax in fig.axes:
                legend = ax.get_legend()
                if legend is not None and len(legend.get_texts()) > LEGEND_MAX:
                    legend.remove()
                    ax.set_title(f"{ax.get_title()} ({len(legend.get_texts())} trials; the "
                                 "table names them)")  # fmt: skip
        written.append(save_figure(fig, out_dir / f"{stem}.png", tight=True))
    return written, notes
