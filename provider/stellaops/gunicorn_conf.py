"""gunicorn settings for the provider, shared by ``stella serve`` and the container's
``gunicorn -c python:stellaops.gunicorn_settings 'stellaops.app:create_app()'``.

Worker model (docs/operations.md, measured in docs/benchmarks.md): the work per key is mostly
waiting on registries plus short crypto, so ``gthread`` workers (``server.workers`` processes ×
``server.threads`` threads) serve concurrent Gatekeeper calls; each process also keeps a bounded
verification pool (``server.verifyConcurrency``). TLS certificates are re-read when their files
change (cert-manager rotation) by a watcher thread in each worker.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
import time
from typing import Any

from stellaops.config import Config

CERT_POLL_SECONDS = float(os.environ.get("STELLAOPS_CERT_POLL_SECONDS", "10"))


def settings(config: Config, *, host: str | None = None, port: int | None = None, plain_http: bool = False) -> dict[str, Any]:
    """gunicorn settings for this configuration (``stella serve`` passes its flags here)."""
    from stellaops.errors import ConfigError

    tls = config.server.tls
    if not tls.enabled and not plain_http:
        raise ConfigError(
            f"{config.source}: server.tls: no TLS certificate configured",
            hint="set server.tls.cert and server.tls.key (Gatekeeper only calls https providers), "
            "or pass --plain-http for local use",
        )
    out: dict[str, Any] = {
        "bind": [f"{_bracket(host or config.server.host)}:{port or config.server.port}"],
        "workers": config.server.workers,
        "worker_class": "gthread",
        "threads": config.server.threads,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 75,  # Gatekeeper reuses connections; keep them open longer than its idle timeout
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "limit_request_line": 8190,
        "post_fork": post_fork,
        "child_exit": child_exit,
        "on_starting": on_starting,
    }
    if tls.enabled and not plain_http:
        out.update(certfile=tls.cert, keyfile=tls.key, ssl_context=ssl_context)
        if tls.client_ca:
            out.update(ca_certs=tls.client_ca, cert_reqs=ssl.CERT_REQUIRED)
    return out


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


_contexts: list[tuple[ssl.SSLContext, Any]] = []


def ssl_context(conf: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    ctx = default_ssl_context_factory()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # Gatekeeper itself insists on TLS 1.3
    _contexts.append((ctx, conf))
    return ctx


def _mtimes(paths: list[str]) -> tuple[float, ...]:
    out = []
    for p in paths:
        try:
            out.append(os.stat(p).st_mtime)
        except OSError:
            out.append(-1.0)
    return tuple(out)


def _watch_certs() -> None:
    """Reload the serving certificate (and client CA) into the live SSL contexts on change."""
    last: tuple[float, ...] | None = None
    while True:
        time.sleep(CERT_POLL_SECONDS)
        for ctx, conf in list(_contexts):
            paths = [conf.certfile, conf.keyfile] + ([conf.ca_certs] if conf.ca_certs else [])
            now = _mtimes(paths)
            if last is not None and now != last and -1.0 not in now:
                try:
                    ctx.load_cert_chain(conf.certfile, conf.keyfile)
                    if conf.ca_certs:
                        ctx.load_verify_locations(cafile=conf.ca_certs)
                except (OSError, ssl.SSLError):
                    continue  # half-written files: try again on the next tick
            last = now


def on_starting(server: Any) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="stellaops-metrics-")


def post_fork(server: Any, worker: Any) -> None:
    if server.cfg.certfile:
        threading.Thread(target=_watch_certs, name="cert-watch", daemon=True).start()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
