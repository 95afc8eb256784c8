"""RegistryClient against real registries (ocireg, ggcr cmd/registry, CNCF Distribution), and
against a fault-injecting proxy in front of one for what real registries never do on their own
(tampered bytes, 5xx, 429, redirects, slow answers, paging)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from typing import Any

import pytest
from stellaops.attach import attach
from stellaops.errors import RegistryError
from stellaops.reference import parse_reference
from stellaops.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    RegistryLimits,
    RegistryPolicy,
    deadline_scope,
)

from tests.fixtures.images import loopback_client, make_envelope, make_key, push_test_image
from tests.fixtures.registries import Exchange, TamperingProxy, free_port


def _client(**limits: Any) -> RegistryClient:
    return RegistryClient(
        policy=RegistryPolicy(allow_private=True),
        limits=RegistryLimits(**{"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, **limits}),
    )


@pytest.fixture(params=["ocireg", "ggcr_registry", "distribution_registry"])
def any_registry(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def test_push_resolve_and_pull_verified(any_registry: str) -> None:
    client = loopback_client()
    digest = push_test_image(any_registry, "roundtrip/app", "v1", client=client)
    ref = parse_reference(f"{any_registry}/roundtrip/app:v1")
    desc = client.resolve(ref)
    assert desc.digest == digest and desc.media_type == OCI_MANIFEST and desc.size > 0
    by_tag = client.get_manifest(any_registry, "roundtrip/app", "v1")
    by_digest = client.get_manifest(any_registry, "roundtrip/app", digest)
    assert by_tag.raw == by_digest.raw and by_tag.digest == digest
    assert hashlib.sha256(by_digest.raw).hexdigest() == digest.split(":")[1]
    layer = by_digest.layers[0]
    blob = client.get_blob(any_registry, "roundtrip/app", layer.digest)
    assert len(blob) == layer.size
    # resolve by digest keeps the digest
    assert client.resolve(ref.with_digest(digest)).digest == digest


def test_multi_arch_index(ocireg: str) -> None:
    client = loopback_client()
    digest = push_test_image(ocireg, "multi/app", "v1", platforms=["linux/amd64", "linux/arm64"], client=client)
    index = client.get_manifest(ocireg, "multi/app", "v1")
    assert index.digest == digest and index.is_index and index.media_type == OCI_INDEX
    assert [m.platform["architecture"] for m in index.manifests] == ["amd64", "arm64"]  # type: ignore[index]
    assert client.resolve(parse_reference(f"{ocireg}/multi/app:v1")).media_type == OCI_INDEX


def test_missing_manifest_is_manifest_not_found(any_registry: str) -> None:
    with pytest.raises(RegistryError) as info:
        loopback_client().get_manifest(any_registry, "nothing/here", "v1")
    assert info.value.reason == "MANIFEST_NOT_FOUND"
    assert f"{any_registry}/nothing/here:v1" in info.value.detail
    with pytest.raises(RegistryError) as info:
        loopback_client().resolve(parse_reference(f"{any_registry}/nothing/here@sha256:" + "0" * 64))
    assert info.value.reason == "MANIFEST_NOT_FOUND"


def test_oversized_manifest_is_limit_exceeded(ocireg: str) -> None:
    push_test_image(ocireg, "limits/app", "v1")
    with pytest.raises(RegistryError) as info:
        _client(manifest_bytes=100).get_manifest(ocireg, "limits/app", "v1")
    assert info.value.reason == "LIMIT_EXCEEDED"
    assert "limit of 100" in info.value.detail


def test_oversized_blob_is_limit_exceeded(ocireg: str) -> None:
    client = loopback_client()
    digest = client.put_blob(ocireg, "limits/blob", b"x" * 5000)
    with pytest.raises(RegistryError) as info:
        _client(blob_bytes=4096).get_blob(ocireg, "limits/blob", digest)
    assert info.value.reason == "LIMIT_EXCEEDED"
    with pytest.raises(RegistryError) as info:
        client.get_blob(ocireg, "limits/blob", digest, max_bytes=10)
    assert info.value.reason == "LIMIT_EXCEEDED"
    assert client.get_blob(ocireg, "limits/blob", digest) == b"x" * 5000


def test_malformed_manifest_json_is_registry_error(ocireg: str) -> None:
    client = loopback_client()
    client.put_manifest(ocireg, "bad/json", "v1", b"{not json", OCI_MANIFEST)
    with pytest.raises(RegistryError) as info:
        client.get_manifest(ocireg, "bad/json", "v1")
    assert info.value.reason == "REGISTRY_ERROR"
    assert "not valid JSON" in info.value.detail


def test_manifest_with_duplicate_keys_is_registry_error(ocireg: str) -> None:
    client = loopback_client()
    raw = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[],"layers":[]}'
    client.put_manifest(ocireg, "bad/dupe", "v1", raw, OCI_MANIFEST)
    with pytest.raises(RegistryError) as info:
        client.get_manifest(ocireg, "bad/dupe", "v1")
    assert info.value.reason == "REGISTRY_ERROR"
    assert "duplicate key 'layers'" in info.value.detail


def test_too_many_referrers_is_limit_exceeded(ocireg: str, ggcr_registry: str) -> None:
    key = make_key()
    for registry in (ocireg, ggcr_registry):
        client = loopback_client()
        digest = push_test_image(registry, "limits/referrers", "v1", client=client)
        ref = parse_reference(f"{registry}/limits/referrers:v1")
        for _ in range(3):
            attach(client, ref, make_envelope(key, ref.name, digest), formats=("dsse",))
        assert len(client.list_referrers(registry, "limits/referrers", digest)) == 3
        with pytest.raises(RegistryError) as info:
            _client(referrers=2).list_referrers(registry, "limits/referrers", digest)
        assert info.value.reason == "LIMIT_EXCEEDED"
        assert "more than 2 referrers" in info.value.detail


def test_referrers_fallback_tag_on_registry_without_api(ggcr_registry: str, distribution_registry: str) -> None:
    key = make_key()
    for registry in (ggcr_registry, distribution_registry):
        client = loopback_client()
        digest = push_test_image(registry, "fallback/app", "v1", client=client)
        ref = parse_reference(f"{registry}/fallback/app:v1")
        assert client.list_referrers(registry, "fallback/app", digest).source == "tag"
        assert len(client.list_referrers(registry, "fallback/app", digest)) == 0
        attach(client, ref, make_envelope(key, ref.name, digest), formats=("dsse", "bundle"))
        listing = client.list_referrers(registry, "fallback/app", digest)
        assert listing.source == "tag" and len(listing) == 2
        assert [d.digest for d in listing] == sorted(d.digest for d in listing)
        assert not client.referrers_api_supported(registry, "fallback/app", digest)


# -- through the fault-injecting proxy ---------------------------------------------------------
def _rule(method: str, fragment: str, answer: Any, times: int | None = None) -> Any:
    count = {"n": 0}

    def rule(ex: Exchange) -> Any:
        if ex.method != method or fragment not in ex.path:
            return None
        if times is not None and count["n"] >= times:
            return None
        count["n"] += 1
        return answer(ex) if callable(answer) else answer

    rule.count = count  # type: ignore[attr-defined]
    return rule


def _seed(proxy: TamperingProxy, repo: str = "fault/app") -> str:
    return push_test_image(proxy.upstream, repo, "v1")


def test_tampered_manifest_by_digest_is_detected(tampering_proxy: TamperingProxy) -> None:
    digest = _seed(tampering_proxy)

    def tamper(ex: Exchange) -> Any:
        status, headers, body = ex.forward()
        return status, headers, body.replace(b'"schemaVersion":2', b'"schemaVersion":2 ')

    tampering_proxy.rules.append(_rule("GET", f"/manifests/{digest}", tamper))
    with pytest.raises(RegistryError) as info:
        _client().get_manifest(tampering_proxy.address, "fault/app", digest)
    assert info.value.reason == "REGISTRY_ERROR"
    assert f"expected {digest}" in info.value.detail


def test_manifest_by_tag_not_matching_announced_digest_is_detected(tampering_proxy: TamperingProxy) -> None:
    _seed(tampering_proxy)

    def tamper(ex: Exchange) -> Any:
        status, headers, body = ex.forward()
        return status, headers, body + b" "

    tampering_proxy.rules.append(_rule("GET", "/manifests/v1", tamper))
    with pytest.raises(RegistryError) as info:
        _client().get_manifest(tampering_proxy.address, "fault/app", "v1")
    assert info.value.reason == "REGISTRY_ERROR"
    assert "served other bytes" in info.value.detail


def test_tampered_blob_is_detected(tampering_proxy: TamperingProxy) -> None:
    digest = _seed(tampering_proxy)
    layer = loopback_client().get_manifest(tampering_proxy.upstream, "fault/app", digest).layers[0]

    def tamper(ex: Exchange) -> Any:
        status, headers, body = ex.forward()
        return status, headers, bytes([body[0] ^ 1]) + body[1:]

    tampering_proxy.rules.append(_rule("GET", f"/blobs/{layer.digest}", tamper))
    with pytest.raises(RegistryError) as info:
        _client().get_blob(tampering_proxy.address, "fault/app", layer.digest)
    assert info.value.reason == "REGISTRY_ERROR"
    assert f"expected {layer.digest}" in info.value.detail


def test_head_answering_another_digest_is_detected(tampering_proxy: TamperingProxy) -> None:
    digest = _seed(tampering_proxy)

    def lie(ex: Exchange) -> Any:
        status, headers, body = ex.forward()
        return status, {**headers, "Docker-Content-Digest": "sha256:" + "f" * 64}, body

    tampering_proxy.rules.append(_rule("HEAD", "/manifests/", lie))
    with pytest.raises(RegistryError) as info:
        _client().resolve(parse_reference(f"{tampering_proxy.address}/fault/app@{digest}"))
    assert info.value.reason == "REGISTRY_ERROR"


def test_head_without_digest_falls_back_to_get(tampering_proxy: TamperingProxy) -> None:
    digest = _seed(tampering_proxy)
    tampering_proxy.rules.append(_rule("HEAD", "/manifests/", (405, {}, b"")))
    assert _client().resolve(parse_reference(f"{tampering_proxy.address}/fault/app:v1")).digest == digest
    assert ("GET", "/v2/fault/app/manifests/v1") in tampering_proxy.seen


def test_transient_5xx_is_retried(tampering_proxy: TamperingProxy) -> None:
    digest = _seed(tampering_proxy)
    rule = _rule("GET", "/manifests/v1", (503, {}, b"busy"), times=2)
    tampering_proxy.rules.append(rule)
    assert _client(retries=2).get_manifest(tampering_proxy.address, "fault/app", "v1").digest == digest
    assert rule.count["n"] == 2


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_persistent_5xx_and_429_are_registry_unreachable(tampering_proxy: TamperingProxy, status: int) -> None:
    _seed(tampering_proxy)
    rule = _rule("GET", "/manifests/v1", (status, {"Retry-After": "0"}, b"no"))
    tampering_proxy.rules.append(rule)
    with pytest.raises(RegistryError) as info:
        _client(retries=2).get_manifest(tampering_proxy.address, "fault/app", "v1")
    assert info.value.reason == "REGISTRY_UNREACHABLE"
    assert info.value.transient
    assert f"HTTP {status}" in info.value.detail and "3 attempt(s)" in info.value.detail
    assert rule.count["n"] == 3


def test_dropped_connection_is_retried_then_unreachable(tampering_proxy: TamperingProxy) -> None:
    _seed(tampering_proxy)
    tampering_proxy.rules.append(_rule("GET", "/manifests/v1", "drop"))
    with pytest.raises(RegistryError) as info:
        _client(retries=1).get_manifest(tampering_proxy.address, "fault/app", "v1")
    assert info.value.reason == "REGISTRY_UNREACHABLE"


def test_closed_port_is_registry_unreachable() -> None:
    port = free_port()
    with pytest.raises(RegistryError) as info:
        _client(retries=1).get_manifest(f"127.0.0.1:{port}", "app", "v1")
    assert info.value.reason == "REGISTRY_UNREACHABLE"
    assert f"127.0.0.1:{port}" in info.value.detail


def test_4xx_is_registry_error_with_the_registry_message(tampering_proxy: TamperingProxy) -> None:
    _seed(tampering_proxy)
    body = json.dumps({"errors": [{"code": "DENIED", "message": "quota exceeded"}]}).encode()
    tampering_proxy.rules.append(_rule("GET", "/manifests/v1", (400, {"Content-Type": "application/json"}, body)))
    with pytest.raises(RegistryError) as info:
        _client().get_manifest(tampering_proxy.address, "fault/app", "v1")
    assert info.value.reason == "REGISTRY_ERROR"
    assert "DENIED: quota exceeded" in info.value.detail


def test_slow_registry_hits_the_deadline(tampering_proxy: TamperingProxy) -> None:
    _seed(tampering_proxy)
    release = threading.Event()

    def slow(ex: Exchange) -> Any:
        release.wait(5)
        return ex.forward()

    tampering_proxy.rules.append(_rule("GET", "/manifests/v1", slow))
    start = time.monotonic()
    try:
        with deadline_scope(time.monotonic() + 0.3), pytest.raises(RegistryError) as info:
            _client().get_manifest(tampering_proxy.address, "fault/app", "v1")
    finally:
        release.set()
    assert info.value.reason == "DEADLINE_EXCEEDED"
    assert time.monotonic() - start < 5  # ended by the deadline, not by the server


def test_redirects_are_followed_within_the_hop_limit(tampering_proxy: TamperingProxy) -> None:
    digest = _seed(tampering_proxy)
    layer = loopback_client().get_manifest(tampering_proxy.upstream, "fault/app", digest).layers[0]
    target = f"http://{tampering_proxy.upstream}/v2/fault/app/blobs/{layer.digest}"
    tampering_proxy.rules.append(_rule("GET", f"/blobs/{layer.digest}", (307, {"Location": target}, b"")))
    assert len(_client().get_blob(tampering_proxy.address, "fault/app", layer.digest)) == layer.size


def test_redirect_loop_is_refused(tampering_proxy: TamperingProxy) -> None:
    tampering_proxy.rules.append(_rule("GET", "/blobs/", lambda ex: (302, {"Location": ex.path}, b"")))
    with pytest.raises(RegistryError) as info:
        _client(max_redirects=3).get_blob(tampering_proxy.address, "fault/app", "sha256:" + "a" * 64)
    assert info.value.reason == "REGISTRY_ERROR"
    assert "more than 3 times" in info.value.detail


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/x"])
def test_redirect_to_metadata_address_is_refused_before_connecting(
    tampering_proxy: TamperingProxy, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stellaops.registry as regmod

    real = regmod._u3conn.create_connection
    targets: list[Any] = []

    def recording(address: Any, *args: Any, **kwargs: Any) -> Any:
        targets.append(address)
        assert address[0] in ("127.0.0.1", "::1"), f"connection attempted to {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(regmod._u3conn, "create_connection", recording)
    tampering_proxy.rules.append(_rule("GET", "/blobs/", (302, {"Location": location}, b"")))
    with pytest.raises(RegistryError) as info:
        _client().get_blob(tampering_proxy.address, "fault/app", "sha256:" + "a" * 64)
    assert info.value.reason == "REGISTRY_NOT_ALLOWED"
    assert all(t[0] == "127.0.0.1" for t in targets)


def test_upload_location_on_another_host_is_refused(tampering_proxy: TamperingProxy) -> None:
    tampering_proxy.rules.append(_rule("HEAD", "/blobs/", (404, {}, b"")))
    tampering_proxy.rules.append(
        _rule("POST", "/blobs/uploads/", (202, {"Location": "http://169.254.169.254/upload"}, b""))
    )
    with pytest.raises(RegistryError) as info:
        _client().put_blob(tampering_proxy.address, "fault/app", b"data")
    assert info.value.reason == "REGISTRY_ERROR"
    assert "another host" in info.value.detail


def test_referrers_paging_and_filter_header(tampering_proxy: TamperingProxy) -> None:
    key = make_key()
    client = loopback_client()
    digest = _seed(tampering_proxy, "paging/app")
    ref = parse_reference(f"{tampering_proxy.upstream}/paging/app:v1")
    for _ in range(3):
        attach(client, ref, make_envelope(key, ref.name, digest), formats=("dsse",))
    full = client.list_referrers(tampering_proxy.upstream, "paging/app", digest)

    def paged(ex: Exchange) -> Any:
        upstream = Exchange("GET", ex.path.split("?")[0], ex.headers, b"", ex.upstream).forward()
        doc = json.loads(upstream[2])
        doc["manifests"].sort(key=lambda d: d["digest"])  # ggcr lists in map order: make pages stable
        hdrs = {"Content-Type": OCI_INDEX}
        if "page=2" in ex.path:
            doc["manifests"] = doc["manifests"][1:]
        else:
            doc["manifests"] = doc["manifests"][:1]
            hdrs["Link"] = f'</v2/paging/app/referrers/{digest}?page=2>; rel="next"'
        return 200, hdrs, json.dumps(doc).encode()

    tampering_proxy.rules.append(_rule("GET", "/referrers/", paged))
    listing = _client().list_referrers(tampering_proxy.address, "paging/app", digest)
    assert listing.source == "api"
    assert sorted(d.digest for d in listing) == sorted(d.digest for d in full)
    assert any("page=2" in p for _, p in tampering_proxy.seen)

    # Without OCI-Filters-Applied the filter is not trusted; with it, it is.
    assert not _client().list_referrers(tampering_proxy.address, "paging/app", digest, artifact_type="x/y").filtered
    tampering_proxy.rules.insert(0, _rule("GET", "/referrers/", lambda ex: (
        200, {"Content-Type": OCI_INDEX, "OCI-Filters-Applied": "artifactType"},
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode())))
    assert _client().list_referrers(tampering_proxy.address, "paging/app", digest, artifact_type="x/y").filtered


def test_referrers_link_to_another_host_is_refused(tampering_proxy: TamperingProxy) -> None:
    digest = _seed(tampering_proxy, "paging/evil")
    tampering_proxy.rules.append(_rule("GET", "/referrers/", (
        200, {"Content-Type": OCI_INDEX, "Link": '<http://169.254.169.254/x>; rel="next"'},
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode())))
    with pytest.raises(RegistryError) as info:
        _client().list_referrers(tampering_proxy.address, "paging/evil", digest)
    assert info.value.reason == "REGISTRY_ERROR"
    assert "another host" in info.value.detail


def test_client_is_thread_safe_with_pooled_connections(ocireg: str) -> None:
    client = loopback_client()
    digest = push_test_image(ocireg, "threads/app", "v1", client=client)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                assert client.get_manifest(ocireg, "threads/app", digest).digest == digest
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(client._sessions) == 1  # noqa: SLF001 - one pooled session per registry


def test_private_registry_refused_by_default_policy(ocireg: str) -> None:
    with pytest.raises(RegistryError) as info:
        RegistryClient().get_manifest(ocireg, "app", "v1")
    assert info.value.reason == "REGISTRY_NOT_ALLOWED"
    # and with allow_private the same call reaches it
    with pytest.raises(RegistryError) as info:
        RegistryClient(policy=RegistryPolicy(allow_private=True)).get_manifest(ocireg, "absent/app", "v1")
    assert info.value.reason == "MANIFEST_NOT_FOUND"


@pytest.mark.parametrize(
    ("realm", "reason", "words"),
    [
        ("https://169.254.169.254/token", "REGISTRY_NOT_ALLOWED", "metadata"),
        ("http://registry.example.com/token", "REGISTRY_NOT_ALLOWED", "plain HTTP"),
        ("ftp://127.0.0.1/token", "UNAUTHORIZED", "not an HTTP(S) URL"),
    ],
)
def test_hostile_token_realm_is_refused_before_connecting(
    tampering_proxy: TamperingProxy, realm: str, reason: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stellaops.registry as regmod
    from stellaops.registry_auth import Credentials, StaticCredentials

    real = regmod._u3conn.create_connection

    def loopback_only(address: Any, *args: Any, **kwargs: Any) -> Any:
        assert address[0] == "127.0.0.1", f"connection attempted to {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(regmod._u3conn, "create_connection", loopback_only)
    tampering_proxy.rules.append(
        _rule("GET", "/manifests/", (401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'}, b""))
    )
    client = RegistryClient(policy=RegistryPolicy(allow_private=True),
                            auth=StaticCredentials({tampering_proxy.address: Credentials("u", "secret")}))
    with pytest.raises(RegistryError) as info:
        client.get_manifest(tampering_proxy.address, "fault/app", "v1")
    assert info.value.reason == reason
    assert words in info.value.detail


def test_connection_reset_is_always_registry_unreachable() -> None:
    """A registry that accepts and resets (RST) every connection. urllib3 2.x hides the reset
    while sending and then fails with AttributeError in getresponse(); it must still come out
    as REGISTRY_UNREACHABLE, every time."""
    import struct

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    outcomes = set()
    try:
        for _ in range(20):
            with _client(retries=0) as client:
                try:
                    client.resolve(parse_reference(f"127.0.0.1:{port}/app:v1"))
                    outcomes.add("answered")
                except RegistryError as exc:
                    outcomes.add(exc.reason)
    finally:
        stop.set()
        server.close()
    assert outcomes == {"REGISTRY_UNREACHABLE"}
