"""Metrics and robustness evaluation."""
