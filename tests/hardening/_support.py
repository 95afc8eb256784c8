"""Helpers shared by the hardening tests: signing, pushing attestations (genuine or forged)
with the project's own :class:`~stellaops.registry.RegistryClient`, provider configurations,
and an egress tripwire for provider subprocesses.

Forgeries are pushed as cosign and ``stella attest attach`` lay them out, byte for byte what
an attacker with push access to the repository could write; nothing here validates what it
pushes (that is the point).
"""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from stellaops import dsse
from stellaops.registry import OCI_EMPTY, OCI_MANIFEST, RegistryClient
from stellaops.verify import keys

SCAN_TYPE = "stellaops.io/predicates/scan-result@v1"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PREDICATE = {
    "scanner": {"name": "trivy", "version": "0.50.0"},
    "scanId": "scan-0001",
    "scannedAt": "2026-11-24T10:00:00Z",
    "findings": [],
    "summary": {"critical": 0, "high": 0, "medium": 0, "low": 0, "unknown": 0},
}


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_public_key(key: Any, path: Path) -> Path:
    path.write_bytes(keys.public_key_pem(key.public_key()))
    return path


def statement(digest: str, *, predicate_type: str = SCAN_TYPE, predicate: Any = None, name: str = "app") -> bytes:
    return dsse.make_statement(name, digest, predicate_type, PREDICATE if predicate is None else predicate)


def sign_envelope(
    payload: bytes,
    signers: list[Any],
    *,
    payload_type: str = dsse.PAYLOAD_TYPE_INTOTO,
    extra_sigs: list[str] | None = None,
) -> bytes:
    """A DSSE envelope in cosign's serialisation, one signature per signer (PAE over the
    given payload type), plus raw base64 ``extra_sigs`` (forged ones)."""
    pae = dsse.pae(payload_type, payload)
    sigs = [{"keyid": "", "sig": base64.b64encode(keys.sign(k, pae)).decode()} for k in signers]
    sigs += [{"keyid": "", "sig": s} for s in extra_sigs or []]
    return json.dumps(
        {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(), "signatures": sigs},
        separators=(",", ":"),
    ).encode()


def push_att(
    client: RegistryClient,
    registry: str,
    repository: str,
    digest: str,
    layers: list[bytes],
    *,
    predicate_type: str = SCAN_TYPE,
    layer_annotations: list[dict[str, str]] | None = None,
) -> str:
    """Write cosign's legacy ``sha256-<hex>.att`` tag with ``layers`` (DSSE envelope bytes,
    verbatim) and cosign's layer annotations; returns the manifest digest."""
    empty = client.put_blob(registry, repository, b"{}")
    descs = []
    for i, layer in enumerate(layers):
        d = client.put_blob(registry, repository, layer)
        ann = {"dev.cosignproject.cosign/signature": "", "predicateType": predicate_type}
        if layer_annotations and i < len(layer_annotations):
            ann.update(layer_annotations[i])
        descs.append({"mediaType": DSSE_MEDIA_TYPE, "size": len(layer), "digest": d, "annotations": ann})
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": empty},
            "layers": descs,
        },
        separators=(",", ":"),
    ).encode()
    tag = digest.replace(":", "-", 1) + ".att"
    return client.put_manifest(registry, repository, tag, manifest, OCI_MANIFEST)


def push_bundle_referrer(
    client: RegistryClient,
    registry: str,
    repository: str,
    digest: str,
    subject_size: int,
    bundle: bytes,
    *,
    annotated_predicate_type: str = SCAN_TYPE,
    extra_annotations: dict[str, str] | None = None,
) -> str:
    """A sigstore bundle referrer in cosign v3's shape (``subject`` = the image)."""
    empty = client.put_blob(registry, repository, b"{}")
    layer = client.put_blob(registry, repository, bundle)
    annotations = {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": annotated_predicate_type,
        "org.opencontainers.image.created": "2026-11-24T10:00:00Z",
        **(extra_annotations or {}),
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": {"mediaType": OCI_EMPTY, "artifactType": BUNDLE_MEDIA_TYPE, "size": 2, "digest": empty},
            "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "size": len(bundle), "digest": layer}],
            "subject": {"mediaType": OCI_MANIFEST, "size": subject_size, "digest": digest},
            "annotations": annotations,
        },
        separators=(",", ":"),
    ).encode()
    return client.put_manifest(registry, repository, "sha256:" + hashlib.sha256(manifest).hexdigest(), manifest, OCI_MANIFEST)


def key_bundle(envelope: bytes, public_key: Any) -> bytes:
    """A v0.3 sigstore bundle around a key-signed envelope (as ``stella attest sign --bundle``)."""
    hint = base64.b64encode(hashlib.sha256(keys.public_key_der(public_key)).digest()).decode()
    env = json.loads(envelope)
    env["signatures"] = [{"sig": s["sig"]} for s in env["signatures"]]
    return json.dumps(
        {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": {"publicKey": {"hint": hint}}, "dsseEnvelope": env},
        separators=(",", ":"),
    ).encode()


def provider_config(
    directory: Path,
    authorities: dict[str, Path],
    *,
    allow: list[str] | None = None,
    allow_private: bool = True,
    extra: str = "",
    store_dsn: str | None = None,
    deadline: float = 1.5,
    cache_ttl: float = 0,
    keyless: dict[str, tuple[str, str]] | None = None,
    trusted_root: Path | None = None,
    require_tlog: bool = False,
) -> str:
    """A provider configuration trusting ``authorities`` (name → public key file), with
    ``requireTlog: false`` (offline keys), no verdict cache by default (each request
    re-verifies), and a SQLite store under ``directory`` unless ``store_dsn`` is given."""
    auth_lines = "".join(f"    - name: {name}\n      key: {{path: {path}}}\n" for name, path in authorities.items())
    auth_lines += "".join(
        f"    - name: {name}\n      keyless: {{issuer: '{issuer}', subject: '{subject}'}}\n"
        for name, (issuer, subject) in (keyless or {}).items()
    )
    roots = f"  trustRoots: {{bundlePath: {trusted_root}, offline: true}}\n" if trusted_root else ""
    allow_list = json.dumps(allow if allow is not None else ["*"])
    dsn = store_dsn or f"sqlite:///{directory / 'store.db'}"
    auth_block = auth_lines if auth_lines else "    []\n"
    text = (
        "attestation:\n"
        f"  authorities:\n{auth_block}"
        f"{roots}"
        f"  requireTlog: {'true' if require_tlog else 'false'}\n"
        "registries:\n"
        f"  allow: {allow_list}\n"
        f"  allowPrivate: {'true' if allow_private else 'false'}\n"
        f"store: {{dsn: '{dsn}'}}\n"
        f"cache: {{ttlSeconds: {cache_ttl}, negativeTtlSeconds: {cache_ttl}, digestTtlSeconds: {cache_ttl}}}\n"
    )
    if "server:" not in extra:
        text += f"server: {{deadlineSeconds: {deadline}}}\n"
    return text + textwrap.dedent(extra)


# Egress tripwire ---------------------------------------------------------------------------
# Loaded into provider subprocesses through PYTHONPATH (sitecustomize): an audit hook that
# (1) refuses any socket connect to a non-loopback address, recording it in a file, and
# (2) makes names under the reserved ``.invalid`` TLD fail to resolve *locally*, as a
# resolver answering NXDOMAIN would, without sending a DNS query (the sandbox's resolver is
# not on loopback, and tests never talk to anything but loopback).
_SITECUSTOMIZE = '''
import ipaddress, os, socket, sys

_TRIP = os.environ.get("STELLAOPS_TEST_EGRESS_LOG", "")

def _loopback(host):
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False

def _hook(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if isinstance(host, str) and host.rstrip(".").lower().endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (test resolver: .invalid)")
    elif event == "socket.connect":
        addr = args[1]
        if isinstance(addr, tuple) and addr and not _loopback(addr[0]):
            if _TRIP:
                with open(_TRIP, "a") as fh:
                    fh.write(f"{addr!r}\\n")
            raise ConnectionRefusedError(f"test egress tripwire: connect to {addr!r} refused")

sys.addaudithook(_hook)
'''


def egress_env(directory: Path) -> tuple[dict[str, str], Path]:
    """Environment for a provider subprocess with the egress tripwire; returns (env, log path)."""
    import os

    site = directory / "egress-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    trip = directory / "egress.log"
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": pythonpath, "STELLAOPS_TEST_EGRESS_LOG": str(trip)}, trip


def verdict_of(response: dict[str, Any], key: str) -> dict[str, Any]:
    """The value of ``key``'s item in a ProviderResponse (fails when absent or an error)."""
    items = {i["key"]: i for i in response["response"]["items"]}
    assert key in items, f"no item for {key}: {response}"
    assert items[key]["error"] == "", items[key]
    return items[key]["value"]


def reasons(attestation: dict[str, Any]) -> list[str]:
    return [e["reason"] for e in attestation.get("errors", [])]


def assert_provider_response(doc: Any) -> None:
    """The ProviderResponse shape Gatekeeper parses (DESIGN.md §2)."""
    assert isinstance(doc, dict), doc
    assert doc.get("apiVersion") == "externaldata.gatekeeper.sh/v1beta1", doc
    assert doc.get("kind") == "ProviderResponse", doc
    resp = doc["response"]
    assert isinstance(resp["items"], list) and isinstance(resp["systemError"], str), doc
    for item in resp["items"]:
        assert set(item) == {"key", "value", "error"}, item
        assert isinstance(item["key"], str) and isinstance(item["error"], str), item
        assert (item["error"] == "") == (item["value"] is not None), item


def push_dsse_referrer(
    client: RegistryClient, registry: str, repository: str, digest: str, subject_size: int, envelope: bytes,
    *, artifact_type: str = DSSE_MEDIA_TYPE,
) -> str:
    """A plain DSSE referrer (``stella attest attach --format dsse``): subject = the image."""
    empty = client.put_blob(registry, repository, b"{}")
    layer = client.put_blob(registry, repository, envelope)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": empty},
            "layers": [{"mediaType": DSSE_MEDIA_TYPE, "size": len(envelope), "digest": layer}],
            "subject": {"mediaType": OCI_MANIFEST, "size": subject_size, "digest": digest},
        },
        separators=(",", ":"),
    ).encode()
    return client.put_manifest(registry, repository, "sha256:" + hashlib.sha256(manifest).hexdigest(), manifest, OCI_MANIFEST)


def provider_request(keys: list[Any]) -> bytes:
    return json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": keys}}).encode()
