"""Backtests and threshold tuning: replay past conversations through the serving runtime."""
