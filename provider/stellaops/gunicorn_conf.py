"""gunicorn settings for the provider, shared by ``stella serve`` and the container's
``gunicorn -c python:stellaops.gunicorn_settings 'stellaops.app:create_app()'``.

Worker model (docs/operations.md, measured in docs/benchmarks.md): the work per key is mostly
waiting on registries plus short crypto, so threaded workers (``server.workers`` processes ×
``server.threads`` threads) serve concurrent Gatekeeper calls; each process also keeps a bounded
verification pool (``server.verifyConcurrency``). The worker class is always
:class:`stellaops.tlsworker.TLSHandshakeWorker`: gunicorn's ``gthread`` with the TLS handshake and
the request head (plus a small body) read in the worker's event loop under one deadline, so
clients that never finish a handshake or trickle a request cannot hold the threads; the threads
read anything larger under a deadline of their own, and graceful closes are drained in the loop
instead of blocking it (with ``--plain-http`` the same, minus the handshake). TLS certificates are re-read when their files change
(cert-manager rotation) by a watcher thread in each worker.
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
    from stellaops import tlsworker  # noqa: F401 - checks its environment settings here, before gunicorn starts
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
        "worker_class": "stellaops.tlsworker.TLSHandshakeWorker",  # gthread + event-loop TLS handshakes and request heads
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


_context: tuple[ssl.SSLContext, Any, Any] | None = None  # (context, conf, factory)
_conf_for_context: Any = None
_context_lock = threading.Lock()


def ssl_context(conf: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    """One SSL context per worker. gunicorn asks for a context for every accepted connection:
    building (and keeping) one each time would load the certificates per connection and grow
    without bound; one shared context is also the one the watcher reloads on rotation."""
    global _context, _conf_for_context
    with _context_lock:
        if _context is None:
            _conf_for_context = conf
            _context = (_new_context(default_ssl_context_factory), conf, default_ssl_context_factory)
        return _context[0]


def _new_context(factory: Any) -> ssl.SSLContext:
    """What gunicorn's default factory builds (purpose client-auth, the configured files and
    verify mode), with TLS 1.2 as the floor. The handshake deadline is not the context's job: the
    worker (:mod:`stellaops.tlsworker`) runs the handshake non-blocking under its own deadline."""
    del factory  # built here: the default factory takes no minimum version
    conf = _conf_for_context
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # Gatekeeper itself insists on TLS 1.3
    ctx.load_cert_chain(certfile=conf.certfile, keyfile=conf.keyfile)
    if conf.ca_certs:
        ctx.load_verify_locations(cafile=conf.ca_certs)
    ctx.verify_mode = conf.cert_reqs
    if conf.ciphers:
        ctx.set_ciphers(conf.ciphers)
    return ctx


def _mtimes(paths: list[str]) -> tuple[float, ...]:
    out = []
    for p in paths:
        try:
            out.append(os.stat(p).st_mtime)
        except OSError:
            out.append(-1.0)
    return tuple(out)


def _watch_certs(_conf: Any) -> None:
    """Swap in a freshly built SSL context when the certificate, key or client CA files change
    (a new context, not a reload into the old one: loading a CA *adds* it, and a rotated-out
    client CA must stop being trusted). Connections already open keep their context."""
    global _context
    paths = [_conf.certfile, _conf.keyfile] + ([_conf.ca_certs] if _conf.ca_certs else [])
    last = _mtimes(paths)  # the files as this worker loaded them at start
    while True:
        time.sleep(CERT_POLL_SECONDS)
        current = _context
        if current is None:
            continue
        _ctx, conf, factory = current
        now = _mtimes(paths)
        if now != last and -1.0 not in now:
            try:
                fresh = _new_context(factory)
            except (OSError, ssl.SSLError):
                continue  # half-written files: try again on the next tick
            with _context_lock:
                _context = (fresh, conf, factory)
        last = now


def on_starting(server: Any) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="stellaops-metrics-")


def post_fork(server: Any, worker: Any) -> None:
    if server.cfg.certfile:
        threading.Thread(target=_watch_certs, args=(server.cfg,), name="cert-watch", daemon=True).start()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
