"""Helpers for ``bench/run.py`` (``make bench``): environment, measurement, report."""
