"""Hardening tests (issue 10): fuzzing, tamper corpus, SSRF, limits, faults, load, secrets."""
