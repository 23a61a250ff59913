"""Plots. The only place that selects matplotlib's backend: Agg, so no display is ever needed."""

import matplotlib

matplotlib.use("Agg")
