"""The attested images the Rego end-to-end tests decide on (Gatekeeper engine and opa eval),
made once per module by the real tools: keyless + logged (test Sigstore), key-signed offline by
`stella attest sign`/`attach` (clean and with a critical finding), and unsigned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore

STELLA = str(Path(sys.executable).parent / "stella")
SCAN = "stellaops.io/predicates/scan-result@v1"
NAMES = ("logged", "offline", "critical", "unsigned")


def scan_predicate(findings: list[tuple[str, str]], scan_id: str = "scan-rego") -> dict[str, Any]:
    return {
        "scanner": {"name": "stellaops-scanner", "version": "1.0"},
        "scanId": scan_id,
        "scannedAt": "2026-11-25T10:00:00Z",
        "findings": [{"id": i, "severity": s, "package": {"name": "openssl", "version": "3.0.1"}} for i, s in findings],
        "summary": {s: sum(1 for _, sev in findings if sev == s) for s in ("critical", "high", "medium", "low", "unknown")},
    }


def stella(*args: str) -> str:
    proc = subprocess.run([STELLA, *args], capture_output=True, check=False, text=True, timeout=120, env={**os.environ, "COSIGN_PASSWORD": "pw"})
    assert proc.returncode == 0, f"stella {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def seed(ocireg: str, test_sigstore: TestSigstore, d: Path, prefix: str) -> tuple[dict[str, str], str]:
    """Push and attest the images under ``<ocireg>/<prefix>/``; returns the image references and
    a provider configuration (text) that trusts both signers, with ``requireTlog: false``."""
    from stellaops import dsse
    from stellaops.attach import attach
    from stellaops.reference import parse_reference

    images = {name: f"{ocireg}/{prefix}/{name}:v1" for name in NAMES}
    digests = {name: push_test_image(ocireg, f"{prefix}/{name}", "v1") for name in images}
    # keyless, logged in the test Rekor: what the seed's verify_attestation accepts
    statement = dsse.make_statement(f"{ocireg}/{prefix}/logged", digests["logged"], SCAN, scan_predicate([]))
    with loopback_client() as client:
        attach(client, parse_reference(images["logged"]), test_sigstore.attest(statement).bundle_json(), formats=("bundle", "legacy"))
    # key-signed offline by stella (no transparency log)
    stella("key", "generate", "--output-key-prefix", str(d / "release"))
    for name, findings in (("offline", []), ("critical", [("CVE-2026-0001", "critical")])):
        (d / f"{name}.json").write_text(json.dumps(scan_predicate(findings)))
        envelope = stella("attest", "sign", "--predicate", str(d / f"{name}.json"), "--type", SCAN, "--image", images[name], "--key", str(d / "release.key"))
        (d / f"{name}.dsse.json").write_text(envelope)
        stella("attest", "attach", "--image", images[name], "--attestation", str(d / f"{name}.dsse.json"))
    root = d / "trusted_root.json"
    root.write_bytes(test_sigstore.trusted_root_json())
    config = (
        "attestation:\n"
        f"  trustRoots:\n    offline: true\n    bundlePath: {root}\n"
        "  authorities:\n"
        f"    - name: release-key\n      key: {{path: {d / 'release.pub'}}}\n"
        f"    - name: ci\n      keyless: {{issuer: '{ISSUER}', subject: '{IDENTITY}'}}\n"
        "  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n"
        f"store: {{dsn: 'sqlite:///{d / 'store.db'}'}}\n"
    )
    return images, config
