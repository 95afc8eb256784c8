"""Every shipped policy's samples through Gatekeeper v3.23.1's engine and the real provider.

For each ``rego/policies/<name>/suite.yaml`` the shipped ``deploy/gatekeeper/<name>/template.yaml``
and the sample constraint are loaded into the harness, and each sample object is reviewed with
its ``registry.example.com/…`` images rewritten to a loopback ``ocireg``. The images there carry
the attestations each sample is written for (the scenarios of rego/testdata/verdicts, see
scripts/record-verdicts.py), made for real: statements signed with a release key or keylessly
(a test Fulcio certificate), logged in a test Rekor (the offline Sigstore of
tests/fixtures/sigstore.py, trusted by the provider through ``trustRoots.bundlePath``), packed as
sigstore bundles and attached with ``stella attest attach``. The provider (``stella serve``, mTLS)
verifies them with ``requireTlog: true``, as the samples' constraints expect.

Images outside the loopback registry (``registry.k8s.io/pause`` in a sample) stay as written;
the provider's ``registries.allow`` names only the loopback registry, so it refuses them without
connecting anywhere (the policies exempt them anyway).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.gatekeeper import DEPLOY_DIR, POLICIES_DIR, HarnessRun, provider_yaml
from tests.fixtures.tools import tool

STABLE_HOST = "registry.example.com"
SCAN = "stellaops.io/predicates/scan-result@v1"
SBOM = "stellaops.io/predicates/sbom@v1"
VEX = "stellaops.io/predicates/vex@v1"
SLSA1 = "https://slsa.dev/provenance/v1"
SLSA02 = "https://slsa.dev/provenance/v0.2"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
CI_IDENTITY = "https://github.com/stellaops/app/.github/workflows/release.yml@refs/heads/main"
SEVERITIES = ("critical", "high", "medium", "low", "unknown")
INTOTO = "application/vnd.in-toto+json"


# --- predicates (the shapes of DESIGN.md §3a; times relative to now so samples do not age) -------
def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def scan(days_ago: float, findings: list[tuple[str, str, str]]) -> dict[str, Any]:
    items = [{"id": v, "severity": s, "package": {"name": p, "version": "1.0.0", "purl": f"pkg:generic/{p}@1.0.0"},
              "fixedVersion": "1.0.1"} for v, s, p in findings]
    when = _iso(NOW - dt.timedelta(days=days_ago))
    return {"scanner": {"name": "stellaops-scanner", "version": "2.4.0"}, "scanId": "scan-" + when[:10],
            "scannedAt": when, "findings": items,
            "summary": {s: sum(1 for f in items if f["severity"] == s) for s in SEVERITIES}}


def sbom(fmt: str = "cyclonedx-json", components: int = 42) -> dict[str, Any]:
    return {"format": fmt, "specVersion": "1.5" if fmt == "cyclonedx-json" else "2.3",
            "documentDigest": "sha256:" + "5b" * 32, "uri": "oci://registry.example.com/app/sbom",
            "componentCount": components}


def vex(days_ago: float, statements: list[tuple[str, str]]) -> dict[str, Any]:
    return {"author": "security@stellaops.io", "timestamp": _iso(NOW - dt.timedelta(days=days_ago)),
            "statements": [{"vulnerability": v, "products": ["pkg:oci/app"], "status": s,
                            **({"justification": "vulnerable_code_not_in_execute_path"} if s == "not_affected" else {})}
                           for v, s in statements]}


def slsa1(builder: str, source: str) -> dict[str, Any]:
    return {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                                "externalParameters": {"workflow": {"repository": source, "ref": "refs/heads/main",
                                                                    "path": ".github/workflows/release.yml"}},
                                "resolvedDependencies": [{"uri": source}]},
            "runDetails": {"builder": {"id": builder}}}


def slsa02(builder: str, source: str) -> dict[str, Any]:
    return {"builder": {"id": builder}, "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
            "invocation": {"configSource": {"uri": source, "entryPoint": ".github/workflows/release.yml"}}}


@dataclass(frozen=True)
class Att:
    """One attestation to make: who signs (release | vendor | rogue key, or ci keyless) and what."""

    predicate_type: str
    predicate: dict[str, Any]
    signer: str = "release"
    subject_digest: str = ""  # another digest: the statement is about another image
    logged_days_ago: float = 0.0


GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.0.0"

# tag -> attestations (what rego/testdata/verdicts/<case> records for that image)
SCENARIOS: dict[str, list[Att]] = {
    "v1.0.0": [
        Att(SCAN, scan(0.5, []), signer="rogue"),  # an unverified copy: never chosen
        Att(SCAN, scan(24, [("CVE-2026-0001", "critical", "openssl")])),  # older verified scan
        Att(SCAN, scan(1, [("CVE-2026-1000", "low", "zlib"), ("CVE-2026-1001", "medium", "curl")])),
        Att(SBOM, sbom()),
        Att(VEX, vex(0.9, [("CVE-2026-1001", "not_affected")])),
        Att(SLSA1, slsa1("https://github.com/actions/runner/github-hosted",
                         "git+https://github.com/stellaops/app@refs/heads/main"), signer="ci"),
    ],
    "vulnerable": [
        Att(SCAN, scan(1, [("CVE-2026-2001", "critical", "openssl"), ("CVE-2026-2002", "critical", "glibc"),
                           ("CVE-2026-2003", "high", "curl"), ("CVE-2026-2004", "high", "zlib"),
                           ("CVE-2026-2005", "medium", "libxml2")])),
        Att(VEX, vex(0.9, [("CVE-2026-2001", "not_affected"), ("CVE-2026-2003", "fixed"), ("CVE-2026-2002", "affected")])),
        Att(VEX, vex(5, [("CVE-2026-2002", "not_affected")])),
        Att(VEX, vex(0.8, [("CVE-2026-2004", "not_affected")]), signer="vendor"),
        Att(SLSA02, slsa02(GENERATOR, "git+https://github.com/evil/app@refs/heads/main"), signer="ci"),
    ],
    "unsigned": [],
    "tampered": [
        Att(SCAN, scan(1, []), signer="rogue"),
        Att(SBOM, sbom(), subject_digest="sha256:" + "ab" * 32),
    ],
    "stale": [
        Att(SCAN, scan(85, []), logged_days_ago=85),
        Att(SBOM, sbom("spdx-json", 0), logged_days_ago=85),
    ],
}


def slsa1_github(ref: str) -> dict[str, Any]:
    """SLSA v1 as GitHub Actions writes it: repository and ref apart (the provider joins them)."""
    return {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                                "externalParameters": {"workflow": {"repository": "https://github.com/stellaops/app", "ref": ref,
                                                                    "path": ".github/workflows/release.yml"}},
                                "resolvedDependencies": []},
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}}


# Multi-arch indexes (the cases of rego/testdata/stub/index.rego): B (linux/amd64) has a critical,
# an empty SPDX SBOM and provenance from a feature branch, signed only by the vendor key (standing
# for a CI key); A (linux/arm64) is clean, release-signed, built from main by the release workflow,
# and carries a VEX that clears B's critical. Each index must be judged per platform.
CLEAN = [
    Att(SCAN, scan(0.25, [])),
    Att(SBOM, sbom()),
    Att(SLSA1, slsa1_github("refs/heads/main"), signer="ci"),
    Att(VEX, vex(0.2, [("CVE-2026-9001", "not_affected")])),
]
FLAWED = [
    Att(SCAN, scan(1, [("CVE-2026-9001", "critical", "openssl")]), signer="vendor"),
    Att(SBOM, sbom("spdx-json", 0), signer="vendor"),
    Att(SLSA1, slsa1_github("refs/heads/feature-x"), signer="vendor"),
]
FLAWED_RELEASE = [  # B': the critical in a NEWER release-signed scan, and a VEX about something else
    Att(SCAN, scan(0.1, [("CVE-2026-9001", "critical", "openssl")])),
    Att(VEX, vex(5, [("CVE-2026-9999", "not_affected")])),
]
# tag -> [(platform, attestations)]: an unsigned index over those platform images
INDEXES: dict[str, list[tuple[str, list[Att]]]] = {
    "index-borrow": [("linux/amd64", FLAWED), ("linux/arm64", CLEAN)],
    "index-vex-borrow": [("linux/amd64", FLAWED_RELEASE), ("linux/arm64", CLEAN)],
    "index-platforms-pass": [("linux/amd64", CLEAN), ("linux/arm64", CLEAN)],
    "index-bare-platform": [("linux/amd64", []), ("linux/arm64", CLEAN)],
}


# --- making and attaching the attestations ---------------------------------------------------------
def _sign_p256(key: ec.EllipticCurvePrivateKey, payload: bytes) -> tuple[bytes, bytes]:
    """DSSE over PAE (written here from the DSSE spec: 'DSSEv1' SP len SP type SP len SP body)."""
    pae = b"DSSEv1 %d %s %d %s" % (len(INTOTO), INTOTO.encode(), len(payload), payload)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    env = json.dumps({"payload": base64.b64encode(payload).decode(), "payloadType": INTOTO,
                      "signatures": [{"sig": base64.b64encode(sig).decode()}]}, separators=(",", ":")).encode()
    return env, sig


def _statement(name: str, digest: str, att: Att) -> bytes:
    return json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": (att.subject_digest or digest).split(":", 1)[1]}}],
        "predicateType": att.predicate_type,
        "predicate": att.predicate,
    }, separators=(",", ":")).encode()


@dataclass
class SampleWorld:
    registry: str
    provider: Any
    tls: Any
    workdir: Path

    def rewrite(self, obj: Any) -> Any:
        text = json.dumps(obj).replace(f'"{STABLE_HOST}/', f'"{self.registry}/samples/')
        return json.loads(text)


@pytest.fixture(scope="module")
def sample_world(ocireg: str, gk_tls: Any, test_sigstore: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleWorld]:
    from stellaops.registry import OCI_INDEX, OCI_MANIFEST
    from tests.fixtures.images import _push_single, loopback_client, push_test_image
    from tests.fixtures.provider import start_provider
    from tests.fixtures.sigstore import dsse_entry_body

    work = tmp_path_factory.mktemp("gk-samples")
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("release", "vendor", "rogue")}
    for name in ("release", "vendor"):
        (work / f"{name}.pub").write_bytes(keys[name].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (work / "trusted_root.json").write_bytes(test_sigstore.trusted_root_json())

    stella = str(Path(sys.executable).parent / "stella")
    name = f"{ocireg}/samples/app"

    def attest(tag: str, digest: str, atts: list[Att]) -> None:
        for i, att in enumerate(atts):
            payload = _statement(name, digest, att)
            logged = int(time.time() - att.logged_days_ago * 86400)
            if att.signer == "ci":
                leaf = test_sigstore.issue(identity=CI_IDENTITY, issuer=GITHUB_ISSUER,
                                           not_before=dt.datetime.fromtimestamp(logged - 60, dt.timezone.utc))
                bundle = test_sigstore.attest(payload, leaf=leaf, integrated_time=logged).bundle_json()
            else:
                key = keys[att.signer]
                env, sig = _sign_p256(key, payload)
                pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
                entry = test_sigstore.rekor.add(dsse_entry_body(env, payload, [sig], pub_pem), logged)
                bundle = json.dumps({
                    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                    "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": [entry.bundle_entry()]},
                    "dsseEnvelope": json.loads(env),
                }).encode()
            path = work / f"{tag}-{i}.bundle.json"
            path.write_bytes(bundle)
            if att.subject_digest:
                # stella refuses to attach a statement about another image (SUBJECT_MISMATCH); an
                # attacker would not ask it: cosign attaches it as given.
                cmd = [tool("cosign"), "attach", "attestation", "--attestation", str(path), f"{name}@{digest}"]
            else:
                cmd = [stella, "attest", "attach", "--image", f"{name}@{digest}", "--attestation", str(path),
                       "--tenant", "acme", "--format", "bundle"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"attaching {tag} #{i} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    for tag, atts in SCENARIOS.items():
        attest(tag, push_test_image(ocireg, "samples/app", tag), atts)
    client = loopback_client()
    try:
        for tag, members in INDEXES.items():
            entries = []
            for j, (platform, atts) in enumerate(members):
                os_, _, arch = platform.partition("/")
                digest, size = _push_single(client, ocireg, "samples/app", os_, arch)
                attest(f"{tag}-{j}", digest, atts)
                entries.append({"mediaType": OCI_MANIFEST, "size": size, "digest": digest,
                                "platform": {"os": os_, "architecture": arch}})
            raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, separators=(",", ":")).encode()
            client.put_manifest(ocireg, "samples/app", tag, raw, OCI_INDEX)
    finally:
        client.close()

    config = {
        "attestation": {
            "trustRoots": {"offline": True, "bundlePath": str(work / "trusted_root.json")},
            "authorities": [
                {"name": "release-key", "key": {"path": str(work / "release.pub")}},
                {"name": "vendor-key", "key": {"path": str(work / "vendor.pub")}},
                {"name": "ci", "keyless": {"issuer": GITHUB_ISSUER, "subject": CI_IDENTITY}},
            ],
            "requireTlog": True,
        },
        # Only the loopback registry: registry.k8s.io in a sample is refused before any connection.
        "registries": {"allow": [ocireg], "allowPrivate": True},
        "store": {"dsn": f"sqlite:///{work / 'store.db'}"},
    }
    provider = start_provider(work / "provider", yaml.safe_dump(config, sort_keys=False), tls=gk_tls)
    try:
        yield SampleWorld(registry=ocireg, provider=provider, tls=gk_tls, workdir=work)
    finally:
        provider.stop()


# --- the suites ---------------------------------------------------------------------------------------
def _cases() -> list[Any]:
    out = []
    for suite_path in sorted(POLICIES_DIR.glob("*/suite.yaml")):
        policy = suite_path.parent
        suite = yaml.safe_load(suite_path.read_text())
        for test in suite.get("tests", []):
            for case in test.get("cases", []):
                out.append(pytest.param(policy, test, case, id=f"{policy.name}/{test['name']}/{case['name']}"))
    return out


CASES = _cases()


# What each sample's denials must say beyond the suite's yes/no (one list per denial, in order),
# checked against the real provider's verdicts. A new sample without an entry is held to its
# suite's assertions only.
DENIALS: dict[str, list[list[str]]] = {
    "allowedsigners/release-key-and-ci/example-disallowed": [
        ["image <{r}/samples/app:vulnerable>", "no attestation of type <https://slsa.dev/provenance/v1>"]],
    "requireattestations/require-scan-and-sbom/example-disallowed": [
        ["image <{r}/samples/app:unsigned>", "<stellaops.io/predicates/sbom@v1>", "NO_ATTESTATION"],
        ["image <{r}/samples/app:unsigned>", "<stellaops.io/predicates/scan-result@v1>", "NO_ATTESTATION"]],
    "requireattestations/require-scan-and-sbom/example-disallowed-deployment": [
        ["initContainer <migrate> image <{r}/samples/app:tampered>", "<stellaops.io/predicates/sbom@v1>",
         "none verified by the provider", "SUBJECT_MISMATCH"],
        ["initContainer <migrate> image <{r}/samples/app:tampered>", "<stellaops.io/predicates/scan-result@v1>"]],
    "requiresbom/require-cyclonedx-sbom/example-disallowed": [
        ["image <{r}/samples/app:stale>", "format <spdx-json>"],
        ["image <{r}/samples/app:stale>", "lists 0 components"]],
    "requiresbom/require-cyclonedx-sbom/example-disallowed-missing": [
        ["image <{r}/samples/app:unsigned>", "no attestation of type <stellaops.io/predicates/sbom@v1>"]],
    "scanthresholds/no-critical-fresh-scan/example-disallowed": [
        ["image <{r}/samples/app:vulnerable>", "critical 2 (max 0), high 2 (max 0)"]],
    "scanthresholds/no-critical-fresh-scan/example-disallowed-stale": [
        ["image <{r}/samples/app:stale>", "hours old (max 168)"]],
    "slsaprovenance/github-built-from-main/example-disallowed": [
        ["image <{r}/samples/app:vulnerable>", "source <git+https://github.com/evil/app@refs/heads/main>"]],
    # VEX (release-key) clears 2001/2003, the constraint ignores 2002, the vendor's VEX for 2004
    # is from a signer the constraint does not accept: high 1 and medium 1 remain.
    "vexscanthresholds/no-critical-unless-vex/example-disallowed": [
        ["image <{r}/samples/app:vulnerable>", "high 1 (max 0), medium 1 (max 0)"]],
    # Multi-arch: the failing platform is named (the index itself carries nothing: it is named
    # too, as the other way to pass); the passing arm64 platform never is.
    "allowedsigners/release-key-and-ci/example-disallowed-index": [
        ["image <{r}/samples/app:index-borrow>", "index <sha256:", "itself: no attestation of type <https://slsa.dev/provenance/v1>"],
        ["image <{r}/samples/app:index-borrow>", "index <sha256:", "itself: no attestation of type <stellaops.io/predicates/scan-result@v1>"],
        ["image <{r}/samples/app:index-borrow>", "(linux/amd64) of index <sha256:",
         "<https://slsa.dev/provenance/v1> are signed by authority <vendor-key>"],
        ["image <{r}/samples/app:index-borrow>", "(linux/amd64) of index <sha256:",
         "<stellaops.io/predicates/scan-result@v1> are signed by authority <vendor-key>"]],
    "scanthresholds/no-critical-fresh-scan/example-disallowed-index": [
        ["image <{r}/samples/app:index-borrow>", "itself: no attestation of type"],
        ["image <{r}/samples/app:index-borrow>", "(linux/amd64) of index <sha256:", "finds critical 1 (max 0)"]],
    "slsaprovenance/github-built-from-main/example-disallowed-index": [
        ["image <{r}/samples/app:index-borrow>", "itself: no attestation of type"],
        ["image <{r}/samples/app:index-borrow>", "(linux/amd64) of index <sha256:",
         "source <git+https://github.com/stellaops/app@refs/heads/feature-x>"]],
    "vexscanthresholds/no-critical-unless-vex/example-disallowed-index": [
        ["image <{r}/samples/app:index-vex-borrow>", "itself: no attestation of type"],
        ["image <{r}/samples/app:index-vex-borrow>", "(linux/amd64) of index <sha256:", "finds critical 1 (max 0)"]],
    "requiresbom/require-cyclonedx-sbom/example-disallowed-index": [
        ["image <{r}/samples/app:index-borrow>", "itself: no attestation of type"],
        ["image <{r}/samples/app:index-borrow>", "(linux/amd64) of index <sha256:", "format <spdx-json>"],
        ["image <{r}/samples/app:index-borrow>", "(linux/amd64) of index <sha256:", "lists 0 components"]],
}


def _expected(case: dict[str, Any]) -> tuple[Any, list[str]]:
    violations: Any = None
    messages: list[str] = []
    for assertion in case.get("assertions", []):
        if "violations" in assertion:
            violations = assertion["violations"]
        if "message" in assertion:
            messages.append(str(assertion["message"]))
    return violations, messages


@pytest.mark.skipif(not CASES, reason="no rego/policies/*/suite.yaml yet")
@pytest.mark.parametrize(("policy", "test", "case"), CASES)
def test_sample_gives_expected_violations(harness_factory: Any, sample_world: SampleWorld, policy: Path,
                                          test: dict[str, Any], case: dict[str, Any]) -> None:
    template = DEPLOY_DIR / policy.name / "template.yaml"
    assert template.exists(), f"{template} is missing: run make generate"
    constraint = policy / test["constraint"]
    run: HarnessRun = harness_factory(
        templates=[template], constraints=[constraint],
        providers=[provider_yaml(f"{sample_world.provider.url}/gatekeeper/v1/verify", sample_world.tls.ca_pem, timeout=2)],
        client_cert=sample_world.tls.client_cert, client_key=sample_world.tls.client_key, cache_ttl="0",
    )
    assert run.setup_error is None, run.setup_error
    obj = sample_world.rewrite(yaml.safe_load((policy / case["object"]).read_text()))
    result = run.review(obj)
    assert result.get("error", "") == "", result
    expected, messages = _expected(case)
    denials = result["denials"]
    if expected == "yes" or expected is True:
        assert denials, f"{case['name']}: expected violations, Gatekeeper admitted {obj['metadata']['name']}"
    elif expected == "no" or expected is False:
        assert denials == [], f"{case['name']}: expected no violation, got:\n" + "\n".join(denials)
    elif isinstance(expected, int):
        assert len(denials) == expected, denials
    for fragment in messages:
        assert any(fragment in d for d in denials), (fragment, denials)
    case_id = f"{policy.name}/{test['name']}/{case['name']}"
    if case_id in DENIALS:
        want = [[f.replace("{r}", sample_world.registry) for f in d] for d in DENIALS[case_id]]
        assert len(denials) == len(want), f"{case_id}: expected {len(want)} denial(s), got:\n" + "\n".join(denials)
        for fragments, denial in zip(want, sorted(denials)):
            for fragment in fragments:
                assert fragment in denial, f"{case_id}: {fragment!r} not in {denial!r}"
    for denial in denials:
        # Readable: each names the constraint and an image of the object.
        assert denial.startswith(f"[{yaml.safe_load(constraint.read_text())['metadata']['name']}] "), denial
        assert sample_world.registry in denial or "registry.k8s.io" in denial, denial
