"""Threat "an index borrows another platform's attestations" (issue 16 item 1; its row and id
are proposed to the lead, who assigns the number): an index must not borrow them.

Two images, each genuinely attested and verified by the real provider:

- B (linux/amd64): a scan with a critical (CVE-2026-9001), an empty SPDX SBOM and SLSA v1
  provenance built from a feature branch, all signed only by the CI key;
- A (linux/arm64): a clean scan, a CycloneDX SBOM, provenance built from main and a VEX that
  clears CVE-2026-9001, all signed by the release key.

An unsigned index [B, A] was admitted by allowedsigners, scanthresholds, slsaprovenance,
requiresbom and requireattestations (and an index [B', A] by vexscanthresholds, B' carrying the
critical in a newer release-signed scan), because the policies pooled the attestations of every
platform: the newest scan, any acceptable signer or provenance, a VEX of one platform clearing
another's findings. The rule (CONTRACTS.md, docs/policies.md): an index is admitted only if its
own attestations satisfy the constraint, or each platform on its own attestations does.

Real parts: a loopback registry (ocireg), key-signed attestations in cosign's ``.att`` layout,
the provider (``stella serve``, requireTlog: false for the offline keys), and the shipped
policies from the pipeline bundle through the real ``opa`` and its http.send transport.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stellaops.registry import OCI_INDEX, OCI_MANIFEST
from tests.fixtures.images import _push_single, loopback_client
from tests.fixtures.provider import ProviderProcess, start_provider
from tests.fixtures.tools import tool
from tests.hardening._support import new_key, provider_config, push_att, sign_envelope, statement, write_public_key

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = Path(os.environ.get("STELLAOPS_TEST_PIPELINE_BUNDLE", ROOT / "rego" / "bundles" / "pipeline"))

SCAN = "stellaops.io/predicates/scan-result@v1"
SBOM = "stellaops.io/predicates/sbom@v1"
VEX = "stellaops.io/predicates/vex@v1"
SLSA1 = "https://slsa.dev/provenance/v1"
SEVERITIES = ("critical", "high", "medium", "low", "unknown")
GITHUB_HOSTED = "https://github.com/actions/runner/github-hosted"
MAIN = r"git\+https://github\.com/stellaops/[^/]+@refs/heads/main"


def scan(scan_id: str, at: str, criticals: list[str]) -> dict[str, Any]:
    findings = [{"id": c, "severity": "critical", "package": {"name": "openssl", "version": "3.0.1"}} for c in criticals]
    return {"scanner": {"name": "stellaops-scanner", "version": "2.4.0"}, "scanId": scan_id, "scannedAt": at,
            "findings": findings, "summary": {s: len(criticals) if s == "critical" else 0 for s in SEVERITIES}}


def sbom(fmt: str, components: int) -> dict[str, Any]:
    return {"format": fmt, "specVersion": "1.5", "documentDigest": "sha256:" + "5b" * 32, "componentCount": components}


def vex(at: str, vulnerability: str) -> dict[str, Any]:
    return {"author": "security@stellaops.io", "timestamp": at, "statements": [
        {"vulnerability": vulnerability, "products": ["pkg:oci/app"], "status": "not_affected",
         "justification": "vulnerable_code_not_in_execute_path"}]}


def github_provenance(ref: str) -> dict[str, Any]:
    """SLSA v1 as GitHub Actions writes it: the repository and the ref apart."""
    return {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                                "externalParameters": {"workflow": {"repository": "https://github.com/stellaops/app",
                                                                    "ref": ref, "path": ".github/workflows/release.yml"}},
                                "resolvedDependencies": []},
            "runDetails": {"builder": {"id": GITHUB_HOSTED}}}


# (predicate type, predicate, signer) per image
CLEAN = [
    (SCAN, scan("scan-clean", "2026-11-25T06:00:00Z", []), "release"),
    (SBOM, sbom("cyclonedx-json", 42), "release"),
    (SLSA1, github_provenance("refs/heads/main"), "release"),
    (VEX, vex("2026-11-25T07:00:00Z", "CVE-2026-9001"), "release"),
]
FLAWED = [
    (SCAN, scan("scan-flawed", "2026-11-24T06:00:00Z", ["CVE-2026-9001"]), "ci"),
    (SBOM, sbom("spdx-json", 0), "ci"),
    (SLSA1, github_provenance("refs/heads/feature-x"), "ci"),
]
# B' for the VEX case: the critical in a newer, release-signed scan, and a VEX about something else.
FLAWED_RELEASE = [
    (SCAN, scan("scan-flawed-release", "2026-11-25T08:00:00Z", ["CVE-2026-9001"]), "release"),
    (VEX, vex("2026-11-20T07:00:00Z", "CVE-2026-9999"), "release"),
]


@dataclass
class IndexWorld:
    provider: ProviderProcess
    registry: str
    images: dict[str, str] = field(default_factory=dict)  # name -> reference
    digests: dict[str, str] = field(default_factory=dict)  # platform image name -> digest


@pytest.fixture(scope="module")
def world(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexWorld]:
    tmp = tmp_path_factory.mktemp("index-policies")
    keys = {"release": new_key(), "ci": new_key()}
    repo = "index/app"
    client = loopback_client()
    digests: dict[str, str] = {}
    sizes: dict[str, int] = {}
    try:
        def attest(digest: str, atts: list[tuple[str, dict[str, Any], str]]) -> None:
            """All of an image's attestations as layers of its one cosign ``.att`` manifest."""
            if not atts:
                return
            envelopes = [sign_envelope(statement(digest, predicate_type=t, predicate=p, name=f"{ocireg}/{repo}"), [keys[signer]])
                         for t, p, signer in atts]
            push_att(client, ocireg, repo, digest, envelopes, layer_annotations=[{"predicateType": t} for t, _, _ in atts])

        for name, platform, atts in (("B", "linux/amd64", FLAWED), ("Bprime", "linux/amd64", FLAWED_RELEASE),
                                     ("A", "linux/arm64", CLEAN), ("A2", "linux/amd64", CLEAN),
                                     ("E", "linux/amd64", [])):
            os_, _, arch = platform.partition("/")
            digests[name], sizes[name] = _push_single(client, ocireg, repo, os_, arch)
            attest(digests[name], atts)

        def index(tag: str, members: list[str]) -> str:
            entries = [{"mediaType": OCI_MANIFEST, "size": sizes[m], "digest": digests[m],
                        "platform": {"os": "linux", "architecture": "amd64" if m != "A" else "arm64"}} for m in members]
            raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, separators=(",", ":")).encode()
            client.put_manifest(ocireg, repo, tag, raw, OCI_INDEX)
            return "sha256:" + hashlib.sha256(raw).hexdigest()

        images = {}
        for tag, members in (("borrow", ["B", "A"]), ("vex-borrow", ["Bprime", "A"]), ("platforms-pass", ["A2", "A"]),
                             ("own-pass", ["B", "E"]), ("bare-platform", ["E", "A"])):
            digests[tag] = index(tag, members)
            images[tag] = f"{ocireg}/{repo}:{tag}"
        attest(digests["own-pass"], CLEAN)  # the index itself signed by the release key
        for name in ("B", "A", "E"):
            images[name] = f"{ocireg}/{repo}@{digests[name]}"
    finally:
        client.close()
    pubs = {f"{name}-key": write_public_key(key, tmp / f"{name}.pub") for name, key in keys.items()}
    provider = start_provider(tmp / "provider", provider_config(tmp, pubs, deadline=10))
    try:
        yield IndexWorld(provider=provider, registry=ocireg, images=images, digests=digests)
    finally:
        provider.stop()


def violations(world: IndexWorld, package: str, image: str | dict[str, Any], parameters: dict[str, Any], tmp: Path) -> list[str]:
    """The shipped policy's violation messages for a Pod running ``image`` (or for the object
    ``image``), through opa eval and the http.send transport."""
    resource = image if isinstance(image, dict) else {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
                                                       "spec": {"containers": [{"name": "app", "image": image}]}}
    doc = {"review": {"object": resource}, "parameters": parameters}
    (tmp / "input.json").write_text(json.dumps(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STELLAOPS_")}
    env["STELLAOPS_PROVIDER_URL"] = world.provider.url
    env["STELLAOPS_PROVIDER_TIMEOUT"] = "20s"
    proc = subprocess.run([tool("opa"), "eval", "--format", "json", "--bundle", str(PIPELINE), "--input", str(tmp / "input.json"),
                           f"x := data.{package}.violation[_].msg"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return sorted(r["bindings"]["x"] for r in json.loads(proc.stdout).get("result", []))


RELEASE_ONLY = {"authorities": ["release-key"]}
CASES = {
    "allowedsigners": ("stellaopsallowedsigners", {"requireTlog": False, "rules": [
        {"predicateType": SCAN, "authorities": ["release-key"]},
        {"predicateType": "slsaprovenance1", "authorities": ["release-key"]}]}),
    "scanthresholds": ("stellaopsscanthresholds", {"requireTlog": False, "maxCounts": {"critical": 0}}),
    "slsaprovenance": ("stellaopsslsaprovenance", {"requireTlog": False, "builderIds": [GITHUB_HOSTED], "sourcePattern": MAIN}),
    "requiresbom": ("stellaopsrequiresbom", {"requireTlog": False, "formats": ["cyclonedx-json"], "minComponents": 1}),
    "requireattestations": ("stellaopsrequireattestations", {"requireTlog": False, "signers": RELEASE_ONLY,
                                                             "predicateTypes": [SCAN, SBOM, "slsaprovenance1"]}),
    "vexscanthresholds": ("stellaopsvexscanthresholds", {"requireTlog": False, "maxCounts": {"critical": 0}}),
}
# What each policy says about B's (or B''s) digest when it denies the index.
WHY = {
    "allowedsigners": "are signed by authority <ci-key>",
    "scanthresholds": "its newest scan-result <scan-flawed> (2026-11-24T06:00:00Z) finds critical 1 (max 0)",
    "slsaprovenance": "source <git+https://github.com/stellaops/app@refs/heads/feature-x>",
    "requiresbom": "has format <spdx-json>",
    "requireattestations": "are signed by authority <ci-key>",
    "vexscanthresholds": "its newest scan-result <scan-flawed-release> (2026-11-25T08:00:00Z) finds critical 1 (max 0)",
}


def _attack(policy: str) -> tuple[str, str]:
    return ("vex-borrow", "Bprime") if policy == "vexscanthresholds" else ("borrow", "B")


@pytest.mark.parametrize("policy", sorted(CASES))
def test_an_index_cannot_borrow_another_platforms_attestations(world: IndexWorld, policy: str, tmp_path: Path) -> None:
    package, parameters = CASES[policy]
    tag, flawed = _attack(policy)
    # the platform images alone: the flawed one is denied, the clean one admitted
    assert violations(world, package, world.images["A"], parameters, tmp_path) == []
    if policy != "vexscanthresholds":
        assert violations(world, package, world.images["B"], parameters, tmp_path), f"{policy} admits B alone"
    msgs = violations(world, package, world.images[tag], parameters, tmp_path)
    assert msgs, f"{policy} admitted the index [{flawed}, A] on A's attestations"
    prefix = f"container <app> image <{world.images[tag]}>: "
    assert all(m.startswith(prefix) for m in msgs), msgs
    # "platform <B> (linux/amd64) of index <I>: …" (the platform name from the verdict's platformDetails)
    named = [m for m in msgs if f"platform <{world.digests[flawed]}> (linux/amd64) of index <{world.digests[tag]}>: " in m]
    assert named and any(WHY[policy] in m for m in named), msgs
    assert not any(world.digests["A"] in m for m in msgs), f"A passes on its own and must not be blamed: {msgs}"


@pytest.mark.parametrize("policy", sorted(CASES))
def test_an_index_whose_platforms_each_pass_or_whose_own_digest_passes_is_admitted(world: IndexWorld, policy: str, tmp_path: Path) -> None:
    package, parameters = CASES[policy]
    assert violations(world, package, world.images["platforms-pass"], parameters, tmp_path) == []
    assert violations(world, package, world.images["own-pass"], parameters, tmp_path) == []


@pytest.mark.parametrize("policy", sorted(CASES))
def test_an_index_with_an_unattested_platform_is_denied(world: IndexWorld, policy: str, tmp_path: Path) -> None:
    package, parameters = CASES[policy]
    msgs = violations(world, package, world.images["bare-platform"], parameters, tmp_path)
    assert any(f"platform <{world.digests['E']}>" in m for m in msgs), msgs
    assert not any(world.digests["A"] in m for m in msgs), msgs
