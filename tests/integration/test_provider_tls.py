"""The provider over TLS with mTLS, as Gatekeeper calls it: a real gunicorn, real sockets."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from tests.fixtures.provider import ProviderProcess, make_tls

REQUEST = json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": []}}).encode()


@pytest.fixture()
def tls_provider(tmp_path: Path, provider_factory):  # type: ignore[no-untyped-def]
    tls = make_tls(tmp_path / "tls")
    cfg = f"store: {{dsn: 'sqlite:///{tmp_path}/s.db'}}\n"
    return provider_factory(cfg, tls=tls, env={"STELLAOPS_CERT_POLL_SECONDS": "0.5"})


def _post(p: ProviderProcess, ctx: ssl.SSLContext) -> dict:
    req = urllib.request.Request(p.url + "/gatekeeper/v1/verify", data=REQUEST, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:  # noqa: S310 - loopback
        return json.load(resp)


def test_gatekeeper_client_cert_is_served_over_tls13(tls_provider: ProviderProcess) -> None:
    ctx = tls_provider.ssl_context()
    assert ctx is not None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # what Gatekeeper's client insists on
    doc = _post(tls_provider, ctx)
    assert doc["kind"] == "ProviderResponse" and doc["response"]["systemError"] == ""


def _handshake(p: ProviderProcess, ctx: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(1024)
            if not data:
                raise ssl.SSLError("connection closed by the server")


def test_client_without_certificate_is_refused(tls_provider: ProviderProcess) -> None:
    ctx = tls_provider.ssl_context(client_cert=False)
    assert ctx is not None
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _handshake(tls_provider, ctx)


def test_client_certificate_from_another_ca_is_refused(tls_provider: ProviderProcess, tmp_path: Path) -> None:
    other = make_tls(tmp_path / "other", ca_name="other-ca")
    ctx = ssl.create_default_context(cafile=str(tls_provider.tls.ca_cert))  # type: ignore[union-attr]
    ctx.load_cert_chain(str(other.client_cert), str(other.client_key))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _handshake(tls_provider, ctx)
    # and the right certificate still works afterwards
    _handshake(tls_provider, tls_provider.ssl_context())  # type: ignore[arg-type]


def test_plain_http_to_the_tls_port_gets_no_answer(tls_provider: ProviderProcess) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any transport failure; never a served response
        urllib.request.urlopen(f"http://127.0.0.1:{tls_provider.port}/healthz", timeout=5)  # noqa: S310


def _serial(p: ProviderProcess) -> int:
    ctx = p.ssl_context()
    assert ctx is not None
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def test_rotated_serving_certificate_is_picked_up(tls_provider: ProviderProcess, tmp_path: Path) -> None:
    tls = tls_provider.tls
    assert tls is not None
    before = _serial(tls_provider)
    # a full re-issue, as cert-manager does when the CA rotates: new CA, serving and client
    # certificates written over the old files; the provider must pick them up without a restart
    fresh = make_tls(tmp_path / "fresh")
    for src, dst in (
        (fresh.server_cert, tls.server_cert),
        (fresh.server_key, tls.server_key),
        (fresh.ca_cert, tls.ca_cert),
        (fresh.client_cert, tls.client_cert),
        (fresh.client_key, tls.client_key),
    ):
        shutil.copy(src, dst)
    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline and after == before:
        time.sleep(0.5)
        try:
            after = _serial(tls_provider)
        except (ssl.SSLError, OSError):
            continue
    assert after != before


def test_rotation_keeps_open_connections_and_serves_new_ones_with_the_new_certificate(tls_provider: ProviderProcess, tmp_path: Path) -> None:
    """The handshake runs in the worker's event loop with the context current at accept time:
    after a rotation, a connection Gatekeeper keeps alive goes on being served, and every new
    connection is handshaken with the new certificate."""
    import http.client

    tls = tls_provider.tls
    assert tls is not None
    kept = http.client.HTTPSConnection("localhost", tls_provider.port, context=tls_provider.ssl_context(), timeout=10)
    try:
        kept.request("POST", "/gatekeeper/v1/verify", body=REQUEST, headers={"Content-Type": "application/json"})
        assert kept.getresponse().read() and kept.sock is not None
        before = _serial(tls_provider)
        fresh = make_tls(tmp_path / "fresh")
        for src, dst in ((fresh.server_cert, tls.server_cert), (fresh.server_key, tls.server_key), (fresh.ca_cert, tls.ca_cert)):
            shutil.copy(src, dst)
        deadline, after = time.monotonic() + 10, before
        while time.monotonic() < deadline and after == before:
            time.sleep(0.5)
            try:
                with socket.create_connection(("127.0.0.1", tls_provider.port), timeout=5) as raw:
                    # no client certificate: TLS 1.3 shows the server's before it checks the client's
                    with ssl.create_default_context(cafile=str(fresh.ca_cert)).wrap_socket(raw, server_hostname="127.0.0.1") as s:
                        after = x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number
            except (ssl.SSLError, OSError):
                continue
        assert after != before, "new connections are still served the old certificate"
        sock = kept.sock
        kept.request("POST", "/gatekeeper/v1/verify", body=REQUEST, headers={"Content-Type": "application/json"})
        resp = kept.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["kind"] == "ProviderResponse"
        assert kept.sock is sock, "the kept-alive connection was not reused"
    finally:
        kept.close()
