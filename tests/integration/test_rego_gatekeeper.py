"""The generated ConstraintTemplates in Gatekeeper's own engine, against the real provider.

gator cannot call external_data; `gkharness` (tests/gatekeeper/, built by `make tools`) runs
Gatekeeper v3.23.1's validation engine as its main.go wires it (Provider with https URL,
caBundle and timeout, TLS 1.3, the client certificate, the response cache). tests/gatekeeper
covers the samples and the engine; these cases add the library's own decisions on the
provider's real answers: keyless + logged vs key-signed offline attestations, requireTlog,
thresholds, whole-value identity regexps, initContainers in a Deployment, and failing closed
when the provider is unreachable or refuses a Gatekeeper without its client certificate.
The provider is `stella serve` with TLS 1.3 and client-certificate authentication, in front of
a real registry holding attestations made by `stella` (key, offline) and by the offline test
Sigstore (keyless, logged).
"""

from __future__ import annotations

import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.fixtures.gatekeeper import provider_yaml
from tests.fixtures.provider import ProviderProcess, TLSFiles, free_port, make_tls, start_provider
from tests.fixtures.sigstore import ISSUER, TestSigstore
from tests.integration._rego_world import SCAN, seed

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "deploy" / "gatekeeper"
STELLA = str(Path(sys.executable).parent / "stella")

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def world(ocireg: str, test_sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("rego-gatekeeper")
    images, config = seed(ocireg, test_sigstore, d, "gatekeeper")
    tls = make_tls(d / "tls")
    provider = start_provider(d / "provider", config, tls=tls)
    yield {"dir": d, "images": images, "provider": provider, "tls": tls}
    provider.stop()


def pod(name: str, *images: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}}


def constraint(kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": kind, "metadata": {"name": "test"},
            "spec": {"match": {"kinds": [{"apiGroups": ["", "apps"], "kinds": ["Pod", "Deployment"]}]}, "parameters": parameters}}


def review(harness_factory: Callable[..., Any], world: dict[str, Any], policy: str, cons: dict[str, Any], objects: dict[str, dict[str, Any]],
           *, url: str | None = None, repeat: int = 1, client_cert: bool = True) -> dict[str, list[str]]:
    """Violation messages per object, each object reviewed `repeat` times (later rounds hit
    Gatekeeper's response cache and must answer the same)."""
    tls: TLSFiles = world["tls"]
    provider: ProviderProcess = world["provider"]
    run = harness_factory(
        templates=[TEMPLATES / policy / "template.yaml"],
        constraints=[yaml.safe_dump(cons)],
        providers=[provider_yaml(url or f"{provider.url}/gatekeeper/v1/verify", tls.ca_pem, timeout=5)],
        client_cert=tls.client_cert if client_cert else None,
        client_key=tls.client_key if client_cert else None,
        cache_ttl="3m",
    )
    assert run.setup_error is None, run.setup_error
    out: dict[str, list[str]] = {}
    for name, obj in objects.items():
        rounds = []
        for _ in range(repeat):
            result = run.review(obj)
            assert result.get("error", "") == "", result
            rounds.append([v["message"] for v in result["violations"]])
        assert all(r == rounds[0] for r in rounds), rounds
        out[name] = rounds[0]
    return out


@pytest.mark.parametrize("policy", sorted(p.parent.name for p in TEMPLATES.glob("*/template.yaml")))
def test_every_template_denies_an_unattested_image_in_gatekeeper(harness_factory: Any, world: dict[str, Any], policy: str) -> None:
    sample = next((ROOT / "rego" / "policies" / policy / "samples").glob("*/constraint.yaml"))
    cons = yaml.safe_load(sample.read_text())
    got = review(harness_factory, world, policy, cons, {"unsigned": pod("u", world["images"]["unsigned"])})
    assert got["unsigned"], f"{policy} let an image without attestations through"
    assert all(world["images"]["unsigned"] in m for m in got["unsigned"])


def test_require_attestations_decides_on_real_verdicts(harness_factory: Any, world: dict[str, Any]) -> None:
    imgs = world["images"]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                      "initContainers": [{"name": "init", "image": imgs["unsigned"]}], "containers": [{"name": "app", "image": imgs["logged"]}]}}}}
    got = review(harness_factory, world, "requireattestations", constraint("StellaOpsRequireAttestations", {"predicateTypes": [SCAN]}), {
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


def test_offline_signatures_pass_with_require_tlog_false_and_thresholds_apply(harness_factory: Any, world: dict[str, Any]) -> None:
    imgs = world["images"]
    cons = constraint("StellaOpsScanThresholds", {"maxCounts": {"critical": 0}, "requireTlog": False, "signers": {"authorities": ["release-key"]}})
    got = review(harness_factory, world, "scanthresholds", cons, {"offline": pod("o", imgs["offline"]), "critical": pod("c", imgs["critical"])})
    assert got["offline"] == []
    assert len(got["critical"]) == 1 and "finds critical 1 (max 0)" in got["critical"][0]


def test_allowed_signers_keyless_identity_regexp_is_whole_value(harness_factory: Any, world: dict[str, Any]) -> None:
    imgs = world["images"]
    rule = {"predicateType": SCAN, "identities": [{"issuer": ISSUER, "subjectRegExp": r"https://github\.com/acme/app/.*@refs/heads/main"}]}
    got = review(harness_factory, world, "allowedsigners", constraint("StellaOpsAllowedSigners", {"rules": [rule]}),
                 {"logged": pod("l", imgs["logged"]), "offline": pod("o", imgs["offline"])})
    assert got["logged"] == [] and len(got["offline"]) == 1
    prefix = {"predicateType": SCAN, "identities": [{"issuer": ISSUER, "subjectRegExp": r"https://github\.com/acme/app/"}]}
    got = review(harness_factory, world, "allowedsigners", constraint("StellaOpsAllowedSigners", {"rules": [prefix]}), {"logged": pod("l", imgs["logged"])})
    assert len(got["logged"]) == 1 and "the constraint accepts only" in got["logged"][0]


def test_fails_closed_when_the_provider_is_unreachable(harness_factory: Any, world: dict[str, Any]) -> None:
    down = f"https://127.0.0.1:{free_port()}/gatekeeper/v1/verify"  # nothing listens there
    got = review(harness_factory, world, "requireattestations", constraint("StellaOpsRequireAttestations", {"predicateTypes": [SCAN]}),
                 {"logged": pod("l", world["images"]["logged"])}, url=down)
    assert len(got["logged"]) == 1
    assert "could not verify image" in got["logged"][0] and "failed to send external data request" in got["logged"][0]


def test_fails_closed_without_the_client_certificate(harness_factory: Any, world: dict[str, Any]) -> None:
    """The provider requires mTLS: a Gatekeeper presenting no certificate gets nothing, and denies."""
    got = review(harness_factory, world, "requireattestations", constraint("StellaOpsRequireAttestations", {"predicateTypes": [SCAN]}),
                 {"logged": pod("l", world["images"]["logged"])}, client_cert=False)
    assert len(got["logged"]) == 1 and "could not verify image" in got["logged"][0]


def test_image_volumes_are_checked_in_gatekeeper(harness_factory: Any, world: dict[str, Any]) -> None:
    """An unattested image mounted as an ImageVolume (volumes[].image.reference) beside an attested
    container is denied, in a Pod and in a Deployment's pod template (issue 16 item 3)."""
    imgs = world["images"]
    volume = {"name": "models", "image": {"reference": imgs["unsigned"], "pullPolicy": "IfNotPresent"}}
    bare = pod("p", imgs["logged"])
    bare["spec"]["volumes"] = [volume]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                      "containers": [{"name": "app", "image": imgs["logged"]}], "volumes": [volume]}}}}
    got = review(harness_factory, world, "requireattestations", constraint("StellaOpsRequireAttestations", {"predicateTypes": [SCAN]}),
                 {"pod": bare, "deployment": deployment})
    for name in ("pod", "deployment"):
        assert len(got[name]) == 1, got[name]
        assert got[name][0].startswith(f"imageVolume <models> image <{imgs['unsigned']}>: no attestation of type <{SCAN}>"), got[name]
