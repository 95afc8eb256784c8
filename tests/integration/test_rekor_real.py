"""Our Rekor checks against a real Rekor v1 (rekor-server v1.5.4 on Trillian, ``rekor_server``
fixture), not only against the offline test Sigstore: the real ``cosign attest`` uploads to it,
and ``stella attest verify`` checks the SignedEntryTimestamp with that Rekor's key, the log
being required."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.rekor import RekorServer
from tests.fixtures.tools import tool

pytestmark = pytest.mark.cosign

STELLA = str(Path(sys.executable).with_name("stella"))
SLSA1 = "https://slsa.dev/provenance/v1"
PREDICATE = {"buildDefinition": {"buildType": "https://example.com/build@v1"}, "runDetails": {"builder": {"id": "https://example.com/b"}}}


def _env(tmp: Path) -> dict[str, str]:
    dead = "http://127.0.0.1:9"  # anything not on loopback fails here (tests/conftest.py)
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "COSIGN_PASSWORD": "pw", "TUF_ROOT": str(tmp / "tuf"),
            "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip


def run(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=tmp, env={**_env(tmp), **(env or {})}, capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Logged:
    tmp: Path
    image: str  # by digest
    digest: str
    layer: bytes  # the .att layer: the exact envelope bytes cosign uploaded
    annotations: dict[str, str]
    rekor: RekorServer


@pytest.fixture(scope="module")
def logged(rekor_server: RekorServer, ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """``cosign attest`` (legacy .att format) of a fresh image, uploaded to the real Rekor."""
    tmp = tmp_path_factory.mktemp("rekor-real")
    digest = push_test_image(ocireg, "rekor/app", "v1")
    image = f"{ocireg}/rekor/app@{digest}"
    assert run(tmp, tool("cosign"), "generate-key-pair").returncode == 0
    (tmp / "slsa.json").write_text(json.dumps(PREDICATE))
    proc = run(tmp, tool("cosign"), "attest", "--yes", "--key", "cosign.key", "--type", "slsaprovenance1", "--predicate", "slsa.json",
               "--rekor-url", rekor_server.url, "--use-signing-config=false", "--new-bundle-format=false", image)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with loopback_client() as client:
        manifest = client.get_manifest(ocireg, "rekor/app", f"sha256-{digest[7:]}.att")
        [layer] = manifest.layers
        data = client.get_blob(ocireg, "rekor/app", layer.digest)
    rekor_server.write_trusted_root(tmp / "trusted_root.json")
    return Logged(tmp, image, digest, data, layer.annotations, rekor_server)


def test_fixture_serves_its_key_and_log_id(rekor_server: RekorServer) -> None:
    key = serialization.load_pem_public_key(rekor_server.public_key_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert rekor_server.log_id == hashlib.sha256(der).hexdigest()
    assert rekor_server.url.startswith("http://127.0.0.1:")
    info = rekor_server.log_info()
    assert info["treeID"] == str(rekor_server.tree_id) and isinstance(info["treeSize"], int)
    # the signed tree head is a checkpoint whose signature's key hint is the log ID's first 4 bytes
    sig_line = info["signedTreeHead"].split("\n\n", 1)[1].strip()
    assert base64.b64decode(sig_line.rsplit(" ", 1)[1])[:4] == bytes.fromhex(rekor_server.log_id)[:4]
    print(f"rekor_server start-up: {rekor_server.startup_seconds:.2f}s")  # reported, not asserted


def test_cosign_upload_is_logged_and_indexed(logged: Logged) -> None:
    """The annotation cosign attached is this log's entry for exactly the layer bytes."""
    bundle = json.loads(logged.annotations["dev.sigstore.cosign/bundle"])
    assert bundle["Payload"]["logID"] == logged.rekor.log_id
    [uuid] = logged.rekor.search_index("sha256:" + hashlib.sha256(logged.layer).hexdigest())  # the Redis search index
    entry = logged.rekor.entry(uuid)
    assert entry["logIndex"] == bundle["Payload"]["logIndex"]
    assert entry["integratedTime"] == bundle["Payload"]["integratedTime"]
    body = json.loads(base64.b64decode(entry["body"]))
    assert body["kind"] == "dsse" and body["spec"]["envelopeHash"]["value"] == hashlib.sha256(logged.layer).hexdigest()
    assert entry["verification"]["inclusionProof"]["checkpoint"].startswith(logged.rekor.url.split("//", 1)[1])


def _verify(logged: Logged, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    proc = run(logged.tmp, STELLA, "attest", "verify", logged.image, "--type", "slsaprovenance1", "--output", "json", *args)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        doc = None
    return proc.returncode, doc, proc.stderr


def test_stella_verifies_cosign_attestation_with_the_real_rekors_set(logged: Logged) -> None:
    rc, doc, err = _verify(logged, "--key", "cosign.pub", "--trusted-root", "trusted_root.json", "--offline")
    assert rc == 0, err
    assert doc is not None and doc["verified"] is True
    [att] = doc["attestations"]
    bundle = json.loads(logged.annotations["dev.sigstore.cosign/bundle"])
    assert att["tlog"] == {"verified": True, "required": True, "logIndex": bundle["Payload"]["logIndex"],
                           "integratedTime": bundle["Payload"]["integratedTime"]}  # fmt: skip
    assert att["source"] == "cosign-tag" and att["predicateType"] == SLSA1


def test_stella_verifies_with_the_rekor_key_from_the_configuration(logged: Logged) -> None:
    """A stellaops.yaml whose trust bundle holds this Rekor's key, the log required, air-gapped."""
    cfg = logged.tmp / "stellaops.yaml"
    cfg.write_text(
        "attestation:\n"
        f"  trustRoots: {{offline: true, bundlePath: {logged.tmp / 'trusted_root.json'}}}\n"
        f"  authorities: [{{name: release, key: {{path: {logged.tmp / 'cosign.pub'}}}}}]\n"
        "  requireTlog: true\n"
    )
    rc, doc, err = _verify(logged, "--config", str(cfg))
    assert rc == 0, err
    assert doc is not None
    [att] = doc["attestations"]
    assert att["verified"] and att["tlog"]["verified"] and att["signers"][0]["authority"] == "release"


def test_refuses_the_real_entry_when_another_rekor_key_is_trusted(logged: Logged) -> None:
    """The SET is really checked: with a trust root naming another Rekor key, the same entry fails."""
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    imposter = RekorServer(url=logged.rekor.url, public_key_pem=other, log_id=hashlib.sha256(
        serialization.load_pem_public_key(other).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).hexdigest(), tree_id=0, root=logged.tmp, startup_seconds=0, started_at=logged.rekor.started_at)  # fmt: skip
    imposter.write_trusted_root(logged.tmp / "other_root.json")
    rc, doc, err = _verify(logged, "--key", "cosign.pub", "--trusted-root", "other_root.json", "--offline")
    assert rc == 1, err
    assert doc is not None
    [att] = doc["attestations"]
    assert att["verified"] is False and att["errors"][0]["reason"] == "TLOG_INVALID"
    assert "not a trusted Rekor log" in att["errors"][0]["message"]


def test_cosign_accepts_the_fixtures_rekor_pub(logged: Logged) -> None:
    """The ``rekor.pub`` helper is what cosign itself takes (SIGSTORE_REKOR_PUBLIC_KEY)."""
    pub = logged.rekor.write_rekor_pub(logged.tmp / "rekor.pub")
    proc = run(logged.tmp, tool("cosign"), "verify-attestation", "--key", "cosign.pub", "--type", "slsaprovenance1",
               "--new-bundle-format=false", "--rekor-url", logged.rekor.url, logged.image,
               env={"SIGSTORE_REKOR_PUBLIC_KEY": str(pub)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(base64.b64decode(json.loads(proc.stdout.splitlines()[0])["payload"]))["predicateType"] == SLSA1


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets in LISTEN that process ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out: set[tuple[str, int]] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            host_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(host_hex)
            # /proc prints the address as native-endian 32-bit words
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            out.add((socket.inet_ntop(family, words), int(port_hex, 16)))
    return out


def test_rekor_listens_on_loopback_only(rekor_server: RekorServer) -> None:
    ports = _listening_ports(rekor_server.procs["rekor-server"].pid)
    assert ports, "found no listening socket of rekor-server: the check would be vacuous"
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in ports), ports
