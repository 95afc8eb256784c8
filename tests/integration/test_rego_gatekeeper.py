"""The generated ConstraintTemplates in Gatekeeper's own policy engine, against the real provider.

gator cannot call external_data, so `rego/tools/gatekeeper-eval` wires Gatekeeper's pieces as its
main.go does (frameworks' Rego driver and Gatekeeper's admission target at the versions
Gatekeeper v3.23.0 pins, external data with a Provider resource, the response cache, the
client certificate for mTLS, http.send disabled, no referential data) and reviews objects.
The provider is `stella serve` with TLS 1.3 and client-certificate authentication, in front of a
real registry holding attestations made by `stella` (key, offline) and by the offline test
Sigstore (keyless, logged).

This proves that the templates compile where it matters (AddTemplate would refuse a rego.v1
import, a package outside data.lib, a data reference) and decide on the provider's real answers.
The program is built on first use into ~/.cache/stellaops/tools (Go module proxy; a few minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, TLSFiles, free_port, make_tls, start_provider
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "rego" / "tools" / "gatekeeper-eval"
TEMPLATES = ROOT / "deploy" / "gatekeeper"
STELLA = str(Path(sys.executable).parent / "stella")
SCAN = "stellaops.io/predicates/scan-result@v1"

pytestmark = pytest.mark.slow


def gatekeeper_eval() -> str:
    """The gatekeeper-eval binary for the current sources, built if needed."""
    digest = hashlib.sha256(b"".join((SRC / n).read_bytes() for n in ("main.go", "go.mod", "go.sum"))).hexdigest()[:12]
    out = Path(os.environ.get("STELLAOPS_TOOLS_CACHE", Path.home() / ".cache" / "stellaops" / "tools")) / f"gatekeeper-eval-{digest}" / "gatekeeper-eval"
    if not out.exists():
        env = {**os.environ, "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
        proc = subprocess.run(["go", "build", "-o", str(out), "."], cwd=SRC, capture_output=True, check=False, text=True, timeout=1800, env=env)
        assert proc.returncode == 0, f"building gatekeeper-eval failed:\n{proc.stderr}"
    return str(out)


def scan_predicate(findings: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "scanner": {"name": "stellaops-scanner", "version": "1.0"},
        "scanId": "scan-gatekeeper",
        "scannedAt": "2026-11-25T10:00:00Z",
        "findings": [{"id": i, "severity": s, "package": {"name": "openssl", "version": "3.0.1"}} for i, s in findings],
        "summary": {s: sum(1 for _, sev in findings if sev == s) for s in ("critical", "high", "medium", "low", "unknown")},
    }


def _stella(*args: str) -> str:
    proc = subprocess.run([STELLA, *args], capture_output=True, check=False, text=True, timeout=120, env={**os.environ, "COSIGN_PASSWORD": "pw"})
    assert proc.returncode == 0, f"stella {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def binary() -> str:
    return gatekeeper_eval()


@pytest.fixture(scope="module")
def world(ocireg: str, test_sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from stellaops import dsse
    from stellaops.attach import attach
    from stellaops.reference import parse_reference

    d = tmp_path_factory.mktemp("rego-gatekeeper")
    images = {name: f"{ocireg}/gatekeeper/{name}:v1" for name in ("logged", "offline", "critical", "unsigned")}
    digests = {name: push_test_image(ocireg, f"gatekeeper/{name}", "v1") for name in images}
    statement = dsse.make_statement(f"{ocireg}/gatekeeper/logged", digests["logged"], SCAN, scan_predicate([]))
    with loopback_client() as client:
        attach(client, parse_reference(images["logged"]), test_sigstore.attest(statement).bundle_json(), formats=("bundle", "legacy"))
    _stella("key", "generate", "--output-key-prefix", str(d / "release"))
    for name, findings in (("offline", []), ("critical", [("CVE-2026-0001", "critical")])):
        (d / f"{name}.json").write_text(json.dumps(scan_predicate(findings)))
        envelope = _stella("attest", "sign", "--predicate", str(d / f"{name}.json"), "--type", SCAN, "--image", images[name], "--key", str(d / "release.key"))
        (d / f"{name}.dsse.json").write_text(envelope)
        _stella("attest", "attach", "--image", images[name], "--attestation", str(d / f"{name}.dsse.json"))
    root = d / "trusted_root.json"
    root.write_bytes(test_sigstore.trusted_root_json())
    tls = make_tls(d / "tls")
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
    provider = start_provider(d / "provider", config, tls=tls)
    yield {"dir": d, "images": images, "provider": provider, "tls": tls}
    provider.stop()


def pod(name: str, *images: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}}


def constraint(kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": kind, "metadata": {"name": "test"},
            "spec": {"match": {"kinds": [{"apiGroups": ["", "apps"], "kinds": ["Pod", "Deployment"]}]}, "parameters": parameters}}


def review(binary: str, world: dict[str, Any], tmp: Path, policy: str, cons: dict[str, Any], objects: dict[str, dict[str, Any]],
           *, url: str | None = None, repeat: int = 1, client_cert: bool = True) -> dict[str, list[str]]:
    tls: TLSFiles = world["tls"]
    provider: ProviderProcess = world["provider"]
    (tmp / "constraint.yaml").write_text(yaml.safe_dump(cons))
    paths = []
    for name, obj in objects.items():
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(obj))
        paths.append(str(tmp / f"{name}.yaml"))
    cmd = [binary, "-template", str(TEMPLATES / policy / "template.yaml"), "-constraint", str(tmp / "constraint.yaml"),
           "-provider-url", url or f"{provider.url}/gatekeeper/v1/verify", "-ca-file", str(tls.ca_cert), "-timeout", "5", "-repeat", str(repeat)]
    if client_cert:
        cmd += ["-client-cert", str(tls.client_cert), "-client-key", str(tls.client_key)]
    proc = subprocess.run([*cmd, *paths], capture_output=True, check=False, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    return {Path(p).stem: [r["msg"] for r in out[p]] for p in paths}


@pytest.mark.parametrize("policy", sorted(p.parent.name for p in TEMPLATES.glob("*/template.yaml")))
def test_every_template_compiles_in_gatekeeper_and_runs_its_sample_constraint(binary: str, world: dict[str, Any], tmp_path: Path, policy: str) -> None:
    sample = next((ROOT / "rego" / "policies" / policy / "samples").glob("*/constraint.yaml"))
    cons = yaml.safe_load(sample.read_text())
    got = review(binary, world, tmp_path, policy, cons, {"unsigned": pod("u", world["images"]["unsigned"])})
    assert got["unsigned"], f"{policy} let an image without attestations through"
    assert all(world["images"]["unsigned"] in m for m in got["unsigned"])


def test_require_attestations_decides_on_real_verdicts(binary: str, world: dict[str, Any], tmp_path: Path) -> None:
    imgs = world["images"]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                      "initContainers": [{"name": "init", "image": imgs["unsigned"]}], "containers": [{"name": "app", "image": imgs["logged"]}]}}}}
    got = review(binary, world, tmp_path, "requireattestations", constraint("StellaOpsRequireAttestations", {"predicateTypes": [SCAN]}), {
        "logged": pod("logged", imgs["logged"]),
        "offline": pod("offline", imgs["offline"]),
        "unsigned": pod("unsigned", imgs["unsigned"]),
        "deployment": deployment,
    }, repeat=2)
    assert got["logged"] == []
    assert len(got["offline"]) == 1 and "no verified transparency-log entry" in got["offline"][0]
    assert got["unsigned"] == [f"container <c0> image <{imgs['unsigned']}>: no attestation of type <{SCAN}> is attached (provider: NO_ATTESTATION: "
                               + got["unsigned"][0].split("(provider: NO_ATTESTATION: ", 1)[1]]
    assert len(got["deployment"]) == 1 and got["deployment"][0].startswith(f"initContainer <init> image <{imgs['unsigned']}>")


def test_offline_signatures_pass_with_require_tlog_false_and_thresholds_apply(binary: str, world: dict[str, Any], tmp_path: Path) -> None:
    imgs = world["images"]
    cons = constraint("StellaOpsScanThresholds", {"maxCounts": {"critical": 0}, "requireTlog": False, "signers": {"authorities": ["release-key"]}})
    got = review(binary, world, tmp_path, "scanthresholds", cons, {"offline": pod("o", imgs["offline"]), "critical": pod("c", imgs["critical"])})
    assert got["offline"] == []
    assert len(got["critical"]) == 1 and "finds critical 1 (max 0)" in got["critical"][0]


def test_allowed_signers_keyless_identity_regexp_is_whole_value(binary: str, world: dict[str, Any], tmp_path: Path) -> None:
    imgs = world["images"]
    rule = {"predicateType": SCAN, "identities": [{"issuer": ISSUER, "subjectRegExp": r"https://github\.com/acme/app/.*@refs/heads/main"}]}
    got = review(binary, world, tmp_path, "allowedsigners", constraint("StellaOpsAllowedSigners", {"rules": [rule]}),
                 {"logged": pod("l", imgs["logged"]), "offline": pod("o", imgs["offline"])})
    assert got["logged"] == [] and len(got["offline"]) == 1
    prefix = {"predicateType": SCAN, "identities": [{"issuer": ISSUER, "subjectRegExp": r"https://github\.com/acme/app/"}]}
    got = review(binary, world, tmp_path, "allowedsigners", constraint("StellaOpsAllowedSigners", {"rules": [prefix]}), {"logged": pod("l", imgs["logged"])})
    assert len(got["logged"]) == 1 and "the constraint accepts only" in got["logged"][0]


def test_fails_closed_when_the_provider_is_unreachable(binary: str, world: dict[str, Any], tmp_path: Path) -> None:
    down = f"https://127.0.0.1:{free_port()}/gatekeeper/v1/verify"  # nothing listens there
    got = review(binary, world, tmp_path, "requireattestations", constraint("StellaOpsRequireAttestations", {"predicateTypes": [SCAN]}),
                 {"logged": pod("l", world["images"]["logged"])}, url=down)
    assert len(got["logged"]) == 1
    assert "could not verify image" in got["logged"][0] and "failed to send external data request" in got["logged"][0]


def test_fails_closed_without_the_client_certificate(binary: str, world: dict[str, Any], tmp_path: Path) -> None:
    """The provider requires mTLS: a Gatekeeper presenting no certificate gets nothing, and denies."""
    got = review(binary, world, tmp_path, "requireattestations", constraint("StellaOpsRequireAttestations", {"predicateTypes": [SCAN]}),
                 {"logged": pod("l", world["images"]["logged"])}, client_cert=False)
    assert len(got["logged"]) == 1 and "could not verify image" in got["logged"][0]
