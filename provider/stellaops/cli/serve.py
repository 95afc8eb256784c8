"""``stella serve``: run the provider under gunicorn."""

from __future__ import annotations

from typing import Any

import click


@click.command()
@click.option("--config", "config_path", metavar="FILE", help="stellaops.yaml (default: $STELLAOPS_CONFIG, ./stellaops.yaml).")
@click.option("--host", help="Address to listen on (default: server.host, 0.0.0.0).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default: server.port, 8443).")
@click.option("--plain-http", is_flag=True, help="Serve plain HTTP without TLS. For local use only: Gatekeeper requires https.")
@click.option("--workers", type=click.IntRange(1, 64), help="gunicorn worker processes (default: server.workers).")
@click.option(
    "--metrics-port", type=click.IntRange(1, 65535),
    help="Also serve /metrics over plain HTTP on this port (no client certificate), for Prometheus.",
)
@click.option("--metrics-host", metavar="H", help="Address of the --metrics-port listener (default: --host / server.host).")
def serve(config_path: str | None, host: str | None, port: int | None, plain_http: bool, workers: int | None,
          metrics_port: int | None, metrics_host: str | None) -> None:
    """Run the Gatekeeper external data provider (and the import API) under gunicorn.

    \b
    Examples:
      stella serve --config /etc/stellaops/stellaops.yaml
      stella serve --config stellaops.yaml --host 127.0.0.1 --port 8080 --plain-http
      stella serve --config /etc/stellaops/stellaops.yaml --metrics-port 9090   # Prometheus: http://POD:9090/metrics
    """
    from gunicorn.app.base import BaseApplication

    from stellaops import gunicorn_conf
    from stellaops.config import load_config

    config = load_config(config_path)
    opts = gunicorn_conf.settings(config, host=host, port=port, plain_http=plain_http)
    if workers:
        opts["workers"] = workers

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for k, v in opts.items():
                self.cfg.set(k, v)

        def load(self) -> Any:
            from stellaops.app import create_app

            return create_app(config)

    for address in opts["bind"]:
        check_bind(address)
    metrics_child = None
    if metrics_port:
        mhost = metrics_host or host or config.server.host
        maddress = f"[{mhost}]:{metrics_port}" if ":" in mhost else f"{mhost}:{metrics_port}"
        if maddress in opts["bind"]:
            raise click.UsageError(f"--metrics-port {metrics_port} is the provider's own port")
        check_bind(maddress)
        metrics_child = _start_metrics_listener(mhost, metrics_port)
        click.echo(f"stella: metrics on http://{maddress}/metrics", err=True)
    scheme = "http" if plain_http or not config.server.tls.enabled else "https"
    click.echo(f"stella: serving on {scheme}://{opts['bind'][0]} (config {config.source})", err=True)
    try:
        _App().run()
    finally:
        if metrics_child is not None:
            metrics_child.terminate()
            metrics_child.wait(timeout=10)


def _start_metrics_listener(host: str, port: int) -> Any:
    """The plain-HTTP /metrics process (:mod:`stellaops.metrics_http`), sharing the workers'
    PROMETHEUS_MULTIPROC_DIR (set here, before gunicorn, which then keeps it)."""
    import os
    import subprocess
    import sys
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="stellaops-metrics-")
    return subprocess.Popen(
        [sys.executable, "-m", "stellaops.metrics_http", "--host", host, "--port", str(port), "--parent", str(os.getpid())]
    )


def check_bind(address: str) -> None:
    """Refuse, in one line, an address gunicorn cannot listen on (gunicorn would log "Connection
    in use" and retry for five seconds). Bound the way gunicorn binds (SO_REUSEADDR), then
    released at once: only a process that takes the port in between still meets gunicorn's retries."""
    import errno
    import socket

    from ..errors import ConfigError

    if address.startswith(("unix:", "fd://")):
        return
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host or None, int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}", hint="check --host/server.host") from exc
    family, socktype, proto, _, sockaddr = infos[0]
    with socket.socket(family, socktype, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"{address} is already in use: another process listens there",
                    hint="stop that process or choose another --port (server.port)",
                ) from exc
            if exc.errno == errno.EACCES:
                raise ConfigError(f"cannot listen on {address}: permission denied",
                                  hint="ports below 1024 need privileges: choose another --port") from exc
            raise ConfigError(f"cannot listen on {address}: {exc.strerror}", hint="check --host/server.host") from exc
