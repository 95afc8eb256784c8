"""The real-world corpus (``tests/data/realworld``, origin of every file in its SOURCE.md):
attestations and bundles made by other tools and services — sigstore-go, sigstore-js, sigstore-python,
sigstore-conformance, GitHub's ``gh attestation``, cosign, slsa-verifier (slsa-github-generator,
npm, GitHub artifact attestations), PyPI, and GitHub's own Sigstore instance (bundles without SCT or
log entry, dated by an RFC 3161 timestamp, against the JSON Lines of ``gh attestation
trusted-root``) — each verified twice, offline, and held to the
verdict its source's own test suite gives it (``cases.yaml``):

* through the CLI, ``stella attest verify-blob-attestation --bundle … --trusted-root … --offline``
  with the identity (or key) flags the case needs;
* through the provider's verifier, :func:`stellaops.verify.attestation.verify_candidate`, with a
  trust built by the provider's own configuration parser (``attestation.trustRoots.bundlePath``
  with ``offline: true``, one authority).

The OCI cases (a cosign ``.att`` attestation kept as an OCI image layout) are pushed to the loopback
registry fixture and go through ``stella attest verify IMAGE@DIGEST`` and the provider's
discovery. A refusal must carry the reason code the case names. Nothing here may leave the
machine: an audit hook records every connect and name lookup of this module, and anything but
loopback (the registry) fails the test — no TUF, no Rekor, no public Sigstore.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from stellaops.candidate import Candidate
from stellaops.cli import cli, exit_code_for
from stellaops.config import parse_config
from stellaops.errors import StellaError
from stellaops.verify.attestation import verify_candidate

DATA = Path(__file__).resolve().parents[1] / "data" / "realworld"
# the public-good trusted_root.json sigstore-python 4.5.1 ships (see tests/data/verify/SOURCE.md)
PUBLIC_GOOD = DATA.parent / "verify" / "conformance" / "public-good-trusted_root.json"
# GitHub's own Sigstore instance (fulcio.githubapp.com, timestamp.githubapp.com, no logs): the
# JSON Lines `gh attestation trusted-root` prints (public-good and GitHub's roots, one per line),
# as automata-slsa-sigstore-verifier's samples carry it (SOURCE.md, "github-instance/").
GITHUB_INSTANCE_ROOT = DATA / "github-instance" / "trusted_root.jsonl"
NPM_KEYS = DATA / "npm" / "registry.npmjs.org-keys.json"
_MANIFEST = yaml.safe_load((DATA / "cases.yaml").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = _MANIFEST["cases"]
OCI_CASES: list[dict[str, Any]] = _MANIFEST["oci_cases"]

# -- offline: every connect and every name lookup of this module is recorded -------------------

_SEEN: list[tuple[str, Any]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _SEEN is not None and event in ("socket.connect", "socket.getaddrinfo"):
        _SEEN.append((event, args[1] if event == "socket.connect" else args[0]))


sys.addaudithook(_audit)


def _is_loopback(host: Any) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def offline() -> Iterator[None]:
    """Only the loopback registry of the OCI cases is ever reached; nothing else (no TUF, no Rekor)."""
    global _SEEN
    _SEEN = seen = []
    try:
        yield
    finally:
        _SEEN = None
    for event, where in seen:
        host = where[0] if isinstance(where, tuple) else where
        assert _is_loopback(host), f"the real-world corpus must verify offline, but it reached for {where} ({event})"


# -- what a case needs --------------------------------------------------------------------------


@dataclass
class Prepared:
    bundle_file: Path  # what the CLI gets as --bundle
    provider_bundles: list[bytes]  # what the provider verifies (one candidate each)
    digest: str  # "alg:hex" of the artifact
    blob: Path | None  # the artifact file, when the case has one
    trusted_root: Path
    key_file: Path | None


def _trusted_root(case: dict[str, Any]) -> Path:
    name = case["trusted_root"]
    if name == "public-good":
        return PUBLIC_GOOD
    if name == "github-instance":
        return GITHUB_INSTANCE_ROOT
    return DATA / name


def _npm_bundle(doc: bytes, predicate_type: str) -> bytes:
    """The bundle of one attestation in npm's ``{"attestations": [{predicateType, bundle}]}``."""
    found = [a["bundle"] for a in json.loads(doc)["attestations"] if a["predicateType"] == predicate_type]
    assert len(found) == 1, f"npm attestations document has {len(found)} attestations of type {predicate_type}"
    return json.dumps(found[0]).encode()


def _pypi_bundle(doc: bytes) -> bytes:
    """A PyPI attestation (PEP 740: ``verification_material`` + ``envelope``) as the sigstore bundle
    it stands for, field by field as PEP 740 defines them (what pypi-attestations'
    ``Attestation.to_bundle`` builds): the certificate, the transparency entries and the RFC 3161
    timestamps as the verification material, the statement and signature as a one-signature
    in-toto DSSE envelope."""
    att = json.loads(doc)
    vm = att["verification_material"]
    material: dict[str, Any] = {"certificate": {"rawBytes": vm["certificate"]}, "tlogEntries": vm["transparency_entries"]}
    if vm.get("timestamps"):
        material["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": t} for t in vm["timestamps"]]}
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": att["envelope"]["statement"],
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": att["envelope"]["signature"]}],
        },
    }
    return json.dumps(bundle).encode()


def _pypi_provenance_attestation(doc: bytes) -> bytes:
    """The one attestation of PyPI's provenance object (PEP 740 ``{"attestation_bundles":
    [{"publisher", "attestations": [...]}]}``, what PyPI's integrity API serves)."""
    found = [a for b in json.loads(doc)["attestation_bundles"] for a in b["attestations"]]
    assert len(found) == 1, f"the provenance holds {len(found)} attestations"
    return json.dumps(found[0]).encode()


def _npm_key_pem(key_id: str) -> bytes:
    """npm's registry key (keys.json: DER SubjectPublicKeyInfo, base64) as a PEM file."""
    keys = [k for k in json.loads(NPM_KEYS.read_bytes())["keys"] if k["keyId"] == key_id and k["keyUsage"] == "npm:attestations"]
    assert len(keys) == 1, f"{key_id} is not an npm:attestations key in {NPM_KEYS.name}"
    b64 = keys[0]["publicKey"]["rawBytes"]
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n").encode()


def _digest(case: dict[str, Any]) -> str:
    if "digest" in case:
        return case["digest"]
    alg = case.get("digest_alg", "sha256")
    return f"{alg}:{hashlib.new(alg, (DATA / case['blob']).read_bytes()).hexdigest()}"


def _prepare(case: dict[str, Any], tmp_path: Path) -> Prepared:
    source = DATA / case["bundle"]
    raw = source.read_bytes()
    extract = case.get("extract", "")
    bundle_file = source
    if extract.startswith("npm:"):
        raw = _npm_bundle(raw, extract[len("npm:") :])
    elif extract == "pypi":
        raw = _pypi_bundle(raw)
    elif extract == "pypi-provenance":
        raw = _pypi_bundle(_pypi_provenance_attestation(raw))
    elif extract not in ("", "jsonl"):
        raise AssertionError(f"{case['id']}: unknown extract {extract!r}")
    if extract in ("pypi", "pypi-provenance") or extract.startswith("npm:"):
        bundle_file = tmp_path / "bundle.sigstore.json"
        bundle_file.write_bytes(raw)
    provider = [line for line in raw.splitlines() if line.strip()] if extract == "jsonl" else [raw]
    key_file = None
    if "key" in case:
        key_file = DATA / case["key"]
    elif "npm_key" in case:
        key_file = tmp_path / "npm.pub"
        key_file.write_bytes(_npm_key_pem(case["npm_key"]))
    return Prepared(
        bundle_file=bundle_file,
        provider_bundles=provider,
        digest=_digest(case),
        blob=DATA / case["blob"] if "blob" in case else None,
        trusted_root=_trusted_root(case),
        key_file=key_file,
    )


# -- the two paths --------------------------------------------------------------------------------


def _identity_args(case: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for field, flag in (
        ("identity", "--certificate-identity"),
        ("identity_regexp", "--certificate-identity-regexp"),
        ("issuer", "--certificate-oidc-issuer"),
        ("issuer_regexp", "--certificate-oidc-issuer-regexp"),
    ):
        if field in case:
            args += [flag, case[field]]
    return args


def _cli_args(case: dict[str, Any], p: Prepared) -> list[str]:
    args = ["attest", "verify-blob-attestation"]
    if p.blob is not None:
        args += [str(p.blob), "--digestAlg", case.get("digest_alg", "sha256")]
    else:
        alg, _, value = p.digest.partition(":")
        args += ["--digest", value, "--digestAlg", alg]
    args += ["--bundle", str(p.bundle_file), "--trusted-root", str(p.trusted_root), "--offline", "--type", case["predicate_type"]]
    if p.key_file is not None:
        args += ["--key", str(p.key_file)]
    return args + _identity_args(case) + list(case.get("flags", []))


def _run_cli(args: list[str]) -> tuple[int, str, str]:
    """(exit code, reason code or "", output) of one CLI run; anything but a StellaError is a bug."""
    res = CliRunner().invoke(cli, args, env={"STELLAOPS_CONFIG": ""})
    if isinstance(res.exception, StellaError):
        return exit_code_for(res.exception), res.exception.reason, res.output + str(res.exception)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, "", res.output


def _provider_config(case: dict[str, Any], trusted_root: Path, key_file: Path | None) -> str:
    """The provider's configuration for one case: the case's trusted root, offline, and one
    authority (its key, or its keyless identity plus any extension checks the case names)."""
    extra = dict(case.get("config", {}))
    authority: dict[str, Any] = {"name": "realworld"}
    if key_file is not None:
        authority["key"] = {"path": str(key_file)}
    else:
        keyless = {
            key: case[field]
            for field, key in (("identity", "subject"), ("identity_regexp", "subjectRegExp"), ("issuer", "issuer"), ("issuer_regexp", "issuerRegExp"))
            if field in case
        }
        keyless.update(extra.pop("keyless", {}))
        authority["keyless"] = keyless
    attestation: dict[str, Any] = {"trustRoots": {"bundlePath": str(trusted_root), "offline": True}, "authorities": [authority]}
    attestation.update(extra)
    return yaml.safe_dump({"attestation": attestation})


def _provider_results(case: dict[str, Any], p: Prepared, tmp_path: Path) -> list[Any]:
    config = parse_config(_provider_config(case, p.trusted_root, p.key_file), source="realworld.yaml", base_dir=tmp_path, env={})
    return [
        verify_candidate(Candidate(kind="bundle", data=data, source="imported", attached_to="", location=case["bundle"]), p.digest, config.trust)
        for data in p.provider_bundles
    ]


def _wanted_type(case: dict[str, Any]) -> str:
    from stellaops.predicates import resolve_predicate_type

    return resolve_predicate_type(case["predicate_type"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_realworld_case_cli(case: dict[str, Any], tmp_path: Path) -> None:
    p = _prepare(case, tmp_path)
    rc, reason, out = _run_cli(_cli_args(case, p))
    where = f"{case['id']} (source: {case['source_test']}: {case['source_verdict']})"
    if case["expected"] == "verified":
        assert rc == 0 and "Verified OK" in out, f"{where}: expected to verify, got exit {rc} {reason}:\n{out}"
        if "identity" in case:
            assert f"subject={case['identity']}" in out, out
        if "github-instance" in case.get("covers", []):
            assert "\ntimestamp " in out, f"{where}: a GitHub-instance verdict names the timestamp that dates it:\n{out}"
        if p.key_file is not None:
            assert "signer  key " in out, out
    else:
        assert rc == 1, f"{where}: expected a refusal ({case['reason']}), got exit {rc}:\n{out}"
        assert reason == case["reason"], f"{where}: refused for {reason}, expected {case['reason']}:\n{out}"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_realworld_case_provider(case: dict[str, Any], tmp_path: Path) -> None:
    p = _prepare(case, tmp_path)
    results = _provider_results(case, p, tmp_path)
    where = f"{case['id']} (source: {case['source_test']}: {case['source_verdict']})"
    assert results, f"{where}: no bundle to verify"
    for data, res in zip(p.provider_bundles, results, strict=True):
        if case["expected"] == "verified":
            assert res.verified, f"{where}: expected to verify, got {[(e.reason, e.message) for e in res.errors]}"
            assert res.predicate_type == _wanted_type(case)
            assert res.signers, f"{where}: verified without a signer"
            if p.key_file is None:
                assert res.signers[0].kind == "keyless" and res.signers[0].issuer.startswith("http"), res.signers
                if "identity" in case:
                    assert res.signers[0].subject == case["identity"], res.signers
            else:
                assert res.signers[0].kind == "key", res.signers
            material = json.loads(data).get("verificationMaterial", {})
            if material.get("tlogEntries"):
                assert res.tlog.verified, f"{where}: the bundle's log entry was not verified"
            elif p.key_file is None:
                # a keyless signature with no log entry (GitHub's instance) is dated by a verified
                # RFC 3161 timestamp, never by nothing
                assert material.get("timestampVerificationData", {}).get("rfc3161Timestamps"), where
                assert res.timestamps and not res.tlog.required, f"{where}: verified without a log entry or a verified timestamp"
        else:
            assert not res.verified, f"{where}: expected a refusal ({case['reason']}), but it verified"
            assert [e.reason for e in res.errors] == [case["reason"]], f"{where}: {[(e.reason, e.message) for e in res.errors]}"


# -- OCI cases: a cosign `.att` attestation in a loopback registry ------------------------------


def _push_layout(registry: str, repository: str, layout: Path) -> None:
    """Push an OCI image layout's manifests (and whichever of their blobs the layout holds) by
    digest, and tag each cosign ``.att`` manifest ``sha256-<subject hex>.att`` as cosign does."""
    from tests.fixtures.images import loopback_client

    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_bytes())
    subject = next(m["digest"] for m in index["manifests"] if m.get("annotations", {}).get("kind") == "dev.cosignproject.cosign/imageIndex")
    client = loopback_client()
    try:
        def push_manifest(desc: dict[str, Any]) -> None:
            raw = (blobs / desc["digest"].split(":", 1)[1]).read_bytes()
            doc = json.loads(raw)
            for child in doc.get("manifests", []):
                push_manifest(child)
            for blob in [doc.get("config")] + doc.get("layers", []):
                if blob and (blobs / blob["digest"].split(":", 1)[1]).exists():
                    client.put_blob(registry, repository, (blobs / blob["digest"].split(":", 1)[1]).read_bytes())
            client.put_manifest(registry, repository, desc["digest"], raw, desc["mediaType"])

        for desc in index["manifests"]:
            push_manifest(desc)
            if desc.get("annotations", {}).get("kind") == "dev.cosignproject.cosign/atts":
                raw = (blobs / desc["digest"].split(":", 1)[1]).read_bytes()
                client.put_manifest(registry, repository, subject.replace(":", "-") + ".att", raw, desc["mediaType"])
    finally:
        client.close()


@pytest.fixture(scope="module")
def oci_images(ocireg: str) -> dict[str, str]:
    """Each OCI layout of the corpus pushed once: layout → repository on the loopback registry."""
    out: dict[str, str] = {}
    for case in OCI_CASES:
        layout = case["oci_layout"]
        if layout not in out:
            repository = "realworld/" + hashlib.sha256(layout.encode()).hexdigest()[:12]
            _push_layout(ocireg, repository, DATA / layout)
            out[layout] = f"{ocireg}/{repository}"
    return out


@pytest.mark.parametrize("case", OCI_CASES, ids=[c["id"] for c in OCI_CASES])
def test_realworld_oci_case_cli(case: dict[str, Any], oci_images: dict[str, str]) -> None:
    image = f"{oci_images[case['oci_layout']]}@{case['image_digest']}"
    args = ["attest", "verify", image, "--trusted-root", str(_trusted_root(case)), "--offline", "--type", case["predicate_type"]]
    rc, reason, out = _run_cli(args + _identity_args(case) + list(case.get("flags", [])))
    where = f"{case['id']} (source: {case['source_test']}: {case['source_verdict']})"
    if case["expected"] == "verified":
        assert rc == 0 and f"OK  {_wanted_type(case)}" in out, f"{where}: expected to verify, got exit {rc} {reason}:\n{out}"
    else:
        assert rc == 1, f"{where}: expected a refusal ({case['reason']}), got exit {rc}:\n{out}"
        assert reason == case["reason"], f"{where}: refused for {reason}, expected {case['reason']}:\n{out}"


@pytest.mark.parametrize("case", OCI_CASES, ids=[c["id"] for c in OCI_CASES])
def test_realworld_oci_case_provider(case: dict[str, Any], oci_images: dict[str, str], tmp_path: Path) -> None:
    from stellaops.discovery import discover
    from stellaops.reference import parse_reference
    from tests.fixtures.images import loopback_client

    config = parse_config(_provider_config(case, _trusted_root(case), None), source="realworld.yaml", base_dir=tmp_path, env={})
    ref = parse_reference(f"{oci_images[case['oci_layout']]}@{case['image_digest']}")
    client = loopback_client()
    try:
        candidates = discover(client, ref, case["image_digest"])
    finally:
        client.close()
    att = [c for c in candidates if c.kind == "dsse" and c.cosign.certificate]
    where = f"{case['id']} (source: {case['source_test']}: {case['source_verdict']})"
    assert len(att) == 1, f"{where}: discovery found {[(c.kind, c.source, c.location) for c in candidates]}"
    res = verify_candidate(att[0], att[0].attached_to or case["image_digest"], config.trust)
    if case["expected"] == "verified":
        assert res.verified and res.predicate_type == _wanted_type(case), f"{where}: {[(e.reason, e.message) for e in res.errors]}"
        assert res.tlog.verified and res.signers[0].kind == "keyless"
    else:
        assert not res.verified, f"{where}: expected a refusal ({case['reason']}), but it verified"
        assert [e.reason for e in res.errors] == [case["reason"]], f"{where}: {[(e.reason, e.message) for e in res.errors]}"


def test_corpus_covers_what_issue_17_asks() -> None:
    """At least 30 cases, refusals among them, and every kind of material the issue lists."""
    assert len(CASES) + len(OCI_CASES) >= 30
    ids = [c["id"] for c in CASES + OCI_CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    covered = {tag for c in CASES + OCI_CASES for tag in c.get("covers", [])}
    wanted = {
        "public-good", "github-instance", "bundle-v0.1", "bundle-v0.2", "bundle-v0.3", "intoto", "dsse", "rekor-v2",
        "sha512", "key", "keyless", "npm-provenance", "npm-publish", "pypi-publish", "pypi-provenance", "slsa-github-generator",
        "github-artifact-attestation", "cosign-oci", "cosign-att-legacy", "github-identity-extensions",
        "gh-jsonl", "gh-trusted-root-jsonl", "no-sct", "no-tlog",
    }
    assert wanted <= covered, f"not covered: {sorted(wanted - covered)}"
    assert sum(c["expected"] == "refused" for c in CASES + OCI_CASES) >= 10
    github = [c for c in CASES if c["trusted_root"] == "github-instance" and "github-instance" in c.get("covers", [])]
    assert {c["expected"] for c in github} == {"verified", "refused"}, "GitHub's instance: cases that verify and that must be refused"
    for c in OCI_CASES:
        assert (DATA / c["oci_layout"] / "index.json").is_file(), c["id"]
        assert (c["expected"] == "refused") == ("reason" in c), c["id"]
    for c in CASES:
        assert c["expected"] in ("verified", "refused"), c["id"]
        assert (c["expected"] == "refused") == ("reason" in c), f"{c['id']}: a refusal names its reason, a pass none"
        assert c["source_test"] and c["source_verdict"], c["id"]
        assert ("digest" in c) != ("blob" in c), f"{c['id']}: give blob or digest"
        assert (DATA / c["bundle"]).is_file(), c["id"]


def test_every_corpus_file_is_named_in_source_md() -> None:
    """SOURCE.md names the repository, path and commit of every file (as tests/data/verify does)."""
    text = (DATA / "SOURCE.md").read_text(encoding="utf-8")
    for path in sorted(DATA.rglob("*")):
        if path.is_file() and path.name not in ("SOURCE.md", "cases.yaml"):
            rel = path.relative_to(DATA).as_posix()
            assert f"`{rel}`" in text, f"{rel} is not in SOURCE.md"
