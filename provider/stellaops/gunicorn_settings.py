"""Module-level gunicorn settings for ``gunicorn -c python:stellaops.gunicorn_settings
'stellaops.app:create_app()'`` (the container's entry point). The configuration comes from
``$STELLAOPS_CONFIG``; ``STELLAOPS_PLAIN_HTTP=1`` serves plain HTTP (local use only)."""

from __future__ import annotations

import os

from stellaops.config import load_config
from stellaops.gunicorn_conf import settings as _settings

globals().update(_settings(load_config(None), plain_http=os.environ.get("STELLAOPS_PLAIN_HTTP") == "1"))
