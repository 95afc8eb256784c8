"""Gatekeeper v3.23.1's engine against the real provider, a real registry and real attestations.

``stella serve`` runs with TLS and a required client certificate (Gatekeeper's, made by the
fixtures); images live in ``ocireg`` (OCI 1.1 referrers API) or Debian's ``docker-registry``;
attestations are made by the real ``cosign`` (and ``stella attest sign`` when present). The
harness reviews Pods and Deployments as Gatekeeper's validating webhook does, through the test
policy in tests/gatekeeper/testdata (the shipped policies run in test_samples.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.gatekeeper import (
    TESTDATA,
    CosignKey,
    GatekeeperStack,
    HarnessRun,
    cosign_attest,
    deployment,
    pod,
    provider_config,
    provider_yaml,
    render_template,
    stella_available,
)
from tests.fixtures.procs import stop_process
from tests.fixtures.tools import tool

POLICY = TESTDATA / "k8sstellaopsattested"
CUSTOM = "https://cosign.sigstore.dev/attestation/v1"  # cosign --type custom
SLSA1 = "https://slsa.dev/provenance/v1"  # cosign --type slsaprovenance1
SCAN = "stellaops.io/predicates/scan-result@v1"


def _template() -> str:
    return render_template(
        "K8sStellaopsAttested", (POLICY / "src.rego").read_text(),
        parameters=yaml.safe_load((POLICY / "parameters.yaml").read_text()),
    )


def _constraint(predicate_type: str = CUSTOM, authorities: list[str] | None = None) -> str:
    doc = yaml.safe_load((POLICY / "constraint.yaml").read_text())
    doc["spec"]["parameters"]["predicateType"] = predicate_type
    if authorities is not None:
        doc["spec"]["parameters"]["authorities"] = authorities
    return yaml.safe_dump(doc)


def _harness(harness_factory: Any, stack: GatekeeperStack, *, ttl: str = "0", url: str | None = None,
             constraints: list[str] | None = None) -> HarnessRun:
    run: HarnessRun = harness_factory(
        templates=[_template()],
        constraints=constraints or [_constraint()],
        providers=[provider_yaml(url or stack.verify_url, stack.tls.ca_pem, timeout=2)],
        client_cert=stack.tls.client_cert, client_key=stack.tls.client_key, cache_ttl=ttl,
    )
    assert run.setup_error is None, run.setup_error
    return run


def _denial(result: dict[str, Any]) -> str:
    assert result.get("error", "") == "", result
    assert result["allowed"] is False, f"admitted: {result}"
    return str(result["message"])


def _allowed(result: dict[str, Any]) -> None:
    assert result.get("error", "") == "", result
    assert result["allowed"] is True, f"denied: {result['message']}"
    assert result["violations"] == []


@pytest.fixture(scope="module")
def images(gk_stack: GatekeeperStack) -> dict[str, tuple[str, str]]:
    """Images with the attestations each case needs, made once for this module."""
    s = gk_stack
    out: dict[str, tuple[str, str]] = {}
    out["bundle"] = s.push("gk/bundle")
    s.attest(*out["bundle"], {"purpose": "gatekeeper harness"}, CUSTOM)
    out["legacy"] = s.push("gk/legacy")
    s.attest(*out["legacy"], {"purpose": "gatekeeper harness"}, CUSTOM, legacy=True)
    out["unattested"] = s.push("gk/unattested")
    out["other-type"] = s.push("gk/other-type")
    s.attest(*out["other-type"], {"buildDefinition": {"buildType": "x"}, "runDetails": {"builder": {"id": "y"}}}, SLSA1)
    out["wrong-key"] = s.push("gk/wrong-key")
    return out


@pytest.fixture(scope="module")
def wrong_key(tmp_path_factory: pytest.TempPathFactory) -> CosignKey:
    d = tmp_path_factory.mktemp("gk-wrong-key")
    subprocess.run([tool("cosign"), "generate-key-pair"], cwd=d, check=True, capture_output=True,
                   env={**os.environ, "COSIGN_PASSWORD": "wrong"})
    return CosignKey(private=d / "cosign.key", public=d / "cosign.pub", password="wrong")


def test_success_pod_with_cosign_bundle_attestation_admitted(harness_factory: Any, gk_stack: GatekeeperStack,
                                                            images: dict[str, tuple[str, str]]) -> None:
    run = _harness(harness_factory, gk_stack)
    ref, digest = images["bundle"]
    _allowed(run.review(pod("by-tag", ref)))
    _allowed(run.review(pod("by-digest", f"{ref.rsplit(':', 1)[0]}@{digest}")))


def test_success_cosign_legacy_att_attestation_admitted(harness_factory: Any, gk_stack: GatekeeperStack,
                                                        images: dict[str, tuple[str, str]]) -> None:
    run = _harness(harness_factory, gk_stack)
    _allowed(run.review(pod("legacy", images["legacy"][0])))


def test_success_deployment_with_attested_images_admitted(harness_factory: Any, gk_stack: GatekeeperStack,
                                                          images: dict[str, tuple[str, str]]) -> None:
    run = _harness(harness_factory, gk_stack)
    _allowed(run.review(deployment("web", images["bundle"][0], images["legacy"][0])))


def test_fail_unattested_image_denied_with_reason(harness_factory: Any, gk_stack: GatekeeperStack,
                                                  images: dict[str, tuple[str, str]]) -> None:
    run = _harness(harness_factory, gk_stack)
    ref = images["unattested"][0]
    message = _denial(run.review(pod("p", ref)))
    assert f"image <{ref}> is not admitted: no attestation of type <{CUSTOM}> is attached" in message


def test_fail_deployment_denies_only_the_unattested_container(harness_factory: Any, gk_stack: GatekeeperStack,
                                                              images: dict[str, tuple[str, str]]) -> None:
    run = _harness(harness_factory, gk_stack)
    result = run.review(deployment("web", images["bundle"][0], images["unattested"][0]))
    _denial(result)
    assert len(result["denials"]) == 1
    assert images["unattested"][0] in result["denials"][0]
    assert result["denials"][0].startswith("[must-be-attested] ")


def test_fail_attestation_of_another_predicate_type_denied(harness_factory: Any, gk_stack: GatekeeperStack,
                                                           images: dict[str, tuple[str, str]]) -> None:
    run = _harness(harness_factory, gk_stack)
    message = _denial(run.review(pod("p", images["other-type"][0])))
    assert f"no attestation of type <{CUSTOM}> is attached" in message
    # The same image passes a constraint asking for what it carries (cosign alias accepted).
    ok = _harness(harness_factory, gk_stack, constraints=[_constraint("slsaprovenance1")])
    _allowed(ok.review(pod("p", images["other-type"][0])))


def test_fail_attestation_signed_by_unknown_key_denied(harness_factory: Any, gk_stack: GatekeeperStack,
                                                       images: dict[str, tuple[str, str]], wrong_key: CosignKey) -> None:
    ref, digest = images["wrong-key"]
    gk_stack.attest(ref, digest, {"purpose": "forged"}, CUSTOM, key=wrong_key)
    run = _harness(harness_factory, gk_stack)
    message = _denial(run.review(pod("p", ref)))
    # The provider lists the forged attestation unverified with the type it claims, so the
    # denial names the real cause (SIGNATURE_INVALID) instead of "no attestation".
    assert f"image <{ref}> is not admitted: 1 attestation(s) of type <{CUSTOM}> found, none verified" in message, message
    assert "SIGNATURE_INVALID" in message, message


def test_fail_signer_authority_not_accepted_by_constraint(harness_factory: Any, gk_stack: GatekeeperStack,
                                                          images: dict[str, tuple[str, str]]) -> None:
    run = _harness(harness_factory, gk_stack, constraints=[_constraint(authorities=["ci"])])
    message = _denial(run.review(pod("p", images["bundle"][0])))
    assert "signed by authority <release-key>" in message and "accepts only" in message, message


def test_fail_invalid_reference_refused_per_key(harness_factory: Any, gk_stack: GatekeeperStack) -> None:
    run = _harness(harness_factory, gk_stack)
    ref = f"{gk_stack.registry}/gk/app@sha256:nothex"
    message = _denial(run.review(pod("p", ref)))
    assert f"refused image <{ref}>" in message and "INVALID_REFERENCE" in message, message


@pytest.mark.skipif(not stella_available("attest", "sign"), reason="stella attest sign not in this checkout yet")
def test_success_stella_signed_scan_attached_with_cosign_admitted(harness_factory: Any, gk_stack: GatekeeperStack,
                                                                 tmp_path: Path) -> None:
    """``stella attest sign`` makes the seed's own type (cosign attest cannot); cosign attaches it."""
    ref, digest = gk_stack.push("gk/stella-signed")
    predicate = {
        "scanner": {"name": "stellaops-scanner", "version": "2.4.0"}, "scanId": "scan-1",
        "scannedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "findings": [],
        "summary": {"critical": 0, "high": 0, "medium": 0, "low": 0, "unknown": 0},
    }
    (tmp_path / "scan.json").write_text(json.dumps(predicate))
    stella = str(Path(sys.executable).parent / "stella")
    env = {**os.environ, "COSIGN_PASSWORD": gk_stack.key.password}
    sign = subprocess.run(
        [stella, "attest", "sign", "--predicate", str(tmp_path / "scan.json"), "--type", SCAN,
         "--image", ref, "--digest", digest, "--key", str(gk_stack.key.private),
         "--output-file", str(tmp_path / "scan.dsse.json")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert sign.returncode == 0, sign.stderr
    repo = ref.rsplit(":", 1)[0]
    attach = subprocess.run([tool("cosign"), "attach", "attestation", "--attestation", str(tmp_path / "scan.dsse.json"),
                             f"{repo}@{digest}"], capture_output=True, text=True, env=env, timeout=120)
    assert attach.returncode == 0, attach.stderr
    run = _harness(harness_factory, gk_stack, constraints=[_constraint(SCAN)])
    _allowed(run.review(pod("p", ref)))
    message = _denial(_harness(harness_factory, gk_stack).review(pod("p", ref)))
    assert f"no attestation of type <{CUSTOM}>" in message


# --- Gatekeeper's response cache (DESIGN.md §2 "Failure semantics") ------------------------------
def test_success_definitive_verdicts_served_from_gatekeeper_cache(
    harness_factory: Any, provider_factory: Any, gk_stack: GatekeeperStack, tmp_path: Path,
    images: dict[str, tuple[str, str]],
) -> None:
    """With the cache on, a verdict (admit or deny) outlives the provider; with it off it does not."""
    provider = provider_factory(provider_config(gk_stack.key.public, tmp_path), tls=gk_stack.tls, name="cached")
    url = f"{provider.url}/gatekeeper/v1/verify"
    cached = _harness(harness_factory, gk_stack, ttl="3m", url=url)
    uncached = _harness(harness_factory, gk_stack, ttl="0", url=url)
    good, bad = pod("good", images["bundle"][0]), pod("bad", images["unattested"][0])
    _allowed(cached.review(good))
    first_denial = _denial(cached.review(bad))
    _allowed(uncached.review(good))
    assert _denial(uncached.review(bad)) == first_denial

    provider.stop()
    _allowed(cached.review(good))
    assert _denial(cached.review(bad)) == first_denial, "the cached negative verdict must be served as it was"
    # Control: without the cache the same reviews now fail closed on the transport error.
    for obj in (good, bad):
        assert "failed to send external data request" in _denial(uncached.review(obj))


def _restartable_registry(root: Path, port: int) -> subprocess.Popen[bytes]:
    from tests.fixtures.registries import wait_for_registry

    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "gatekeeper-harness-test"},
    }))
    log = open(root / "registry.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([tool("docker-registry"), "serve", str(config)], stdout=log, stderr=log)
    log.close()
    wait_for_registry(f"127.0.0.1:{port}", proc)
    return proc


def test_success_transient_registry_failure_not_kept_by_gatekeeper_cache(
    harness_factory: Any, provider_factory: Any, gk_stack: GatekeeperStack, tmp_path: Path,
    images: dict[str, tuple[str, str]],
) -> None:
    """Registry down → deny now (systemError, not cached); registry back → the same image admitted.

    Debian's docker-registry keeps its data on disk, so it can be stopped and restarted on the
    same port with the image and its attestation intact (ocireg would lose them).
    """
    from tests.fixtures.images import push_test_image
    from tests.fixtures.registries import free_port

    port = free_port()
    registry = f"127.0.0.1:{port}"
    proc = _restartable_registry(tmp_path / "registry", port)
    try:
        digest = push_test_image(registry, "gk/flaky", "v1")
        cosign_attest(gk_stack.key, f"{registry}/gk/flaky@{digest}", {"purpose": "flaky"}, CUSTOM, tmp_path / "att",
                      legacy=True)  # Distribution 2.8 has no referrers API: the .att tag is what cosign v2/Kyverno read
        provider = provider_factory(provider_config(gk_stack.key.public, tmp_path), tls=gk_stack.tls, name="flaky")
        run = _harness(harness_factory, gk_stack, ttl="3m", url=f"{provider.url}/gatekeeper/v1/verify")
        image = f"{registry}/gk/flaky:v1"

        healthy = images["bundle"][0]  # on the other registry, which stays up

        stop_process(proc)
        result = run.review(pod("p", image, healthy))
        message = _denial(result)
        assert f"could not verify image <{image}> now" in message, message
        assert "nothing was cached, the next admission retries" in message
        assert len(result["denials"]) == 1, "the other image's verdict still came back and admits it"

        proc = _restartable_registry(tmp_path / "registry", port)
        # the provider answers a key that just failed transiently from its transient memory for
        # server.transientMemorySeconds (5 s; docs/operations.md): admitted once that has passed
        memory = 5.0
        until = time.monotonic() + memory + 15
        result = run.review(pod("p", image, healthy))
        while not result.get("allowed") and time.monotonic() < until:
            assert "could not verify image" in str(result.get("message")), result  # still the remembered systemError
            time.sleep(0.5)
            result = run.review(pod("p", image, healthy))
        _allowed(result)
    finally:
        stop_process(proc)
