"""Test support: tiny stock models, controlled corruptions of speech and the filter calibration harness.

Importable as `support` from the tests (pytest adds `tests/` to the path) and from `experiments/`.
"""
