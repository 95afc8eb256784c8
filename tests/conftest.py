"""Shared pytest configuration: fixture plugins for the real parts, and marker handling."""

from __future__ import annotations

import os

# Every module in tests/fixtures/ (but tools.py and __init__.py) is a fixture plugin; each area
# owns its own module there, so adding fixtures never means editing this file.
_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
pytest_plugins = sorted(
    "tests.fixtures." + name[:-3]
    for name in os.listdir(_FIXTURES)
    if name.endswith(".py") and name not in ("__init__.py", "tools.py")
)


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    import pytest

    if os.environ.get("STELLAOPS_ONLINE") == "1":
        return
    skip = pytest.mark.skip(reason="needs the internet; set STELLAOPS_ONLINE=1")
    for item in items:
        if "online" in item.keywords:
            item.add_marker(skip)
