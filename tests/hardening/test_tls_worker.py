"""The provider's gunicorn worker (``stellaops.tlsworker``) against real clients on loopback:
TLS handshakes run in the worker's event loop under one deadline and a per-worker cap, only
connections that completed their handshake (client certificate verified) reach the threads,
and everything else gthread did keeps working (keep-alive, plain HTTP, start-up checks)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.provider import STELLA, ProviderProcess, make_tls
from tests.hardening._support import provider_config
from tests.hardening._tls_attack import (
    PROVIDER_REQUEST,
    client_hello,
    dropped,
    gatekeeper_call,
    gatekeeper_context,
    handshake_metric,
)


def _mtls(tmp_path: Path, provider_factory: Callable[..., ProviderProcess], *, workers: int = 2, env: dict[str, str] | None = None) -> ProviderProcess:
    tls = make_tls(tmp_path / "tls")
    extra = f"server: {{workers: {workers}, tls: {{cert: {tls.server_cert}, key: {tls.server_key}, clientCA: {tls.ca_cert}}}}}\n"
    return provider_factory(provider_config(tmp_path, {}, extra=extra), tls=tls, env=env)


def _stalled(port: int, first: bytes = b"\x16") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(first)
    s.setblocking(False)
    return s


def _wait_dropped(socks: list[socket.socket], within: float) -> list[bool]:
    end, state = time.monotonic() + within, [False] * len(socks)
    while time.monotonic() < end and not all(state):
        state = [done or dropped(s) for done, s in zip(state, socks, strict=True)]
        time.sleep(0.05)
    return state


def _verify_on(conn: http.client.HTTPConnection) -> int:
    conn.request("POST", "/gatekeeper/v1/verify", body=PROVIDER_REQUEST, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    assert doc["kind"] == "ProviderResponse" and doc["response"]["systemError"] == "", doc
    return resp.status


def test_handshake_deadline_drops_a_client_that_trickles_its_client_hello(
    tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """Each byte arrives well inside any per-read timeout, but the handshake has one deadline
    (STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS, 1 s): the client is cut long before its ClientHello
    is complete. A client that sends one byte and stalls is cut too."""
    p = _mtls(tmp_path, provider_factory)
    hello = client_hello()
    trickler = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    stalled = _stalled(p.port)
    sent, cut = 0, False
    while sent < len(hello) - 1:  # never completes: ~10 bytes/s against a ~500-byte hello
        try:
            trickler.sendall(hello[sent : sent + 1])
        except OSError:
            cut = True
            break
        sent += 1
        trickler.setblocking(False)
        if dropped(trickler):
            cut = True
            break
        trickler.setblocking(True)
        time.sleep(0.1)
    assert cut, "the server waited for the whole trickled ClientHello"
    assert sent < len(hello) // 2, f"cut only after {sent} of {len(hello)} bytes"
    assert _wait_dropped([stalled], within=10) == [True], "a stalled handshake was never cut"
    trickler.close()
    stalled.close()
    assert handshake_metric(p, "expired") >= 2
    assert gatekeeper_call(p.port, gatekeeper_context(p.tls), 5)[0]  # type: ignore[arg-type]


def test_handshakes_beyond_the_cap_evict_the_oldest(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    """At most STELLAOPS_MAX_HANDSHAKES connections per worker may be in their handshake; a new
    one evicts the oldest (here long before their 30 s deadline), and Gatekeeper still gets in."""
    p = _mtls(tmp_path, provider_factory, workers=1, env={"STELLAOPS_MAX_HANDSHAKES": "8", "STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS": "30"})
    old = [_stalled(p.port) for _ in range(8)]
    time.sleep(0.5)
    assert not any(dropped(s) for s in old), "dropped below the cap"
    new = [_stalled(p.port) for _ in range(8)]
    try:
        assert all(_wait_dropped(old, within=5)), "the oldest handshakes were not evicted at the cap"
        assert not any(dropped(s) for s in new), "newer handshakes were evicted before the oldest"
        assert gatekeeper_call(p.port, gatekeeper_context(p.tls), 5)[0]  # type: ignore[arg-type]
        assert handshake_metric(p, "evicted") >= 9  # the 8 old ones, then one for Gatekeeper's call
    finally:
        for s in old + new:
            s.close()


@pytest.mark.parametrize("certificate", ["none", "foreign CA"])
def test_client_without_a_gatekeeper_certificate_is_refused_in_the_handshake(
    certificate: str, tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    p = _mtls(tmp_path, provider_factory)
    assert p.tls is not None
    ctx = ssl.create_default_context(cafile=str(p.tls.ca_cert))
    if certificate == "foreign CA":
        evil = make_tls(tmp_path / "evil", ca_name="evil-ca")
        ctx.load_cert_chain(str(evil.client_cert), str(evil.client_key))
    refused_before = handshake_metric(p, "refused")
    ok, what = gatekeeper_call(p.port, ctx, 5)
    assert not ok and "HTTP/" not in what, f"answered without Gatekeeper's certificate: {what}"
    assert handshake_metric(p, "refused") == refused_before + 1  # refused by the worker's handshake
    assert gatekeeper_call(p.port, gatekeeper_context(p.tls), 5)[0]


def test_keep_alive_requests_share_one_tls_connection(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    """Gatekeeper reuses its connections: requests on one TLS connection, also after an idle
    pause longer than the handshake deadline, are all served on that one handshake."""
    p = _mtls(tmp_path, provider_factory)
    assert p.tls is not None
    completed_before = handshake_metric(p, "completed")
    conn = http.client.HTTPSConnection("localhost", p.port, context=gatekeeper_context(p.tls), timeout=10)
    try:
        statuses = [_verify_on(conn) for _ in range(3)]
        first_socket = conn.sock
        time.sleep(1.5)  # idle longer than STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS (1 s)
        statuses += [_verify_on(conn) for _ in range(3)]
        assert conn.sock is first_socket, "the connection was not kept alive"
    finally:
        conn.close()
    assert statuses == [200] * 6
    # one handshake for the six requests, and one for the /metrics read itself
    assert handshake_metric(p, "completed") == completed_before + 2


@pytest.mark.parametrize(
    "garbage",
    [
        bytes(range(256)) * 2,  # random bytes
        b"\x16\x00\x00\x00\x05hello",  # a handshake record header with no TLS version
        b"\x17\x03\x03\x00\x10" + b"\x00" * 16,  # application data before any handshake
    ],
    ids=["bytes", "bad-version", "data-before-handshake"],
)
def test_garbage_instead_of_a_client_hello_is_dropped_without_affecting_others(
    garbage: bytes, tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    p = _mtls(tmp_path, provider_factory)
    assert p.tls is not None
    ctx = gatekeeper_context(p.tls)
    keep = http.client.HTTPSConnection("localhost", p.port, context=ctx, timeout=10)
    try:
        assert _verify_on(keep) == 200
        refused_before = handshake_metric(p, "refused")
        junk = [_stalled(p.port, garbage) for _ in range(50)]
        assert all(_wait_dropped(junk, within=5)), "garbage connections were left open"
        for s in junk:
            s.close()
        assert handshake_metric(p, "refused") >= refused_before + 50
        assert _verify_on(keep) == 200  # the open connection is unaffected
        assert gatekeeper_call(p.port, ctx, 5)[0]  # and new ones still get in
    finally:
        keep.close()


def test_plain_http_is_served_by_the_same_worker(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    p = provider_factory(provider_config(tmp_path, {}))  # stella serve --plain-http
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    try:
        assert [_verify_on(conn) for _ in range(3)] == [200, 200, 200]
    finally:
        conn.close()
    from stellaops.config import load_config
    from stellaops.gunicorn_conf import settings

    assert settings(load_config(str(p.config_path)), plain_http=True)["worker_class"] == "stellaops.tlsworker.TLSHandshakeWorker"


@pytest.mark.parametrize("scheme", ["plain", "mtls"])
def test_clients_that_never_close_after_connection_close_do_not_stall_the_worker(
    scheme: str, tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """After a "Connection: close" answer the server half-closes and drains the peer until it
    closes (up to 2 s). Peers that never close are drained from the event loop: gthread did it
    with a blocking read on the loop thread, so ten of them held off every other connection."""
    if scheme == "plain":
        p = provider_factory(provider_config(tmp_path, {}, extra="server: {workers: 1}\n"))
        ctx = None
    else:
        p = _mtls(tmp_path, provider_factory, workers=1)
        assert p.tls is not None
        ctx = gatekeeper_context(p.tls)
    lingering = []
    try:
        for _ in range(10):
            raw = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            lingering.append(s)  # read the answer, then never close
        calls = [gatekeeper_call(p.port, ctx, 1.5) for _ in range(3)]
        assert all(ok for ok, _ in calls), calls
    finally:
        for s in lingering:
            s.close()


@pytest.mark.parametrize("setting", ["STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS=soon", "STELLAOPS_MAX_HANDSHAKES=0"])
def test_invalid_handshake_setting_stops_the_start(setting: str, tmp_path: Path) -> None:
    name, value = setting.split("=")
    cfg = tmp_path / "stellaops.yaml"
    cfg.write_text(provider_config(tmp_path, {}))
    run = subprocess.run(
        [STELLA, "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", "1", "--plain-http"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, name: value},
    )
    assert run.returncode != 0
    assert f"CONFIG_INVALID: ${name} is '{value}'" in run.stderr, run.stderr



def test_sigterm_stops_gracefully_with_handshakes_and_kept_alive_connections_open(
    tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """Stopping (a rolling update) with a client mid-handshake and one kept alive: the worker
    closes both and exits cleanly, without being killed at the graceful timeout."""
    import signal

    p = _mtls(tmp_path, provider_factory, workers=1)
    assert p.tls is not None and p.proc is not None
    keep = http.client.HTTPSConnection("localhost", p.port, context=gatekeeper_context(p.tls), timeout=10)
    stalled = _stalled(p.port)
    try:
        assert _verify_on(keep) == 200
        p.proc.send_signal(signal.SIGTERM)
        assert p.proc.wait(timeout=30) == 0
        assert _wait_dropped([stalled], within=1) == [True]
    finally:
        keep.close()
        stalled.close()
    assert "Traceback" not in p.log(), p.log()[-2000:]
