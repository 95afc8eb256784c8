"""Kyverno's verifyImages accepts what `stella attest attach` writes (slow, optional).

Runs the key-based variant of the seed's ClusterPolicy (deploy/kyverno/) with Kyverno's own CLI
(`kyverno apply`) against a loopback registry holding images attested by `stella attest sign` +
`stella attest attach` (default formats: sigstore bundle referrer + cosign legacy `.att` layer,
the one Kyverno reads). The seed's keyless policy needs the public Sigstore and is not run.

The Kyverno CLI is not among the pinned tools (it takes ~10 min and 320 MB to build from the Go
module proxy, DESIGN §8): the test runs when `kyverno` is found at $STELLAOPS_KYVERNO,
.tools/bin/kyverno or ~/.cache/stellaops/tools/kyverno-v1.19.0/bin/kyverno, and is skipped
otherwise. Everything runs inside a fresh network namespace (`unshare -n`) whose only interface
is loopback, so nothing Kyverno might try to reach (Sigstore's TUF mirror) can be contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deploy" / "kyverno" / "require-stellaops-attestation-key.yaml"
SCAN = "stellaops.io/predicates/scan-result@v1"


def kyverno_binary() -> str | None:
    for candidate in (
        os.environ.get("STELLAOPS_KYVERNO", ""),
        str(ROOT / ".tools" / "bin" / "kyverno"),
        str(Path.home() / ".cache" / "stellaops" / "tools" / "kyverno-v1.19.0" / "bin" / "kyverno"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _netns_ok() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False, timeout=10).returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(kyverno_binary() is None, reason="kyverno CLI not built (optional; see the module docstring)"),
    pytest.mark.skipif(not _netns_ok(), reason="needs `unshare -n` to keep Kyverno on loopback"),
]


def test_kyverno_verify_images_accepts_stella_attestations(tmp_path: Path) -> None:
    """Signed and clean: pass; no attestation: fail; critical finding: fail (policy conditions)."""
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -m tests.integration.test_rego_kyverno "$1" "$2"', sys.executable, str(tmp_path), kyverno_binary() or ""],
        capture_output=True, check=False, text=True, timeout=900, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["signed"]["rc"] == 0 and "fail: 0, warn: 0, error: 0" in results["signed"]["out"], results["signed"]
    assert results["unsigned"]["rc"] != 0 and "no matching attestations" in results["unsigned"]["out"], results["unsigned"]
    # Signed by the right key, but the policy's condition on the predicate (no critical) fails.
    assert results["critical"]["rc"] != 0 and "attestation checks failed" in results["critical"]["out"], results["critical"]


def _scan(findings: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "scanner": {"name": "stellaops-scanner", "version": "1.0"},
        "scanId": "scan-kyverno",
        "scannedAt": "2026-11-25T10:00:00Z",
        "findings": [{"id": i, "severity": s, "package": {"name": "openssl", "version": "3.0.1"}} for i, s in findings],
        "summary": {s: sum(1 for _, sev in findings if sev == s) for s in ("critical", "high", "medium", "low", "unknown")},
    }


def _inside(workdir: Path, kyverno: str) -> dict[str, Any]:
    """Runs in the network namespace: registry, attestations, kyverno apply per image."""
    from tests.fixtures.images import push_test_image
    from tests.fixtures.registries import _stop, start_ocireg

    stella = str(Path(sys.executable).parent / "stella")
    env = {**os.environ, "COSIGN_PASSWORD": "pw", "HOME": str(workdir)}

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), capture_output=True, check=False, text=True, timeout=300, env=env, cwd=workdir)

    host, registry, tmp = start_ocireg(True)
    try:
        assert run(stella, "key", "generate", "--output-key-prefix", str(workdir / "release")).returncode == 0
        images = {name: f"{host}/kyverno/{name}:v1" for name in ("signed", "unsigned", "critical")}
        for name in images:
            push_test_image(host, f"kyverno/{name}", "v1")
        for name, findings in (("signed", []), ("critical", [("CVE-2026-0001", "critical")])):
            (workdir / f"{name}.json").write_text(json.dumps(_scan(findings)))
            signed = run(stella, "attest", "sign", "--predicate", str(workdir / f"{name}.json"), "--type", SCAN, "--image", images[name], "--key", str(workdir / "release.key"))
            assert signed.returncode == 0, signed.stderr
            (workdir / f"{name}.dsse.json").write_text(signed.stdout)
            attached = run(stella, "attest", "attach", "--image", images[name], "--attestation", str(workdir / f"{name}.dsse.json"))
            assert attached.returncode == 0, attached.stderr
        policy = yaml.safe_load(POLICY.read_text())
        rule = policy["spec"]["rules"][0]["verifyImages"][0]
        rule["imageReferences"] = [f"{host}/*"]
        rule["attestations"][0]["attestors"][0]["entries"][0]["keys"]["publicKeys"] = (workdir / "release.pub").read_text()
        (workdir / "policy.yaml").write_text(yaml.safe_dump(policy))
        results: dict[str, Any] = {}
        for name, image in images.items():
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": {"containers": [{"name": "app", "image": image}]}}
            (workdir / f"pod-{name}.yaml").write_text(yaml.safe_dump(pod))
            out = run(kyverno, "apply", str(workdir / "policy.yaml"), "--resource", str(workdir / f"pod-{name}.yaml"))
            results[name] = {"rc": out.returncode, "out": out.stdout[-2000:], "err": out.stderr[-2000:]}
        return results
    finally:
        _stop(registry)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(_inside(Path(sys.argv[1]), sys.argv[2])))
