"""Test support: tiny stock models, espeak-ng speech, controlled corruptions of speech and the filter calibration
harness.

Importable as `support` from the tests (pytest adds `tests/` to the path) and from scripts that add `tests/` to
`sys.path` (the filter calibration).
"""
