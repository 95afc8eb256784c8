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
def serve(config_path: str | None, host: str | None, port: int | None, plain_http: bool, workers: int | None) -> None:
    """Run the Gatekeeper external data provider (and the import API) under gunicorn.

    \b
    Examples:
      stella serve --config /etc/stellaops/stellaops.yaml
      stella serve --config stellaops.yaml --host 127.0.0.1 --port 8080 --plain-http
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

    scheme = "http" if plain_http or not config.server.tls.enabled else "https"
    click.echo(f"stella: serving on {scheme}://{opts['bind'][0]} (config {config.source})", err=True)
    _App().run()
