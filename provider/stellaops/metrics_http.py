"""The plain-HTTP metrics listener of ``stella serve --metrics-port``: ``/metrics`` only,
aggregated over the gunicorn workers (``PROMETHEUS_MULTIPROC_DIR``), so Prometheus can scrape
without the client certificate the provider's mTLS port requires.

A separate process, started by ``stella serve`` before gunicorn (a thread in gunicorn's arbiter
would be forked into every worker). It exits when its parent does (``--parent PID``). What it
serves holds no secret: the metric names and labels of docs/operations.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stellaops.metrics_http")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        print("stella metrics: PROMETHEUS_MULTIPROC_DIR is not set", file=sys.stderr)
        return 2
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    try:
        while os.getppid() == args.parent:  # reparented: stella serve is gone
            time.sleep(0.5)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
