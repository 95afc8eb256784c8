"""The benchmark's world, on loopback only: one ocireg registry (OCI 1.1 referrers API), the
provider under gunicorn (``stella serve``), a P-256 signing key, and seeded images.

Seeding uses the project's own code paths in-process (no CLI start-up per image):
``stellaops.attach.attach`` is what ``stella attest attach`` runs, and envelopes are signed as
``stella attest sign`` does (``dsse.make_statement`` → PAE → ``keys.sign``). Unrelated
referrers (other tools' artifacts) are pushed with ``RegistryClient``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stellaops import dsse
from stellaops.reference import parse_reference
from stellaops.registry import (
    OCI_MANIFEST,
    RegistryClient,
    RegistryLimits,
    RegistryPolicy,
)
from stellaops.verify import keys

from tests.fixtures.images import push_test_image
from tests.fixtures.provider import ProviderProcess, TLSFiles, free_port, make_tls
from tests.fixtures.registries import start_ocireg
from tests.fixtures.tools import tool

SBOM_TYPE = "stellaops.io/predicates/sbom@v1"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
# Artifact types other tools hang on images (Notation signatures, SPDX/CycloneDX SBOMs via ORAS,
# a Helm-style artifact): the "non-matching referrers" of the scaling run.
UNRELATED_TYPES = (
    "application/vnd.cncf.notary.signature",
    "application/spdx+json",
    "application/vnd.cyclonedx+json",
    "application/vnd.example.bench.unrelated.v1+json",
)


def sbom_predicate(target_bytes: int) -> dict[str, Any]:
    """An sbom@v1 predicate with an inline SPDX-like document of roughly ``target_bytes``."""
    per = 96  # one package entry is ~96 bytes of JSON
    count = max(1, target_bytes // per)
    packages = [
        {"SPDXID": f"SPDXRef-Package-{i:07d}", "name": f"pkg-{i:07d}", "versionInfo": f"1.{i % 100}.{i % 7}"}
        for i in range(count)
    ]
    doc = {"spdxVersion": "SPDX-2.3", "name": "bench", "packages": packages}
    return {"format": "spdx-json", "specVersion": "2.3", "componentCount": count, "document": doc}


def sign_envelope(private_key: Any, image_name: str, digest: str, predicate: dict[str, Any], ptype: str = SBOM_TYPE) -> bytes:
    """A DSSE envelope over an in-toto Statement v1 about ``digest``, as ``stella attest sign`` makes it."""
    statement = dsse.make_statement(image_name, digest, ptype, predicate)
    sig = keys.sign(private_key, dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, statement))
    return json.dumps(
        {"payload": base64.b64encode(statement).decode(), "payloadType": dsse.PAYLOAD_TYPE_INTOTO,
         "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]},
        separators=(",", ":"),
    ).encode()


@dataclass
class Image:
    repo: str
    tag: str
    digest: str
    registry: str

    @property
    def by_tag(self) -> str:
        return f"{self.registry}/{self.repo}:{self.tag}"

    @property
    def by_digest(self) -> str:
        return f"{self.registry}/{self.repo}@{self.digest}"


@dataclass
class BenchEnv:
    work: Path
    registry: str = ""
    registry_proc: subprocess.Popen[bytes] | None = None
    registry_tmp: str = ""
    client: RegistryClient | None = None
    private_key: Any = None
    pub_path: Path | None = None
    providers: list[ProviderProcess] = field(default_factory=list)

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def create(cls) -> BenchEnv:
        env = cls(work=Path(tempfile.mkdtemp(prefix="stellaops-bench-")))
        env.registry, env.registry_proc, env.registry_tmp = start_ocireg(True)
        env.client = RegistryClient(
            policy=RegistryPolicy(allow_private=True),
            limits=RegistryLimits(manifest_bytes=8 << 20, blob_bytes=64 << 20, referrers=5000),
        )
        env.private_key = ec.generate_private_key(ec.SECP256R1())
        env.pub_path = env.work / "cosign.pub"
        env.pub_path.write_bytes(
            env.private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return env

    def close(self) -> None:
        for p in self.providers:
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        if self.client is not None:
            self.client.close()
        if self.registry_proc is not None and self.registry_proc.poll() is None:
            self.registry_proc.terminate()
            try:
                self.registry_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.registry_proc.kill()
        shutil.rmtree(self.registry_tmp, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

    # -- provider ---------------------------------------------------------------------------
    def config_text(self, name: str, *, nocache: bool = False, deadline: float | None = None) -> str:
        """The production-like configuration: defaults everywhere (2 workers × 8 threads, in-process
        verdict cache 300 s, deadline 1.5 s, SQLite store) except the trust and the loopback registry."""
        text = (
            "attestation:\n"
            "  authorities:\n"
            "    - name: bench-key\n"
            f"      key: {{path: {self.pub_path}}}\n"
            "  requireTlog: false   # key-signed, no Rekor: cosign --insecure-ignore-tlog\n"
            "registries:\n"
            f"  allow: ['{self.registry}']\n"
            "  allowPrivate: true   # the bench registry is on loopback\n"
            f"store: {{dsn: 'sqlite:///{self.work / (name + '-store.db')}'}}\n"
        )
        server: list[str] = []
        if deadline is not None:
            server.append(f"  deadlineSeconds: {deadline}")
        if server:
            text += "server:\n" + "\n".join(server) + "\n"
        if nocache:
            text += "cache: {ttlSeconds: 0, negativeTtlSeconds: 0, digestTtlSeconds: 0}\n"
        return text

    def start_provider(self, name: str, *, nocache: bool = False, deadline: float | None = None, tls: bool = False) -> ProviderProcess:
        directory = self.work / name
        directory.mkdir(parents=True, exist_ok=True)
        text = self.config_text(name, nocache=nocache, deadline=deadline)
        tls_files: TLSFiles | None = None
        if tls:
            tls_files = make_tls(directory / "tls")
            if "server:\n" in text:
                text = text.replace("server:\n", f"server:\n  tls: {{cert: {tls_files.server_cert}, key: {tls_files.server_key}, clientCA: {tls_files.ca_cert}}}\n")
            else:
                text += (f"server:\n  tls: {{cert: {tls_files.server_cert}, key: {tls_files.server_key}, "
                         f"clientCA: {tls_files.ca_cert}}}\n")
        cfg = directory / "stellaops.yaml"
        cfg.write_text(text)
        p = ProviderProcess(config_path=cfg, port=free_port(), tls=tls_files)
        p.start(timeout=60)
        self.providers.append(p)
        return p

    # -- seeding ----------------------------------------------------------------------------
    def push_image(self, repo: str, tag: str = "v1") -> Image:
        assert self.client is not None
        digest = push_test_image(self.registry, repo, tag, client=self.client)
        return Image(repo=repo, tag=tag, digest=digest, registry=self.registry)

    def attest(self, image: Image, predicate: dict[str, Any], *, formats: tuple[str, ...] = ("bundle", "legacy")) -> None:
        """Sign ``predicate`` for ``image`` and attach it the way ``stella attest attach`` does."""
        from stellaops.attach import attach

        assert self.client is not None
        env = sign_envelope(self.private_key, f"{self.registry}/{image.repo}", image.digest, predicate)
        attach(self.client, parse_reference(image.by_digest), env, formats=formats)

    def push_unrelated_referrers(self, image: Image, count: int, *, typed: bool = True) -> None:
        """``count`` referrers of other tools' artifact types (none is an attestation).

        ``typed``: the artifact type is also the config media type (ORAS style), so ocireg's
        referrers listing, which reports ``config.mediaType`` (go-containerregistry v0.21.7
        ignores the manifest's ``artifactType``), shows the real type, as a spec-compliant
        registry does. Untyped: the OCI 1.1 artifact form (empty config + ``artifactType``),
        which ocireg lists as ``application/vnd.oci.empty.v1+json``, so a client has to fetch
        each manifest to learn what it is."""
        assert self.client is not None
        c, reg, repo = self.client, self.registry, image.repo
        c.put_blob(reg, repo, EMPTY_JSON)
        c.put_blob(reg, repo, b"{ }")  # config blob of the typed form (same bytes for every type)
        typed_config = "sha256:" + hashlib.sha256(b"{ }").hexdigest()
        empty_digest = "sha256:" + hashlib.sha256(EMPTY_JSON).hexdigest()
        layer = b'{"bench":"unrelated artifact"}'
        layer_digest = c.put_blob(reg, repo, layer)
        subject = {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": self._manifest_size(image)}
        for i in range(count):
            at = UNRELATED_TYPES[i % len(UNRELATED_TYPES)]
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": at,
                    "config": {"mediaType": at, "digest": typed_config, "size": 3} if typed
                    else {"mediaType": OCI_EMPTY, "digest": empty_digest, "size": 2},
                    "layers": [{"mediaType": "application/json", "digest": layer_digest, "size": len(layer)}],
                    "subject": subject,
                    "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z", "dev.example.bench/index": str(i)},
                },
                separators=(",", ":"),
            ).encode()
            digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            c.put_manifest(reg, repo, digest, manifest, OCI_MANIFEST)

    def _manifest_size(self, image: Image) -> int:
        assert self.client is not None
        return len(self.client.get_manifest(self.registry, image.repo, image.digest).raw)


def cosign_path() -> str:
    return tool("cosign")


def cosign_verify_cmd(pub: Path, ptype: str, image_ref: str) -> list[str]:
    return [cosign_path(), "verify-attestation", "--key", str(pub), "--insecure-ignore-tlog", "--type", ptype, image_ref]


def quiet_env() -> dict[str, str]:
    """cosign without update checks or colour; nothing reaches beyond loopback."""
    env = dict(os.environ)
    env.setdefault("COSIGN_EXPERIMENTAL", "0")
    env["NO_COLOR"] = "1"
    return env
