"""Tuning the engine honestly: parameter search and walk-forward analysis over the backtester,
with the overfitting measured (issue 16)."""
