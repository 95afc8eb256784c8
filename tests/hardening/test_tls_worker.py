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
from typing import Any

import pytest

from tests.fixtures.provider import STELLA, ProviderProcess, make_tls
from tests.hardening._support import provider_config
from tests.hardening._tls_attack import (
    PROVIDER_REQUEST,
    Trickle,
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


def test_a_flood_from_one_address_evicts_its_own_handshakes(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    """At the cap, a new connection evicts the oldest of the address with the most connections
    in the loop: a flood from another address no longer evicts Gatekeeper's handshakes (it did
    when the oldest of all went first)."""
    p = _mtls(tmp_path, provider_factory, workers=1, env={"STELLAOPS_MAX_HANDSHAKES": "8", "STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS": "30"})
    gatekeepers = [_stalled(p.port) for _ in range(2)]  # 127.0.0.1, in their handshake
    time.sleep(0.2)
    flood = []
    for _ in range(12):  # 127.0.0.2: 6 fill the cap, 6 more evict the flood's oldest
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5, source_address=("127.0.0.2", 0))
        s.sendall(b"\x16")
        s.setblocking(False)
        flood.append(s)
    try:
        assert all(_wait_dropped(flood[:6], within=5)), "the flood's oldest were not evicted"
        time.sleep(0.3)
        assert not any(dropped(s) for s in gatekeepers), "another address's flood evicted these handshakes"
        assert not any(dropped(s) for s in flood[6:]), "more than the flood's oldest were evicted"
        assert gatekeeper_call(p.port, gatekeeper_context(p.tls), 5)[0]  # type: ignore[arg-type]
    finally:
        for s in gatekeepers + flood:
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
    closes both while it stops (not only when the process is gone) and exits cleanly, without
    being killed at the graceful timeout."""
    import signal

    # a handshake deadline longer than the graceful timeout (10 s): only the stop can drop it
    p = _mtls(tmp_path, provider_factory, workers=1, env={"STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS": "60"})
    assert p.tls is not None and p.proc is not None
    keep = http.client.HTTPSConnection("localhost", p.port, context=gatekeeper_context(p.tls), timeout=10)
    stalled = _stalled(p.port, b"\x16\x03\x01")
    try:
        assert _verify_on(keep) == 200
        time.sleep(0.3)
        assert _wait_dropped([stalled], within=0.1) == [False]
        p.proc.send_signal(signal.SIGTERM)
        # while the provider still runs: the stopping worker drops the handshake at once (the
        # kept-alive connection within 2 s), not at gunicorn's graceful timeout, which kills it
        assert _wait_dropped([stalled], within=5) == [True], "the stopping worker kept the handshake open"
        assert p.proc.poll() is None or p.proc.returncode == 0
        assert p.proc.wait(timeout=30) == 0
    finally:
        keep.close()
        stalled.close()
    log = p.log()
    assert "Traceback" not in log, log[-2000:]
    assert "WORKER TIMEOUT" not in log and "SIGKILL" not in log, log[-2000:]


# ---------------------------------------------------------------- slow requests (H1)

_HEAD = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"


def _two_threads(tmp_path: Path, provider_factory: Callable[..., ProviderProcess], scheme: str) -> tuple[ProviderProcess, ssl.SSLContext | None]:
    """One worker with two threads: two slow clients are enough to hold every thread."""
    if scheme == "plain":
        return provider_factory(provider_config(tmp_path, {}, extra="server: {workers: 1, threads: 2}\n")), None
    tls = make_tls(tmp_path / "tls")
    ca = f", clientCA: {tls.ca_cert}" if scheme == "mtls" else ""
    extra = f"server: {{workers: 1, threads: 2, tls: {{cert: {tls.server_cert}, key: {tls.server_key}{ca}}}}}\n"
    p = provider_factory(provider_config(tmp_path, {}, extra=extra), tls=tls)
    if scheme == "mtls":
        return p, gatekeeper_context(tls)
    return p, ssl.create_default_context(cafile=str(tls.ca_cert))


def _connect(port: int, ctx: ssl.SSLContext | None) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw


@pytest.mark.parametrize(
    ("scheme", "attack"),
    [
        ("tls", "trickled head"),  # TLS without clientCA: anyone completes the handshake
        ("mtls", "trickled head"),
        ("mtls", "kept-alive, then one byte"),  # a valid client certificate, then silence
        ("tls", "trickled small body"),
        ("plain", "trickled head"),
        ("plain", "kept-alive, then one byte"),
    ],
)
def test_slow_requests_cannot_hold_the_threads(
    scheme: str, attack: str, tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """The request head (and a small body) is read in the event loop under one deadline
    (STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS, 1 s: from accept for the first request, from the
    first byte for a kept-alive one). Two clients that trickle a byte every 0.2 s, or send one
    byte of their next kept-alive request and stall, held both threads of gthread for as long as
    they liked; here a third client is served meanwhile, and both are cut by the deadline."""
    p, ctx = _two_threads(tmp_path, provider_factory, scheme)
    before = handshake_metric(p, "head_timeout")  # read first: /metrics needs a thread too
    attackers = [_connect(p.port, ctx) for _ in range(2)]
    piece = b"X-Pad: 1\r\n"
    for a in attackers:
        if attack == "kept-alive, then one byte":
            a.sendall(_HEAD + b"\r\n")
            assert a.recv(65536).startswith(b"HTTP/1.1 200")
            a.sendall(b"G")
            piece = b""
        elif attack == "trickled small body":
            a.sendall(b"POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
            piece = b" "
        else:
            a.sendall(_HEAD)
    try:
        with Trickle(attackers, piece=piece, gap=0.2) as trickle:
            time.sleep(0.3)
            ok, what = gatekeeper_call(p.port, ctx, 1.5)
            assert ok, f"a third client was not served while two slow ones were connected: {what}"
            assert trickle.wait_all_cut(within=5), f"slow clients still connected: cut {sorted(trickle.cut)} of 2"
    finally:
        for a in attackers:
            a.close()
    assert handshake_metric(p, "head_timeout") >= before + 2
    assert "Traceback" not in p.log(), p.log()[-2000:]


def test_a_large_body_sent_slowly_is_cut_by_the_pool_deadline(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    """A body too large to buffer in the loop (over 64 KiB) is read by the pool thread, each
    read bounded by what is left of a 5 s deadline: trickled, it no longer holds the thread
    (gthread's per-read timeout let it run for as long as each byte came in time)."""
    p, ctx = _two_threads(tmp_path, provider_factory, "tls")
    attackers = [_connect(p.port, ctx) for _ in range(2)]
    for a in attackers:
        a.sendall(b"POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n")
    started = time.monotonic()
    try:
        with Trickle(attackers, piece=b" " * 100, gap=0.2) as trickle:
            assert trickle.wait_all_cut(within=12), "a slowly sent body held its thread past the pool deadline"
            assert time.monotonic() - started >= 4, "cut before the pool deadline"
        assert gatekeeper_call(p.port, ctx, 1.5)[0]
    finally:
        for a in attackers:
            a.close()
    assert "Traceback" not in p.log(), p.log()[-2000:]


def test_pipelined_and_kept_alive_requests_are_served_with_split_heads(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    """Heads buffered in the loop reach gunicorn's parser whole: split over several packets,
    two requests pipelined in one write, a POST body in the same packet as its head."""
    p, ctx = _two_threads(tmp_path, provider_factory, "mtls")
    s = _connect(p.port, ctx)
    try:
        for part in (b"GET /hea", b"lthz HTTP/1.1\r\nHo", b"st: localhost\r\n", b"\r\n"):
            s.sendall(part)
            time.sleep(0.05)
        assert _read_answers(s, 1)[0].startswith(b"HTTP/1.1 200")
        body = PROVIDER_REQUEST
        post = b"POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        post += b"Content-Length: %d\r\n\r\n" % len(body) + body
        s.sendall(_HEAD + b"\r\n" + post)
        answers = _read_answers(s, 2)
        assert answers[0].startswith(b"HTTP/1.1 200") and answers[1].startswith(b"HTTP/1.1 200"), answers
        assert b'"ProviderResponse"' in answers[1]
    finally:
        s.close()


def _post(body: bytes) -> bytes:
    return (b"POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip


def test_a_request_pipelined_behind_a_large_body_in_one_tls_record_is_answered(
    tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """A body too large for the loop is read by the pool thread exactly to its end; the next
    request, in the same TLS record, is then already decrypted inside the SSL socket, which
    never makes the socket readable: gthread parked the connection and never answered it. The
    bytes are moved to the parser's buffer before the connection goes back to the loop."""
    p, ctx = _two_threads(tmp_path, provider_factory, "tls")
    s = _connect(p.port, ctx)
    try:
        big = PROVIDER_REQUEST[:-1] + b" " * 110_000 + b"}"
        s.sendall(_post(big) + _post(PROVIDER_REQUEST))
        answers = _read_answers(s, 2)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
    finally:
        s.close()


def test_a_client_that_never_reads_its_answers_cannot_hold_a_thread(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    """Two clients pipeline requests for a large answer and never read: gthread's blocking
    sends held both threads for ever (its heartbeat comes from the loop, so no timeout ever
    killed them). Each send is now bounded (SEND_SECONDS, 5 s): a third client is served within
    the bound and the hogs are cut, without an error logged as a server fault."""
    import threading

    p, ctx = _two_threads(tmp_path, provider_factory, "tls")
    hogs: list[socket.socket] = []

    def hog() -> None:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", p.port))
        s = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
        hogs.append(s)
        s.settimeout(20)
        try:
            for _ in range(2000):  # until the server stops taking requests: its answers fill the buffers
                s.sendall(b"GET /openapi.yaml HTTP/1.1\r\nHost: localhost\r\n\r\n")
        except OSError:
            pass

    threads = [threading.Thread(target=hog, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)  # both threads of the worker are now blocked sending to the hogs
        first = gatekeeper_call(p.port, ctx, 12)  # within one send deadline (5 s) plus slack
        assert first[0], f"a client that does not read held the threads: {first[1]}"
        assert gatekeeper_call(p.port, ctx, 1.5)[0]
    finally:
        for h in hogs:
            h.close()
    assert "Socket error processing request" not in p.log() and "Traceback" not in p.log(), p.log()[-2000:]


def _read_answers(s: socket.socket, count: int) -> list[bytes]:
    """``count`` HTTP answers (each with a Content-Length) read from ``s``."""
    data, out = b"", []
    s.settimeout(5)
    while len(out) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            length = int(next(line.split(b":")[1] for line in data[:head_end].split(b"\r\n") if line.lower().startswith(b"content-length:")))
            if len(data) >= head_end + 4 + length:
                out.append(data[: head_end + 4 + length])
                data = data[head_end + 4 + length :]
                continue
        chunk = s.recv(65536)
        assert chunk, f"closed after {len(out)} answers"
        data += chunk
    return out


# ---------------------------------------------------------------- loop bookkeeping (H2, M5)


def _bare_worker(tmp_path: Path, max_handshakes: int) -> tuple[Any, socket.socket, ssl.SSLContext, list[Any]]:
    """The worker's loop methods on a real listener and SSL context, without gunicorn's
    arbiter: (worker, listener, client context, connections handed to the pool)."""
    import logging
    import selectors
    from types import SimpleNamespace

    from stellaops.tlsworker import TLSHandshakeWorker

    tls = make_tls(tmp_path / "tls")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(tls.server_cert, tls.server_key)
    w = object.__new__(TLSHandshakeWorker)
    w.pending_tls, w.lingering, w.max_handshakes, w.nr_conns = {}, {}, max_handshakes, 0
    w.by_source = {}
    w.poller, w.log, w._handshakes_metric = selectors.DefaultSelector(), logging.getLogger("test-worker"), None
    w._accept_paused_until = w._emfile_logged = 0.0
    w.cfg = SimpleNamespace(is_ssl=True, suppress_ragged_eofs=True, ssl_context=lambda conf, factory: sctx)
    handed: list[Any] = []
    w.enqueue_req = handed.append  # the pool: record the hand-over
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    w.poller.register(listener, selectors.EVENT_READ, w.accept)
    return w, listener, ssl.create_default_context(cafile=str(tls.ca_cert)), handed


def _spin(w: Any, until: Callable[[], bool], within: float = 5) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end and not until():
        for key, _ in w.poller.select(0.05):
            key.data(key.fileobj)
    assert until(), "the loop did not get there"


def test_a_stale_event_for_an_evicted_connection_does_nothing(tmp_path: Path) -> None:
    """One select() batch holds the listener, then a pending connection: accepting evicts that
    connection (cap 1), and its event, still in the batch, must not touch it again (it crashed
    the worker with KeyError, or counted the connection twice)."""
    import threading

    w, listener, cctx, handed = _bare_worker(tmp_path, max_handshakes=1)
    port = listener.getsockname()[1]
    got: dict[str, ssl.SSLSocket] = {}
    threading.Thread(
        target=lambda: got.setdefault("a", cctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")),
        daemon=True,
    ).start()
    _spin(w, lambda: "a" in got and bool(w.pending_tls) and next(iter(w.pending_tls)).handshaken)
    settle = time.monotonic() + 0.3  # let the handshake's last bytes be read: A idle, waiting
    while time.monotonic() < settle:
        for key, _ in w.poller.select(0.05):
            key.data(key.fileobj)
    assert w.nr_conns == 1 and w.poller.select(0) == []
    b = socket.create_connection(("127.0.0.1", port))  # the listener becomes readable first …
    time.sleep(0.1)
    got["a"].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # … then the pending connection
    time.sleep(0.1)
    events = w.poller.select(0.5)
    assert [k.fileobj is listener for k, _ in events] == [True, False], "the batch is not listener-first"
    for key, _ in events:
        key.data(key.fileobj)  # raised KeyError before the fix
    assert handed == [], "the evicted connection reached the pool"
    assert w.nr_conns == 1 == len(w.pending_tls), (w.nr_conns, len(w.pending_tls))  # only B, counted once
    stale = next(k for k, _ in events if k.fileobj is not listener)
    stale.data(stale.fileobj)  # and once more: still nothing
    assert w.nr_conns == 1 and handed == []
    b.close()
    got["a"].close()
    listener.close()


def test_graceful_closes_beyond_the_cap_reset_the_oldest(tmp_path: Path) -> None:
    """Clients that get "Connection: close" and never close are drained in the loop, at most
    max_handshakes of them: one more resets the oldest (its descriptor is freed, not kept 2 s)."""
    w, listener, _, _ = _bare_worker(tmp_path, max_handshakes=3)
    pairs = [socket.socketpair() for _ in range(5)]
    for server_side, _ in pairs:
        w._linger(server_side)
    assert len(w.lingering) == 3
    for i, (server_side, client_side) in enumerate(pairs):
        client_side.setblocking(False)
        if i < 2:  # reset: the peer sees the end at once
            assert server_side.fileno() == -1, f"drain {i} beyond the cap still open"
        else:
            assert server_side.fileno() != -1
            assert client_side.recv(10) == b""  # half-closed (FIN), still being drained
    for _, client_side in pairs[2:]:  # the drained peers close: the drains end
        client_side.close()
    _spin(w, lambda: not w.lingering)
    listener.close()


@pytest.mark.parametrize(
    ("head", "buffered_body"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        (b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 12\r\n\r\n", 12),
        (b"POST / HTTP/1.1\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n", 0),  # waits for 100 first
        (b"POST / HTTP/1.1\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
        (b"POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n", 0),  # gunicorn rejects it
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0),
        (b"POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 0),  # over the 64 KiB buffer: the pool reads it
    ],
)
def test_which_bodies_are_buffered_in_the_loop(head: bytes, buffered_body: int) -> None:
    """The loop buffers a body only when its length is known, small and nothing waits on the
    server first; anything else goes to the pool after the head (under the pool deadline)."""
    from stellaops.tlsworker import _head_end, _small_body

    assert _head_end(bytearray(head), 0) == len(head)
    assert _head_end(bytearray(head[:-1]), 0) == -1
    assert _small_body(head) == buffered_body


def test_out_of_descriptors_pauses_the_listener_instead_of_spinning(tmp_path: Path) -> None:
    """EMFILE with nothing of the worker's own to drop: the listener, still readable, is taken off
    the selector for EMFILE_PAUSE_SECONDS (the loop spun at full CPU on it), then polled again.
    Run in a child process: it lowers its own descriptor limit."""
    script = r"""
import logging, os, resource, selectors, socket, time
from types import SimpleNamespace
from stellaops.tlsworker import EMFILE_PAUSE_SECONDS, TLSHandshakeWorker
w = object.__new__(TLSHandshakeWorker)
w.pending_tls, w.lingering, w.max_handshakes, w.nr_conns = {}, {}, 4, 0
w.by_source = {}
w.poller, w.log, w._handshakes_metric = selectors.DefaultSelector(), logging.getLogger("w"), None
w._accept_paused_until = w._emfile_logged = 0.0
w.cfg = SimpleNamespace(is_ssl=False)
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(8)
w.sockets, w._accepting = [listener], False
w.set_accept_enabled(True)
client = socket.create_connection(listener.getsockname())
time.sleep(0.1)
held = []
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
try:
    while True:
        held.append(os.dup(0))
except OSError:
    pass
w.accept(listener)
assert w.nr_conns == 0 and not w._accepting, "still polling the listener at EMFILE"
assert [k.fileobj for k in w.poller.get_map().values()] == [], "listener still registered"
w.set_accept_enabled(True)  # what the run loop does on its next turn
assert not w._accepting, "re-enabled before the pause ended"
for fd in held:
    os.close(fd)
time.sleep(EMFILE_PAUSE_SECONDS + 0.02)
w.set_accept_enabled(True)
assert w._accepting
for key, _ in w.poller.select(1):
    key.data(key.fileobj)
assert w.nr_conns == 1 and len(w.pending_tls) == 1, "the waiting client was not accepted after the pause"
print("ok")
"""
    run = subprocess.run(
        [os.path.join(os.path.dirname(STELLA), "python"), "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr
