"""Module-level gunicorn settings for ``gunicorn -c python:stellaops.gunicorn_settings
'stellaops.app:create_app()'`` (the container's entry point). The configuration comes from
``$STELLAOPS_CONFIG``; ``STELLAOPS_PLAIN_HTTP=1`` serves plain HTTP (local use only). The same
settings as ``stella serve``, worker class included (``stellaops.tlsworker.TLSHandshakeWorker``,
tuned by ``STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS`` and ``STELLAOPS_MAX_HANDSHAKES``)."""

from __future__ import annotations

import os

from stellaops.config import load_config
from stellaops.gunicorn_conf import settings as _settings

globals().update(_settings(load_config(None), plain_http=os.environ.get("STELLAOPS_PLAIN_HTTP") == "1"))
