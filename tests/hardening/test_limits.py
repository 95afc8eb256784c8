"""Resource limits through the real provider with small configured limits: every breach is a
precise error (its reason and the limit named), none exhausts memory or hangs a worker (the
provider answers the next request normally), and a breach never yields ``verified: true``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stellaops import dsse
from stellaops.registry import RegistryClient
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, start_provider
from tests.hardening._support import (
    assert_provider_response,
    egress_env,
    new_key,
    provider_config,
    provider_request,
    push_att,
    push_dsse_referrer,
    reasons,
    sign_envelope,
    statement,
    write_public_key,
)

LIMITS = """
server: {deadlineSeconds: 1.5, maxKeys: 5, maxKeyLength: 300, maxBodyBytes: 32768}
limits: {manifestBytes: 8192, blobBytes: 16384, envelopeBytes: 8192, referrers: 5, attestationsPerImage: 3}
importApi: {tokens: [{tenant: acme, tokenFile: TOKENFILE}], maxBodyBytes: 65536}
"""
TOKEN = "limits-token-" + "7" * 40


@dataclass
class Lim:
    registry: str
    client: RegistryClient
    provider: ProviderProcess
    key: Any
    n: int = 0

    def image(self) -> tuple[str, str, int]:
        self.n += 1
        repo = f"limits/img{self.n}"
        digest = push_test_image(self.registry, repo, "v1", client=self.client)
        return repo, digest, len(self.client.get_manifest(self.registry, repo, digest).raw)

    def ask_raw(self, body: bytes, **headers: str) -> tuple[int, Any]:
        import sys

        status, data = self.provider.post("/gatekeeper/v1/verify", body, headers=headers or None)
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20000))  # our own parser must not be what fails on deep verdicts
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data
        finally:
            sys.setrecursionlimit(limit)

    def item(self, key: str) -> dict[str, Any]:
        status, doc = self.ask_raw(provider_request([key]))
        assert status == 200, doc
        assert_provider_response(doc)
        items = {i["key"]: i for i in doc["response"]["items"]}
        assert key in items, doc
        return items[key]

    def alive(self) -> None:
        """The provider still answers normally (no worker wedged or dead)."""
        repo, digest, _ = self.image()
        push_att(self.client, self.registry, repo, digest, [sign_envelope(statement(digest), [self.key])])
        item = self.item(f"{self.registry}/{repo}@{digest}")
        assert item["value"]["attestations"][0]["verified"] is True, item


@pytest.fixture(scope="module")
def lim(tmp_path_factory: pytest.TempPathFactory, ocireg: str) -> Iterator[Lim]:
    tmp = tmp_path_factory.mktemp("limits")
    key = new_key()
    (tmp / "token").write_text(TOKEN)
    cfg = provider_config(tmp, {"release-key": write_public_key(key, tmp / "k.pub")}, extra=LIMITS.replace("TOKENFILE", str(tmp / "token")))
    env, trip = egress_env(tmp)
    provider = start_provider(tmp / "provider", cfg, env=env)
    client = loopback_client()
    try:
        yield Lim(ocireg, client, provider, key)
    finally:
        provider.stop()
        client.close()


# --------------------------------------------------------------------------- the request


def test_too_many_keys_is_a_request_error(lim: Lim) -> None:
    status, doc = lim.ask_raw(provider_request([f"registry.example.com/app{i}:v1" for i in range(6)]))
    assert status == 400
    assert_provider_response(doc)
    assert "6 keys" in doc["response"]["systemError"] and "server.maxKeys" in doc["response"]["systemError"]
    lim.alive()


def test_key_too_long_is_a_per_key_error(lim: Lim) -> None:
    long_key = "registry.example.com/" + "a" * 300 + ":v1"
    status, doc = lim.ask_raw(provider_request([long_key]))
    assert status == 200
    item = doc["response"]["items"][0]
    assert item["error"].startswith("REQUEST_INVALID") and "maxKeyLength" in item["error"], item


def test_non_string_keys_are_per_key_errors(lim: Lim) -> None:
    status, doc = lim.ask_raw(provider_request([{"a": 1}, 7, None]))
    assert status == 200
    assert_provider_response(doc)
    assert [i["error"].split(":")[0] for i in doc["response"]["items"]] == ["REQUEST_INVALID"] * 3


def test_body_over_server_max_body_bytes_is_refused(lim: Lim) -> None:
    body = provider_request(["registry.example.com/app:v1"])[:-2] + b', "pad": "' + b"x" * 40000 + b'"}}'
    status, doc = lim.ask_raw(body)  # 40 KB: above server.maxBodyBytes (32 KiB), below importApi.maxBodyBytes
    assert status == 413, (status, doc)
    assert_provider_response(doc)
    assert "32768" in doc["response"]["systemError"], doc


def _announce_huge_body(lim: Lim, length: int = 5 * 1024 * 1024) -> tuple[int, bytes]:
    """Send only the request head announcing ``length`` bytes; return (status, body) of the answer."""
    import socket

    with socket.create_connection(("127.0.0.1", lim.provider.port), timeout=10) as s:
        s.sendall(
            b"POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {length}\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        clen = next((int(v) for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n")[1:]) if k.strip().lower() == b"content-length"), 0)
        while len(rest) < clen:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head.split(b" ")[1]), rest


def test_body_over_every_limit_is_refused_without_reading_it(lim: Lim) -> None:
    started = time.monotonic()
    status, _ = _announce_huge_body(lim)
    assert status == 413
    assert time.monotonic() - started < 5
    lim.alive()


@pytest.mark.parametrize("body", [b"[" * 30_000, b'{"a":' * 6_000, b"\xff\xfe\x00", b"", b"null", b"{" + b'"k":1,' * 3000 + b'"k":2}'])
def test_hostile_request_bodies_are_400_provider_responses(lim: Lim, body: bytes) -> None:
    status, doc = lim.ask_raw(body)
    assert status == 400, (status, doc)
    assert_provider_response(doc)
    assert doc["response"]["systemError"].startswith("bad ProviderRequest"), doc


def test_oversized_body_answer_is_a_provider_response(lim: Lim) -> None:
    status, body = _announce_huge_body(lim)
    assert status == 413
    doc = json.loads(body)
    assert_provider_response(doc)
    assert "maxBodyBytes" in doc["response"]["systemError"]


def test_deeply_nested_request_does_not_kill_the_worker(lim: Lim) -> None:
    for _ in range(3):
        lim.ask_raw(b"[" * 16_000 + b"]" * 16_000)
    lim.alive()


# --------------------------------------------------------------------------- registry content


def test_manifest_over_limit_is_limit_exceeded(lim: Lim) -> None:
    from stellaops.registry import OCI_MANIFEST

    repo, digest, _ = lim.image()
    m = json.loads(lim.client.get_manifest(lim.registry, repo, digest).raw)
    m["annotations"] = {"pad": "x" * 9000}
    raw = json.dumps(m).encode()
    big = lim.client.put_manifest(lim.registry, repo, "big", raw, OCI_MANIFEST)
    item = lim.item(f"{lim.registry}/{repo}@{big}")
    assert item["error"].startswith("LIMIT_EXCEEDED") and "8192" in item["error"], item


def test_referrers_over_limit_is_limit_exceeded(lim: Lim) -> None:
    repo, digest, size = lim.image()
    for i in range(6):
        push_dsse_referrer(lim.client, lim.registry, repo, digest, size, sign_envelope(statement(digest, name=f"n{i}"), [lim.key]))
    item = lim.item(f"{lim.registry}/{repo}@{digest}")
    assert item["error"].startswith("LIMIT_EXCEEDED") and "referrers" in item["error"], item


def test_att_layers_over_limit_is_limit_exceeded(lim: Lim) -> None:
    repo, digest, _ = lim.image()
    layers = [sign_envelope(statement(digest, name=f"n{i}"), [lim.key]) for i in range(6)]
    push_att(lim.client, lim.registry, repo, digest, layers)
    item = lim.item(f"{lim.registry}/{repo}@{digest}")
    assert item["error"].startswith("LIMIT_EXCEEDED"), item


def test_attestations_per_image_over_limit_is_reported(lim: Lim) -> None:
    repo, digest, _ = lim.image()
    layers = [sign_envelope(statement(digest, name=f"n{i}"), [lim.key]) for i in range(4)]
    push_att(lim.client, lim.registry, repo, digest, layers)
    item = lim.item(f"{lim.registry}/{repo}@{digest}")  # T-L24: registry evidence cut -> the key is refused
    assert item["value"] is None and item["error"].startswith("LIMIT_EXCEEDED") and "limits.attestationsPerImage" in item["error"], item


def test_too_many_signatures_is_limit_exceeded(lim: Lim) -> None:
    repo, digest, _ = lim.image()
    keys = [new_key() for _ in range(dsse.MAX_SIGNATURES)] + [lim.key]
    push_att(lim.client, lim.registry, repo, digest, [sign_envelope(statement(digest), keys)])
    att = lim.item(f"{lim.registry}/{repo}@{digest}")["value"]["attestations"][0]
    assert att["verified"] is False and reasons(att) == ["LIMIT_EXCEEDED"], att


def _padded_envelope(lim: Lim, digest: str, size: int) -> bytes:
    pred = {"scanner": {"name": "t", "version": "1"}, "scannedAt": "2026-11-24T10:00:00Z", "findings": [], "pad": "x" * size}
    return sign_envelope(statement(digest, predicate_type="https://example.com/padded@v1", predicate=pred), [lim.key])


def test_attestation_layer_over_blob_limit_is_reported_as_limit_exceeded(lim: Lim) -> None:
    repo, digest, _ = lim.image()
    push_att(lim.client, lim.registry, repo, digest, [_padded_envelope(lim, digest, 20000)])
    item = lim.item(f"{lim.registry}/{repo}@{digest}")  # T-L24: not read -> the key is refused, the limit named
    assert item["value"] is None and item["error"].startswith("LIMIT_EXCEEDED") and "not read" in item["error"], item
    assert "limits.envelopeBytes" in item["error"] or "limits.blobBytes" in item["error"], item


def test_attestation_layer_over_blob_limit_is_never_verified(lim: Lim) -> None:
    repo, digest, _ = lim.image()
    push_att(lim.client, lim.registry, repo, digest, [_padded_envelope(lim, digest, 20000)])
    item = lim.item(f"{lim.registry}/{repo}@{digest}")
    assert item["value"] is None and item["error"].startswith("LIMIT_EXCEEDED"), item  # nothing verified: refused


def test_layer_whose_descriptor_understates_its_size_is_cut_off(lim: Lim) -> None:
    """The descriptor claims 100 bytes; the blob is 12 KiB: the read stops at the claimed size
    (plus nothing), so a lying manifest cannot make the provider read more than it declared."""
    from stellaops.registry import OCI_MANIFEST

    repo, digest, _ = lim.image()
    env = _padded_envelope(lim, digest, 12000)
    blob = lim.client.put_blob(lim.registry, repo, env)
    empty = lim.client.put_blob(lim.registry, repo, b"{}")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": empty},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "size": 100, "digest": blob,
                    "annotations": {"dev.cosignproject.cosign/signature": ""}}],
    }).encode()  # fmt: skip
    lim.client.put_manifest(lim.registry, repo, digest.replace(":", "-") + ".att", manifest, OCI_MANIFEST)
    item = lim.item(f"{lim.registry}/{repo}@{digest}")
    # the read stops at the claimed size: either refused as a cut (T-L24) or the layer fails its digest check
    assert item["value"] is None or not [a for a in item["value"]["attestations"] if a["verified"]], item
    assert item["value"] is not None or item["error"].startswith("LIMIT_EXCEEDED"), item
    lim.alive()


def test_envelope_over_envelope_bytes_is_limit_exceeded(lim: Lim) -> None:
    repo, digest, _ = lim.image()
    push_att(lim.client, lim.registry, repo, digest, [_padded_envelope(lim, digest, 10000)])  # < blobBytes, > envelopeBytes
    item = lim.item(f"{lim.registry}/{repo}@{digest}")  # T-L24: a registry layer over envelopeBytes refuses the key
    assert item["value"] is None and item["error"].startswith("LIMIT_EXCEEDED"), item
    assert "limits.envelopeBytes (8192)" in item["error"], item


def test_deeply_nested_signed_predicate_does_not_break_the_batch(lim: Lim) -> None:
    """A trusted signer's predicate nested just below the parser's recursion limit must not
    take down the answer for every other key of the same admission request."""
    keys = []
    for depth in range(940, 1000, 3):
        repo, digest, _ = lim.image()
        base = dsse.make_statement("app", digest, "https://example.com/deep@v1", 0)
        payload = base[:-2] + (b"[" * depth + b"]" * depth) + b"}"
        push_att(lim.client, lim.registry, repo, digest, [sign_envelope(payload, [lim.key])])
        keys.append(f"{lim.registry}/{repo}@{digest}")
    for i in range(0, len(keys), 4):  # maxKeys is 5
        status, doc = lim.ask_raw(provider_request(keys[i : i + 4]))
        assert status == 200, (status, doc)
        assert_provider_response(doc)


# --------------------------------------------------------------------------- the import API


def _import(lim: Lim, body: bytes) -> tuple[int, Any]:
    status, data = lim.provider.post(
        "/api/v1/attestations/import", body, headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    )
    return status, json.loads(data)


def test_import_body_over_limit_is_413(lim: Lim) -> None:
    status, doc = _import(lim, b"{}\n" * 20000)
    assert status == 413 and doc["error"]["reason"] == "LIMIT_EXCEEDED", doc


def test_import_deeply_nested_document_is_400(lim: Lim) -> None:
    status, doc = _import(lim, b"[" * 20000)
    assert status == 400 and doc["error"]["reason"] == "REQUEST_INVALID", doc
    lim.alive()


def test_import_too_many_documents_is_413(lim: Lim) -> None:
    status, doc = _import(lim, b"{}" * 1001)
    assert status == 413 and doc["error"]["reason"] == "LIMIT_EXCEEDED", doc


# --------------------------------------------------------------------------- verification bounds (unit)


def _bundle_with(vm: dict[str, Any], key: Any) -> bytes:
    env = json.loads(sign_envelope(statement("sha256:" + "a" * 64), [key]))
    return json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": vm, "dsseEnvelope": env}).encode()


@pytest.mark.parametrize("what", ["chain_of_11_certificates", "9_tlog_entries"])
def test_bundle_chain_and_tlog_entry_counts_are_bounded(tmp_path: Path, what: str) -> None:
    import base64 as b64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from stellaops.candidate import Candidate
    from stellaops.trust import KeyAuthority, TrustConfig
    from stellaops.verify import keys as vkeys
    from stellaops.verify.attestation import verify_candidate
    from tests.fixtures.provider import make_tls

    key = new_key()
    ca = x509.load_pem_x509_certificate(make_tls(tmp_path).ca_pem)
    der = b64.b64encode(ca.public_bytes(serialization.Encoding.DER)).decode()
    if what == "chain_of_11_certificates":
        vm: dict[str, Any] = {"x509CertificateChain": {"certificates": [{"rawBytes": der}] * 11}}
    else:
        vm = {"publicKey": {"hint": ""}, "tlogEntries": [{}] * 9}
    pub = key.public_key()
    trust = TrustConfig(authorities=(KeyAuthority(name="k", public_key=pub, key_id=vkeys.key_id(pub)),), require_tlog=False)
    res = verify_candidate(Candidate(kind="bundle", data=_bundle_with(vm, key), source="bundle", attached_to=""), "sha256:" + "a" * 64, trust)
    assert res.verified is False and [e.reason for e in res.errors] == ["MALFORMED_ENVELOPE"], res.errors


# --------------------------------------------------------------------------- parsers stay linear (unit)

_QUADRATIC_PROBES = {
    # an unterminated string of escaped quotes: every quote restarts the string pattern
    "envelope_text": "from stellaops import dsse\n"
    "data = ('{\"payloadType\":\"' + '\\\\\"' * 64000).encode()\n"
    "try:\n    dsse.parse_envelope(data)\nexcept dsse.MalformedEnvelope:\n    pass\n",
    # the same inside a statement payload, as the import API parses it (any token holder)
    "import_payload": "import base64, json\nfrom stellaops import importer\n"
    "payload = base64.b64encode(('{\"_type\":\"' + '\\\\\"' * 64000).encode()).decode()\n"
    "doc = json.dumps({'payloadType': 'application/vnd.in-toto+json', 'payload': payload, 'signatures': [{'sig': 'AAAA'}]})\n"
    "items = importer.parse_cosign_download(doc.encode())\nassert items[0].error is not None\n",
}


@pytest.mark.parametrize("probe", sorted(_QUADRATIC_PROBES))
def test_json_parsing_stays_linear_on_hostile_strings(probe: str) -> None:
    """128 KB of hostile text must parse (or be refused) in well under the 5 s bound; a
    linear parser takes milliseconds. Run in a subprocess so a quadratic one is cut off."""
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _QUADRATIC_PROBES[probe]], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{probe}: parsing 128 KB did not finish within 5 s (super-linear)")
    assert proc.returncode == 0, proc.stderr


def test_metrics_cardinality_is_bounded_under_hostile_registry_names(tmp_path: Path, ocireg: str) -> None:
    """Pod authors choose registry hosts freely; the provider's metrics must not grow a time
    series per host they invent (here 150 names under .invalid, resolved locally to nothing)."""
    env, trip = egress_env(tmp_path)
    cfg = provider_config(tmp_path, {}, allow_private=False, extra="limits: {retries: 0}\nserver: {deadlineSeconds: 1.5, maxKeys: 50}\n")
    provider = start_provider(tmp_path / "provider", cfg, env=env)
    try:
        for batch in range(3):
            keys = [f"r{batch}x{i}.stellaops.invalid/app:v1" for i in range(50)]
            status, _ = provider.post("/gatekeeper/v1/verify", provider_request(keys))
            assert status == 200
        status, body = provider.get("/metrics")
        assert status == 200
        hosts = {line.split('registry="', 1)[1].split('"', 1)[0] for line in body.decode().splitlines()
                 if line.startswith("stellaops_registry_requests_total{")}  # fmt: skip
        assert len(hosts) <= 20, f"{len(hosts)} registry label values after 150 invented hosts"
    finally:
        provider.stop()
    assert not trip.exists() or not trip.read_text()


def test_large_predicates_are_summarised_not_returned_whole(
    tmp_path: Path, ocireg: str, provider_factory: Any
) -> None:
    """A trusted signer's 300 KB predicate, asked for under 4 keys of one request (default
    limits): the answer must stay small, the predicate summarised rather than copied into
    every verdict."""
    key = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "limits/bigpred", "v1", client=client)
    pred = {"scanner": {"name": "t", "version": "1"}, "scannedAt": "2026-11-24T10:00:00Z", "findings": [], "pad": "x" * 300_000}
    env = sign_envelope(statement(digest, predicate_type="https://example.com/big@v1", predicate=pred), [key])
    push_att(client, ocireg, "limits/bigpred", digest, [env])
    client.close()
    p = provider_factory(provider_config(tmp_path, {"release-key": write_public_key(key, tmp_path / "k.pub")}))
    keys = [f"{ocireg}/limits/bigpred:v1@{digest}", f"{ocireg}/limits/bigpred@{digest}",
            f"{ocireg}/limits/bigpred:v1", f"{ocireg}/limits/bigpred:latest@{digest}"]  # fmt: skip
    status, body = p.post("/gatekeeper/v1/verify", provider_request(keys))
    doc = json.loads(body)
    assert status == 200 and all(i["value"]["attestations"][0]["verified"] for i in doc["response"]["items"]), doc["response"]["systemError"]
    assert len(body) < 4 * 64 * 1024, f"the answer is {len(body)} bytes for 4 keys: predicates returned whole"


def test_attestation_bytes_per_image_are_bounded_in_aggregate(tmp_path: Path, ocireg: str, provider_factory: Any) -> None:
    import os

    from tests.hardening.test_load import _children

    def peak_rss(pid: int) -> int:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))

    key = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "limits/heavy", "v1", client=client)
    warm = push_test_image(ocireg, "limits/heavy-warm", "v1", client=client)
    layers = [b'{"x":"' + os.urandom(1_500_000).hex().encode() + b'"}' for _ in range(100)]  # 100 distinct 3 MB layers
    push_att(client, ocireg, "limits/heavy", digest, layers)
    del layers
    client.close()
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key, tmp_path / "k.pub")},
                          extra="server: {deadlineSeconds: 10, workers: 1}\nlimits: {blobBytes: 4194304, envelopeBytes: 4194304}\n")  # fmt: skip
    p = provider_factory(cfg)
    assert p.proc is not None
    (worker,) = _children(p.proc.pid)
    p.verify(f"{ocireg}/limits/heavy-warm@{warm}")  # warm up: imports, pools, caches
    before = peak_rss(worker)
    doc = p.verify(f"{ocireg}/limits/heavy@{digest}")
    assert doc["_status"] == 200
    growth = peak_rss(worker) - before
    assert growth < 128 * 1024 * 1024, f"peak memory grew by {growth // 2**20} MiB for one image's attestations"


def test_chunked_body_over_the_limit_is_refused_as_a_provider_response(lim: Lim) -> None:
    """Without Content-Length (Transfer-Encoding: chunked) the limit is enforced while reading."""
    import socket

    body = provider_request([])[:-1] + b',"pad":"' + b"x" * 100_000 + b'"}'
    with socket.create_connection(("127.0.0.1", lim.provider.port), timeout=10) as s:
        s.sendall(b"POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for i in range(0, len(body), 8192):
                chunk = body[i : i + 8192]
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may stop reading once the limit is passed
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"413", head
    assert_provider_response(json.loads(rest))
    lim.alive()
