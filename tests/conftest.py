"""Shared pytest configuration: fixture plugins for the real parts, and marker handling."""

from __future__ import annotations

import os

# Every module in tests/fixtures/ (but the helpers tools.py, procs.py and __init__.py) is a fixture plugin; each area
# owns its own module there, so adding fixtures never means editing this file.
_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
pytest_plugins = sorted(
    "tests.fixtures." + name[:-3]
    for name in os.listdir(_FIXTURES)
    if name.endswith(".py") and name not in ("__init__.py", "tools.py", "procs.py")
)


# Loopback only (DESIGN.md §8): every tool the tests start (cosign, opa, the Gatekeeper harness,
# kyverno) gets a proxy on a loopback port where nothing listens, so an accidental reach for the
# internet (cosign's TUF fetch, say) fails on this machine without even a DNS query leaving it.
# Loopback destinations bypass it; our own registry client ignores proxy variables entirely.
_DEAD_PROXY = "http://127.0.0.1:9"
for _var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
    os.environ[_var] = _DEAD_PROXY
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = "127.0.0.1,localhost,::1"


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    import pytest

    if os.environ.get("STELLAOPS_ONLINE") == "1":
        return
    skip = pytest.mark.skip(reason="needs the internet; set STELLAOPS_ONLINE=1")
    for item in items:
        if "online" in item.keywords:
            item.add_marker(skip)
