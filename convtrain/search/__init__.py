"""The experiment engine on Optuna: studies of ordinary `convtrain train` runs."""
