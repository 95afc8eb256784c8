#!/usr/bin/env python3
"""Write the verdicts the Rego tests are fed with: rego/testdata/verdicts/<case>/data.json.

Each file is one ProviderResponse item, ``{"key": IMAGE, "value": VERDICT, "error": ""}`` (or a
per-key ``error``), loaded by ``opa test`` as ``data.verdicts.<case>`` only because
scripts/rego-check.sh passes rego/testdata deliberately (one JSON per folder: no merge conflicts).

Two sources, both through the provider's own code, so the shape is exactly
``Verdict.to_json()`` (provider/stellaops/verdict.py):

``--record`` runs the real parts on loopback (as tests/integration/test_rego_pipeline.py does):
the ``ocireg`` registry, images pushed by the registry client, scan-result and SBOM attestations
key-signed offline by ``stella attest sign`` + ``stella attest attach`` (no Rekor: tlog not
verified), a scan-result made keyless and logged with the offline test Sigstore
(tests/fixtures/sigstore.py) and attached as a bundle + legacy layer, and the provider itself
(``stella serve --plain-http --config F --port N``). It POSTs one ProviderRequest to
``/gatekeeper/v1/verify`` and stores each item as ``recorded_<case>``, with the loopback
``127.0.0.1:PORT`` rewritten to ``registry.example.com`` so the files read the same across runs.

``--synthetic`` builds the richer cases (several attestations per image, VEX, SLSA v1 and v0.2,
stale and unverified ones) from the provider's dataclasses and ``predicates.summarize()``;
rego/testdata/verdicts/SOURCE.md lists which case comes from which source.

With neither flag, both run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "rego" / "testdata" / "verdicts"
TOOLS = ROOT / ".tools" / "bin"
STABLE_HOST = "registry.example.com"

sys.path.insert(0, str(ROOT / "provider"))

from stellaops import predicates
from stellaops.verdict import AttestationResult, ErrorItem, Signer, TlogResult, Verdict

SCAN = predicates.SCAN_RESULT_V1
SBOM = predicates.SBOM_V1
VEX = predicates.VEX_V1
SLSA1 = predicates.SLSA_V1
SLSA02 = predicates.SLSA_V02

RELEASE_KEY = Signer("key", "release-key", key_id="sha256:" + "5e" * 32)
CI_KEYLESS = Signer(
    "keyless",
    "ci",
    issuer="https://token.actions.githubusercontent.com",
    subject="https://github.com/stellaops/app/.github/workflows/release.yml@refs/heads/main",
)
OTHER_KEY = Signer("key", "vendor-key", key_id="sha256:" + "0f" * 32)


def _digest(seed: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def scan_predicate(scanned_at: str, findings: list[tuple[str, str, str]], scan_id: str = "") -> dict[str, Any]:
    items = [
        {
            "id": vid,
            "severity": sev,
            "package": {"name": pkg, "version": "1.0.0", "purl": f"pkg:generic/{pkg}@1.0.0"},
            "fixedVersion": "1.0.1",
        }
        for vid, sev, pkg in findings
    ]
    summary = {s: sum(1 for f in items if f["severity"] == s) for s in predicates.SEVERITIES}
    return {
        "scanner": {"name": "stellaops-scanner", "version": "2.4.0"},
        "scanId": scan_id or "scan-" + scanned_at[:10],
        "scannedAt": scanned_at,
        "findings": items,
        "summary": summary,
    }


def sbom_predicate(fmt: str = "cyclonedx-json", components: int = 42) -> dict[str, Any]:
    return {
        "format": fmt,
        "specVersion": "1.5" if fmt == "cyclonedx-json" else "2.3",
        "documentDigest": _digest("sbom-" + fmt),
        "uri": "oci://registry.example.com/app/sbom",
        "componentCount": components,
    }


def vex_predicate(timestamp: str, statements: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "author": "security@stellaops.io",
        "timestamp": timestamp,
        "statements": [
            {
                "vulnerability": vid,
                "products": ["pkg:oci/app"],
                "status": status,
                "justification": "vulnerable_code_not_in_execute_path" if status == "not_affected" else "",
            }
            for vid, status in statements
        ],
    }


def slsa1_predicate(builder: str, source: str) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"repository": source, "ref": "refs/heads/main", "path": ".github/workflows/release.yml"}},
        },
        "runDetails": {"builder": {"id": builder}},
    }


def slsa02_predicate(builder: str, source: str) -> dict[str, Any]:
    return {
        "builder": {"id": builder},
        "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
        "invocation": {"configSource": {"uri": source, "entryPoint": ".github/workflows/release.yml"}},
    }


def attestation(
    predicate_type: str,
    predicate: Any,
    digest: str,
    *,
    signers: tuple[Signer, ...] = (RELEASE_KEY,),
    tlog: bool = True,
    created: str = "",
    source: str = "bundle",
    verified: bool = True,
    errors: tuple[ErrorItem, ...] = (),
    created_signed: bool = True,
) -> AttestationResult:
    log = TlogResult(True, 4242, 1795950000, "c0d23d6ad406973f") if tlog and verified else TlogResult()
    when = created or predicates.signed_time(predicate_type, predicate) or "2026-11-20T08:00:00Z"
    return AttestationResult(
        predicate_type=predicate_type,
        verified=verified,
        source=source,
        digest=digest,
        signers=signers if verified else (),
        tlog=log,
        created=when,
        created_signed=created_signed,
        annotations={"dev.stellaops/tenant": "acme"},
        predicate=predicates.inline_predicate(predicate) if verified else None,
        predicate_summary=predicates.summarize(predicate_type, predicate) if verified else {},
        errors=errors,
        envelope_digest=_digest(json.dumps(predicate, sort_keys=True) + predicate_type),
    )


def synthetic_cases() -> dict[str, dict[str, Any]]:
    """Cases built from the provider's models (see SOURCE.md)."""
    cases: dict[str, dict[str, Any]] = {}

    def put(case: str, verdict: Verdict) -> None:
        cases[case] = {"key": verdict.image, "value": verdict.to_json(), "error": ""}

    img = f"{STABLE_HOST}/app:v1.0.0"
    d = _digest(img)
    bad_sig = ErrorItem("SIGNATURE_INVALID", "no signature on the envelope verifies against authority release-key", "sign with a configured key")
    put(
        "release",
        Verdict(
            img,
            d,
            (
                # Unverified copy first and an older verified scan: the library must pick the newest verified one.
                attestation(SCAN, scan_predicate("2026-11-24T10:00:00Z", []), d, verified=False, errors=(bad_sig,), created="2026-11-25T00:00:00Z", created_signed=False),
                attestation(SCAN, scan_predicate("2026-11-01T10:00:00Z", [("CVE-2026-0001", "critical", "openssl")]), d, source="cosign-tag"),
                attestation(SCAN, scan_predicate("2026-11-24T10:00:00Z", [("CVE-2026-1000", "low", "zlib"), ("CVE-2026-1001", "medium", "curl")]), d),
                attestation(SBOM, sbom_predicate(), d, created="2026-11-24T09:00:00Z"),
                attestation(VEX, vex_predicate("2026-11-24T11:00:00Z", [("CVE-2026-1001", "not_affected")]), d),
                attestation(SLSA1, slsa1_predicate("https://github.com/actions/runner/github-hosted", "git+https://github.com/stellaops/app@refs/heads/main"), d, signers=(CI_KEYLESS,), created="2026-11-24T08:00:00Z"),
            ),
        ),
    )

    img = f"{STABLE_HOST}/app:vulnerable"
    d = _digest(img)
    put(
        "vulnerable",
        Verdict(
            img,
            d,
            (
                attestation(
                    SCAN,
                    scan_predicate(
                        "2026-11-24T10:00:00Z",
                        [
                            ("CVE-2026-2001", "critical", "openssl"),
                            ("CVE-2026-2002", "critical", "glibc"),
                            ("CVE-2026-2003", "high", "curl"),
                            ("CVE-2026-2004", "high", "zlib"),
                            ("CVE-2026-2005", "medium", "libxml2"),
                        ],
                    ),
                    d,
                ),
                # The newest VEX says 2001 is not_affected and 2003 fixed; the older one (ignored for
                # 2002: a newer statement exists) said 2002 not_affected, the newer one affected.
                attestation(VEX, vex_predicate("2026-11-24T12:00:00Z", [("CVE-2026-2001", "not_affected"), ("CVE-2026-2003", "fixed"), ("CVE-2026-2002", "affected")]), d),
                attestation(VEX, vex_predicate("2026-11-20T12:00:00Z", [("CVE-2026-2002", "not_affected")]), d),
                # A VEX from a signer the constraint may not accept, clearing 2004.
                attestation(VEX, vex_predicate("2026-11-24T13:00:00Z", [("CVE-2026-2004", "not_affected")]), d, signers=(OTHER_KEY,)),
                attestation(SLSA02, slsa02_predicate("https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.0.0", "git+https://github.com/evil/app@refs/heads/main"), d, signers=(CI_KEYLESS,), created="2026-11-24T08:00:00Z"),
            ),
        ),
    )

    img = f"{STABLE_HOST}/app:unsigned"
    put(
        "unsigned",
        Verdict(img, _digest(img), (), (ErrorItem("NO_ATTESTATION", f"no attestation is attached to {img}", "attach one with stella attest attach"),)),
    )

    img = f"{STABLE_HOST}/app:tampered"
    d = _digest(img)
    put(
        "tampered",
        Verdict(
            img,
            d,
            (
                attestation(SCAN, scan_predicate("2026-11-24T10:00:00Z", []), d, verified=False, errors=(bad_sig,)),
                attestation(SBOM, sbom_predicate(), d, verified=False, errors=(ErrorItem("SUBJECT_MISMATCH", f"the statement names sha256:{'ab' * 32}, not {d}", "attest the image digest"),)),
            ),
        ),
    )

    img = f"{STABLE_HOST}/app:stale"
    d = _digest(img)
    put(
        "stale",
        Verdict(
            img,
            d,
            (
                attestation(SCAN, scan_predicate("2026-09-01T10:00:00Z", []), d),
                # Newer by its annotation only (its predicate states no scannedAt): an unsigned
                # time never counts as fresh.
                attestation(SCAN, scan_predicate("", [("CVE-2026-3001", "critical", "openssl")], "scan-2026-11-24"), d, created="2026-11-24T10:00:00Z", created_signed=False),
                attestation(SBOM, sbom_predicate("spdx-json", 0), d, created="2026-09-01T10:00:00Z"),
            ),
        ),
    )

    return cases


def write_cases(cases: dict[str, dict[str, Any]]) -> None:
    for case, item in sorted(cases.items()):
        folder = OUT / case
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data.json").write_text(json.dumps(item, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {folder / 'data.json'}")


# ---------------------------------------------------------------------------------------------
# --record: the real provider
# ---------------------------------------------------------------------------------------------


def _stella(*args: str, env: dict[str, str]) -> str:
    stella = str(Path(sys.executable).parent / "stella")
    proc = subprocess.run([stella, *args], capture_output=True, text=True, timeout=120, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"stella {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def record() -> dict[str, dict[str, Any]]:
    """Real parts on loopback, as tests/integration/test_rego_pipeline.py runs them: ocireg, images
    pushed by the registry client, scan-result and SBOM attestations key-signed offline by
    `stella attest sign` + `attach` (no tlog), a scan-result made keyless and logged with the
    offline test Sigstore (tests/fixtures/sigstore.py), and `stella serve --plain-http`."""
    sys.path.insert(0, str(ROOT))
    from stellaops import dsse
    from stellaops.attach import attach
    from stellaops.reference import parse_reference

    from tests.fixtures.images import loopback_client, push_test_image
    from tests.fixtures.provider import start_provider
    from tests.fixtures.registries import _stop, start_ocireg
    from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore

    work = Path(tempfile.mkdtemp(prefix="stellaops-record-"))
    env = dict(os.environ, COSIGN_PASSWORD="record")
    host, registry, registry_tmp = start_ocireg(True)
    provider = None
    try:
        images = {name: f"{host}/app:recorded-{name}" for name in ("offline", "logged", "unsigned")}
        digests = {name: push_test_image(host, "app", f"recorded-{name}") for name in images}
        _stella("key", "generate", "--output-key-prefix", str(work / "release"), env=env)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        preds = {
            SCAN: scan_predicate(now, [("CVE-2026-2001", "critical", "openssl"), ("CVE-2026-1000", "low", "zlib")]),
            SBOM: sbom_predicate(),
            VEX: vex_predicate(now, [("CVE-2026-2001", "not_affected")]),
            SLSA1: slsa1_predicate("https://github.com/actions/runner/github-hosted", "git+https://github.com/stellaops/app@refs/heads/main"),
        }
        for i, (ptype, pred) in enumerate(preds.items()):
            (work / f"p{i}.json").write_text(json.dumps(pred))
            envelope = _stella("attest", "sign", "--predicate", str(work / f"p{i}.json"), "--type", ptype, "--image", images["offline"], "--key", str(work / "release.key"), env=env)
            (work / f"e{i}.json").write_text(envelope)
            _stella("attest", "attach", "--image", images["offline"], "--attestation", str(work / f"e{i}.json"), env=env)
        sigstore = TestSigstore()
        statement = dsse.make_statement(f"{host}/app", digests["logged"], SCAN, scan_predicate(now, []))
        with loopback_client() as client:
            attach(client, parse_reference(images["logged"]), sigstore.attest(statement).bundle_json(), formats=("bundle", "legacy"))
        root = work / "trusted_root.json"
        root.write_bytes(sigstore.trusted_root_json())
        config = (
            "attestation:\n"
            f"  trustRoots:\n    offline: true\n    bundlePath: {root}\n"
            "  authorities:\n"
            f"    - name: release-key\n      key: {{path: {work / 'release.pub'}}}\n"
            f"    - name: ci\n      keyless: {{issuer: '{ISSUER}', subject: '{IDENTITY}'}}\n"
            "  requireTlog: false\n"
            "registries:\n  allowPrivate: true\n"
            f"store: {{dsn: 'sqlite:///{work / 'store.db'}'}}\n"
        )
        provider = start_provider(work / "provider", config)
        answer = provider.verify(*sorted(images.values()), f"{host}/app@sha256:nothex")
        if answer["response"].get("systemError"):
            raise SystemExit(f"the provider reported a system error: {answer['response']['systemError']}")
        cases: dict[str, dict[str, Any]] = {}
        for item in answer["response"]["items"]:
            stable = json.loads(json.dumps(item).replace(host, STABLE_HOST))
            tag = stable["key"].rsplit(":", 1)[-1]
            cases["recorded_invalid_reference" if "@" in stable["key"] else "recorded_" + tag.removeprefix("recorded-")] = stable
        return cases
    finally:
        if provider is not None:
            provider.stop()
        _stop(registry)
        shutil.rmtree(registry_tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="write the model-built cases (no tools needed)")
    parser.add_argument("--record", action="store_true", help="record the recorded_* cases from a real provider run")
    args = parser.parse_args()
    if not args.synthetic and not args.record:
        args.synthetic = args.record = True
    if args.synthetic:
        write_cases(synthetic_cases())
    if args.record:
        write_cases(record())
    return 0


if __name__ == "__main__":
    sys.exit(main())
