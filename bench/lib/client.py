"""A keep-alive Gatekeeper client: one persistent connection, as Gatekeeper's Go client keeps one.

A connection stays on one gunicorn worker, so a warm-up on the same connection warms exactly the
worker that answers the measured requests (the verdict cache is per worker process).
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from tests.fixtures.provider import ProviderProcess

PATH = "/gatekeeper/v1/verify"


def request_body(keys: list[str]) -> bytes:
    return json.dumps(
        {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": keys}},
        separators=(",", ":"),
    ).encode()


class Conn:
    def __init__(self, provider: ProviderProcess, timeout: float = 30.0) -> None:
        self.provider = provider
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.provider.tls:
                self._conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.provider.port, timeout=self.timeout, context=self.provider.ssl_context()
                )
            else:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.provider.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, body: bytes, path: str = PATH) -> tuple[float, int, bytes]:
        """One request; returns (seconds, status, body). Reconnects once if the server closed."""
        for attempt in (0, 1):
            conn = self._open()
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
                continue
            dt = time.perf_counter() - t0
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return dt, resp.status, data
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[float, int, bytes]:
        conn = self._open()
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        return time.perf_counter() - t0, resp.status, data


def check_response(status: int, data: bytes, keys: list[str], *, want_verified: bool = True) -> str:
    """'' when every key got a verified verdict and no systemError; else a short description."""
    if status != 200:
        return f"HTTP {status}: {data[:200]!r}"
    doc: dict[str, Any] = json.loads(data)
    resp = doc.get("response") or {}
    if resp.get("systemError"):
        return f"systemError: {resp['systemError'][:300]}"
    items = {i.get("key"): i for i in resp.get("items") or []}
    for k in keys:
        item = items.get(k)
        if item is None:
            return f"no item for {k}"
        if item.get("error"):
            return f"error for {k}: {item['error'][:200]}"
        if want_verified:
            atts = (item.get("value") or {}).get("attestations") or []
            if not any(a.get("verified") for a in atts):
                errs = [e for a in atts for e in a.get("errors", [])] + list((item.get("value") or {}).get("errors") or [])
                return f"no verified attestation for {k}: {json.dumps(errs)[:300]}"
    return ""
