"""Secrets and authentication, against the real provider: import tokens never logged and
compared in constant time, tenants isolated, mTLS enforced at the TLS layer, registry
credentials never in logs or answers."""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stellaops.registry_auth import Credentials, StaticCredentials
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, make_tls
from tests.fixtures.registries import HTPASSWD_PASSWORD, HTPASSWD_USER
from tests.hardening._support import (
    assert_provider_response,
    new_key,
    provider_config,
    push_att,
    sign_envelope,
    statement,
    verdict_of,
    write_public_key,
)

ACME_TOKEN = "acme-secret-token-" + "a1" * 20
GLOBEX_TOKEN = "globex-secret-token-" + "b2" * 20
WRONG_TOKEN = "wrong-secret-token-" + "c3" * 20


def _import(p: ProviderProcess, token: str | None, body: bytes, query: str = "") -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-ndjson"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, data = p.post("/api/v1/attestations/import" + query, body, headers=headers)
    return status, json.loads(data)


@pytest.fixture()
def tenants(tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess]) -> tuple[ProviderProcess, Any, str, str]:
    key = new_key()
    (tmp_path / "acme").write_text(ACME_TOKEN + "\n")
    (tmp_path / "globex").write_text(GLOBEX_TOKEN + "\n")
    extra = (
        "logging: {level: DEBUG}\n"
        f"importApi: {{tokens: [{{tenant: acme, tokenFile: {tmp_path / 'acme'}}}, {{tenant: globex, tokenFile: {tmp_path / 'globex'}}}]}}\n"
    )
    p = provider_factory(provider_config(tmp_path, {"release-key": write_public_key(key, tmp_path / "k.pub")}, extra=extra))
    digest = push_test_image(ocireg, "secrets/app", "v1", client=loopback_client())
    return p, key, digest, f"{ocireg}/secrets/app@{digest}"


def test_import_tokens_and_envelopes_never_logged(tenants: tuple[ProviderProcess, Any, str, str]) -> None:
    p, key, digest, image = tenants
    marker = "MARKER-" + base64.b32encode(b"do-not-log-me").decode()
    envelope = sign_envelope(statement(digest, predicate={"scanner": {"name": marker, "version": "1"}, "findings": []},
                                      predicate_type="https://example.com/marker@v1"), [key])  # fmt: skip
    assert _import(p, ACME_TOKEN, envelope + b"\n")[0] == 200
    assert _import(p, WRONG_TOKEN, envelope + b"\n")[0] == 401
    assert _import(p, None, envelope + b"\n")[0] == 401
    status, _ = p.post("/api/v1/attestations/import", envelope, headers={"Authorization": f"Basic {ACME_TOKEN}", "Content-Type": "application/json"})
    assert status == 401
    assert_provider_response(json.loads(json.dumps({k: v for k, v in p.verify(image).items() if k != "_status"})))
    log = p.log()
    assert "import" in log  # the log is there and was written at DEBUG level
    for secret in (ACME_TOKEN, GLOBEX_TOKEN, WRONG_TOKEN, ACME_TOKEN[:24]):
        assert secret not in log, f"a token (or its prefix) is in the provider log: {secret[:10]}…"
    assert marker not in log, "attestation content was logged"
    assert base64.b64encode(envelope)[:40].decode() not in log and json.loads(envelope)["payload"][:40] not in log


def test_token_comparison_touches_every_configured_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time in the number of tokens and in which one matches: every configured token
    is compared (with hmac.compare_digest over fixed-length digests), the loop never exits early."""
    import hmac

    from stellaops import importapi
    from stellaops.config import ImportToken

    tokens = tuple(ImportToken(tenant=f"t{i}", token=f"token-{i}-".encode() + b"x" * 32) for i in range(5))
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(importapi.hmac, "compare_digest", counting)
    for presented, expected in [("token-0-" + "x" * 32, "t0"), ("token-4-" + "x" * 32, "t4"), ("nope", None), ("t" * 5000, None)]:
        calls.clear()
        assert importapi.authenticate(f"Bearer {presented}", tokens) == expected
        assert len(calls) == len(tokens), calls
        assert {c for c in calls} == {(32, 32)}, "comparisons must be over equal-length digests"


def test_tenant_comes_from_the_token_only(tenants: tuple[ProviderProcess, Any, str, str]) -> None:
    p, key, digest, image = tenants
    envelope = sign_envelope(statement(digest), [key]) + b"\n"
    status, doc = _import(p, ACME_TOKEN, envelope, query="?tenant=globex")
    assert status == 400 and "tenant" in doc["error"]["hint"], doc
    status, doc = _import(p, ACME_TOKEN, envelope)
    assert status == 200 and doc["tenant"] == "acme" and doc["imported"] == 1, doc
    # the same bytes imported by another tenant are that tenant's own record (no cross-tenant
    # "duplicate" that would reveal what acme imported)
    status, doc = _import(p, GLOBEX_TOKEN, envelope)
    assert status == 200 and doc["tenant"] == "globex" and doc["imported"] == 1 and doc["duplicates"] == 0, doc
    status, doc = _import(p, ACME_TOKEN, envelope)
    assert doc["duplicates"] == 1, doc
    atts = verdict_of(p.verify(image), image)["attestations"]
    tenants_seen = sorted(a["annotations"].get("dev.stellaops/tenant", "") for a in atts if a["source"] == "imported")
    # one envelope, verified once (copies are merged); its tenant annotation comes from the stored row
    assert tenants_seen and set(tenants_seen) <= {"acme", "globex"}, atts


def test_tenant_annotation_cannot_be_forged_through_the_body(tenants: tuple[ProviderProcess, Any, str, str]) -> None:
    p, key, digest, image = tenants
    env = json.loads(sign_envelope(statement(digest, predicate_type="https://example.com/t@v1", predicate={"t": 1}), [key]))
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {"publicKey": {"hint": ""}},
              "dsseEnvelope": env, "annotations": {"dev.stellaops/tenant": "acme"}}  # fmt: skip
    status, doc = _import(p, GLOBEX_TOKEN, json.dumps(bundle).encode())
    assert status == 422, doc  # unknown bundle field: refused, not stored
    status, doc = _import(p, GLOBEX_TOKEN, json.dumps(env).encode())
    assert status == 200, doc
    atts = [a for a in verdict_of(p.verify(image), image)["attestations"] if a["predicateType"] == "https://example.com/t@v1"]
    assert [a["annotations"]["dev.stellaops/tenant"] for a in atts] == ["globex"], atts


# --------------------------------------------------------------------------- mTLS


def _https_attempt(port: int, ctx: ssl.SSLContext, timeout: float = 10) -> bytes:
    """Open TLS, send a request, return what came back (b"" or raises when refused at TLS)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data
                data += chunk


@pytest.fixture()
def mtls_provider(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> tuple[ProviderProcess, Any]:
    tls = make_tls(tmp_path / "tls")
    extra = f"server: {{deadlineSeconds: 1.5, tls: {{cert: {tls.server_cert}, key: {tls.server_key}, clientCA: {tls.ca_cert}}}}}\n"
    p = provider_factory(provider_config(tmp_path, {}, extra=extra), tls=tls)
    return p, tls


def test_mtls_accepts_the_gatekeeper_client_certificate(mtls_provider: tuple[ProviderProcess, Any]) -> None:
    p, tls = mtls_provider
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # what Gatekeeper requires
    ctx.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    assert _https_attempt(p.port, ctx).startswith(b"HTTP/1.1 200")


def _refused_at_tls(port: int, ctx: ssl.SSLContext) -> None:
    try:
        data = _https_attempt(port, ctx)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return
    assert b"HTTP/" not in data, f"answered without a valid client certificate: {data[:80]!r}"


def test_mtls_refuses_a_client_without_certificate(mtls_provider: tuple[ProviderProcess, Any]) -> None:
    p, tls = mtls_provider
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    _refused_at_tls(p.port, ctx)


def test_mtls_refuses_a_certificate_from_another_ca(mtls_provider: tuple[ProviderProcess, Any], tmp_path: Path) -> None:
    p, tls = mtls_provider
    evil = make_tls(tmp_path / "evil", ca_name="evil-ca")
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    ctx.load_cert_chain(str(evil.client_cert), str(evil.client_key))
    _refused_at_tls(p.port, ctx)


def test_plain_http_to_the_tls_port_gets_nothing(mtls_provider: tuple[ProviderProcess, Any]) -> None:
    p, _ = mtls_provider
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
    assert b"ProviderResponse" not in data


# --------------------------------------------------------------------------- registry credentials


def test_registry_credentials_never_in_logs_or_answers(
    tmp_path: Path, htpasswd_registry: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    key = new_key()
    client = loopback_client(StaticCredentials({htpasswd_registry: Credentials(username=HTPASSWD_USER, password=HTPASSWD_PASSWORD)}))
    digest = push_test_image(htpasswd_registry, "secrets/private", "v1", client=client)
    push_att(client, htpasswd_registry, "secrets/private", digest, [sign_envelope(statement(digest), [key])])
    client.close()
    basic = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"auths": {htpasswd_registry: {"auth": basic}}}))
    wrong_pw = "Wr0ngPassw0rd-" + "z" * 12
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"auths": {htpasswd_registry: {"auth": base64.b64encode(f"{HTPASSWD_USER}:{wrong_pw}".encode()).decode()}}}))
    pub = write_public_key(key, tmp_path / "k.pub")
    image = f"{htpasswd_registry}/secrets/private@{digest}"
    answers = []
    logs = []
    for name, cfgfile in (("good", good), ("bad", bad)):
        extra = f"logging: {{level: DEBUG}}\n"
        cfg = provider_config(tmp_path / name, {"release-key": pub}).replace(
            "registries:\n", f"registries:\n  auth: {{dockerConfig: {cfgfile}}}\n"
        ) + extra
        p = provider_factory(cfg, name=name)
        doc = p.verify(image)
        answers.append(json.dumps(doc))
        if name == "good":
            assert verdict_of(doc, image)["attestations"][0]["verified"] is True, doc
        else:
            items = {i["key"]: i for i in doc["response"]["items"]}
            assert items[image]["error"].startswith("UNAUTHORIZED"), doc
        p.stop()
        logs.append(p.log())
    for text in answers + logs:
        for secret in (HTPASSWD_PASSWORD, wrong_pw, basic, base64.b64encode(f"{HTPASSWD_USER}:{wrong_pw}".encode()).decode()):
            assert secret not in text, f"a registry credential leaked: {secret[:6]}…"


def test_another_tenants_junk_imports_cannot_crowd_out_a_genuine_attestation(
    tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    key = new_key()
    (tmp_path / "acme").write_text(ACME_TOKEN)
    (tmp_path / "globex").write_text(GLOBEX_TOKEN)
    extra = (
        "limits: {attestationsPerImage: 20}\n"
        f"importApi: {{tokens: [{{tenant: acme, tokenFile: {tmp_path / 'acme'}}}, {{tenant: globex, tokenFile: {tmp_path / 'globex'}}}]}}\n"
    )
    p = provider_factory(provider_config(tmp_path, {"release-key": write_public_key(key, tmp_path / "k.pub")}, extra=extra))
    digest = push_test_image(ocireg, "secrets/crowd", "v1", client=loopback_client())
    image = f"{ocireg}/secrets/crowd@{digest}"
    junk = b"\n".join(
        json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(statement(digest, name=f"junk{i}")).decode(),
                    "signatures": [{"sig": "AAAA"}]}).encode()  # fmt: skip
        for i in range(25)
    )
    status, report = _import(p, GLOBEX_TOKEN, junk)  # globex never holds a trusted key: nothing it imports verifies
    assert status == 200 and report["imported"] == 25, report
    status, report = _import(p, ACME_TOKEN, sign_envelope(statement(digest), [key]))
    assert status == 200 and report["imported"] == 1, report
    atts = verdict_of(p.verify(image), image)["attestations"]
    assert [a for a in atts if a["verified"]], "the genuine, trusted attestation was never verified"


def test_rotated_client_ca_stops_trusting_the_old_ca(tmp_path: Path, provider_factory: Callable[..., ProviderProcess]) -> None:
    """cert-manager/cert-controller rotate Gatekeeper's CA: after the client-CA file changes,
    the new CA's certificates are accepted and the old (possibly compromised) CA's are not."""
    import shutil
    import time

    old = make_tls(tmp_path / "old")
    new = make_tls(tmp_path / "new", ca_name="rotated-ca")
    client_ca = tmp_path / "client-ca.pem"
    shutil.copy(old.ca_cert, client_ca)
    extra = f"server: {{deadlineSeconds: 1.5, tls: {{cert: {old.server_cert}, key: {old.server_key}, clientCA: {client_ca}}}}}\n"
    p = provider_factory(provider_config(tmp_path, {}, extra=extra), tls=old, env={"STELLAOPS_CERT_POLL_SECONDS": "0.3"})

    def ctx(files: Any) -> ssl.SSLContext:
        c = ssl.create_default_context(cafile=str(old.ca_cert))  # the serving certificate stays the old CA's
        c.load_cert_chain(str(files.client_cert), str(files.client_key))
        return c

    def accepted(files: Any) -> bool:
        try:
            return _https_attempt(p.port, ctx(files)).startswith(b"HTTP/1.1 200")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return False

    assert accepted(old) and not accepted(new)
    time.sleep(1.0)  # let the watcher record the first modification time
    shutil.copy(new.ca_cert, client_ca)  # the rotation (e.g. the old CA was compromised)
    # every worker reloads on its own tick: wait until the new CA is accepted several times in a row
    end, streak = time.monotonic() + 20, 0
    while time.monotonic() < end and streak < 8:
        streak = streak + 1 if accepted(new) else 0
        if streak == 0:
            time.sleep(0.3)
    assert streak >= 8, "the rotated client CA was never loaded by every worker"
    assert not any(accepted(old) for _ in range(8)), "a client certificate of the removed CA is still accepted after rotation"


def test_tls_connections_without_a_client_certificate_do_not_leak_memory(mtls_provider: tuple[ProviderProcess, Any]) -> None:
    from tests.hardening.test_load import _children, _rss

    p, tls = mtls_provider
    assert p.proc is not None
    workers = _children(p.proc.pid)

    def knock(n: int) -> None:
        anonymous = ssl.create_default_context(cafile=str(tls.ca_cert))
        for _ in range(n):
            try:
                _https_attempt(p.port, anonymous)
            except (ssl.SSLError, OSError):
                pass

    knock(100)  # warm up
    before = sum(_rss(w) for w in workers)
    knock(1500)
    growth = sum(_rss(w) for w in workers) - before
    assert growth < 16 * 1024 * 1024, f"workers grew by {growth // 2**20} MiB after 1500 refused TLS connections"


def test_idle_partial_connections_cannot_starve_gatekeeper_calls(mtls_provider: tuple[ProviderProcess, Any]) -> None:
    import threading

    p, tls = mtls_provider
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    ctx.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    assert _https_attempt(p.port, ctx).startswith(b"HTTP/1.1 200")  # control
    idle = []
    try:
        for _ in range(40):  # more than server.workers (2) × server.threads (16)
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(b"\x16")  # the first byte of a TLS handshake record, then nothing
            idle.append(s)
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["answer"] = _https_attempt(p.port, ctx)
            except (OSError, ssl.SSLError) as exc:
                result["answer"] = exc

        t = threading.Thread(target=call, daemon=True)
        t.start()
        t.join(5)  # well above a healthy answer, above Gatekeeper's spec.timeout (2 s)
        answer = result.get("answer")
        assert isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 200"), f"Gatekeeper's call was starved: {answer!r}"
    finally:
        for s in idle:
            s.close()


def test_sustained_half_open_connections_cannot_starve_gatekeeper_calls(mtls_provider: tuple[ProviderProcess, Any]) -> None:
    """The same attack, sustained: an attacker keeps 300 connections that never finish their TLS
    handshake open (half-open, trickling a ClientHello, or silent), re-opening each one the
    server drops, for the whole measurement; every Gatekeeper call made meanwhile (fresh
    connection, TLS 1.3, its client certificate) is answered within the provider deadline
    (``server.deadlineSeconds``: the client gives up then, as Gatekeeper does)."""
    import time

    from tests.hardening._tls_attack import Flood, gatekeeper_call, gatekeeper_context, handshake_metric

    p, tls = mtls_provider
    ctx = gatekeeper_context(tls)
    assert gatekeeper_call(p.port, ctx, 1.5)[0]  # control
    expired_before = handshake_metric(p, "expired")
    calls: list[tuple[bool, str]] = []
    with Flood(p.port, size=300) as flood:
        time.sleep(1.5)  # past the 1 s handshake deadline: the server is dropping and the attacker re-opening
        opened_before, start = flood.opened, time.monotonic()
        for _ in range(12):
            calls.append(gatekeeper_call(p.port, ctx, 1.5))
            time.sleep(0.25)
        end = time.monotonic()
        time.sleep(0.1)  # one more attacker round after the last call
        opened_during = flood.opened - opened_before
        held = flood.open_between(start, end + 0.1)
        last_sample = flood.samples[-1][0]
    failed = [c for c in calls if not c[0]]
    assert not failed, f"{len(failed)} of {len(calls)} Gatekeeper calls not answered within 1.5 s during the flood: {failed}"
    # the flood was sustained for the whole measurement, and the server was cutting it down
    assert held and min(held) >= 250 and last_sample > end, f"the attacker held too few connections: {held}"
    assert opened_during >= 300, f"the attacker only re-opened {opened_during} connections during the measurement"
    assert handshake_metric(p, "expired") - expired_before >= 300
