"""Fail closed through Gatekeeper's engine: every way the provider can fail denies, readably.

Faults a healthy provider never produces (a ``systemError``, a key missing from ``items``, a
per-key ``error``, an answer past ``spec.timeout``, a malformed body) come from a loopback HTTPS
stand-in (:class:`tests.fixtures.gatekeeper.FaultProvider`), which speaks TLS 1.3 and requires
Gatekeeper's client certificate like the real provider. The provider being down and a client
certificate from another CA use the real provider (``stella serve``). Each fault case has a
healthy control through the same stand-in, so a denial is caused by the fault, not by the setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tests.fixtures.gatekeeper import (
    TESTDATA,
    FaultProvider,
    HarnessRun,
    pod,
    provider_response,
    provider_yaml,
    render_template,
)

POLICY = TESTDATA / "k8sstellaopsattested"
PREDICATE = "https://cosign.sigstore.dev/attestation/v1"
IMAGE = "registry.example.com/app:v1.0.0"  # never contacted: the stand-in answers without a registry
OTHER = "registry.example.com/other:v2"


def _template() -> str:
    return render_template(
        "K8sStellaopsAttested", (POLICY / "src.rego").read_text(),
        parameters=yaml.safe_load((POLICY / "parameters.yaml").read_text()),
    )


def _healthy_verdict(key: str) -> dict[str, Any]:
    """A verdict in the DESIGN.md §3 contract for an image with one verified key-signed attestation."""
    return {
        "schemaVersion": 1,
        "image": key,
        "digest": "sha256:" + "ab" * 32,
        "attestations": [{
            "predicateType": PREDICATE,
            "verified": True,
            "signers": [{"kind": "key", "authority": "release-key", "keyId": "sha256:" + "cd" * 32}],
            "tlog": {"verified": False},
            "source": "bundle",
            "errors": [],
        }],
        "errors": [],
    }


def _healthy(keys: list[str]) -> tuple[int, dict[str, Any]]:
    return 200, provider_response([{"key": k, "value": _healthy_verdict(k), "error": ""} for k in keys])


def _harness(harness_factory: Any, gk_tls: Any, url: str, *, timeout: int = 2, ttl: str = "0",
             client: Any = None) -> HarnessRun:
    client = client or gk_tls
    run: HarnessRun = harness_factory(
        templates=[_template()],
        constraints=[(POLICY / "constraint.yaml").read_text()],
        providers=[provider_yaml(url, gk_tls.ca_pem, timeout=timeout)],
        client_cert=client.client_cert, client_key=client.client_key, cache_ttl=ttl,
    )
    assert run.setup_error is None, run.setup_error
    return run


def _assert_denied(result: dict[str, Any], *fragments: str) -> str:
    assert result.get("error", "") == "", f"review errored instead of denying: {result}"
    assert result["allowed"] is False, f"admitted: {result}"
    assert result["denials"], result
    message = str(result["message"])
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_success_control_healthy_stand_in_admits(harness_factory: Any, gk_tls: Any,
                                                  fault_provider: Callable[..., FaultProvider]) -> None:
    fp = fault_provider(_healthy)
    run = _harness(harness_factory, gk_tls, fp.url)
    result = run.review(pod("ok", IMAGE, OTHER))
    assert result["allowed"] is True, result
    assert result["violations"] == []
    # Gatekeeper sent exactly the ProviderRequest of DESIGN.md §2, one call for both keys.
    assert fp.requests == [{"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest",
                            "request": {"keys": sorted([IMAGE, OTHER])}}]


def test_fail_system_error_denies(harness_factory: Any, gk_tls: Any, fault_provider: Callable[..., FaultProvider]) -> None:
    fp = fault_provider(lambda keys: (200, provider_response([], f"REGISTRY_UNREACHABLE: {keys[0]}: connection refused")))
    run = _harness(harness_factory, gk_tls, fp.url, ttl="3m")
    message = _assert_denied(run.review(pod("p", IMAGE)), f"could not verify image <{IMAGE}> now", "REGISTRY_UNREACHABLE")
    assert "[must-be-attested]" in message
    # systemError is never cached: the next admission asks again.
    run.review(pod("p", IMAGE))
    assert len(fp.requests) == 2


def test_fail_key_missing_from_items_denies(harness_factory: Any, gk_tls: Any,
                                           fault_provider: Callable[..., FaultProvider]) -> None:
    fp = fault_provider(lambda keys: _healthy([k for k in keys if k != OTHER]))
    run = _harness(harness_factory, gk_tls, fp.url)
    result = run.review(pod("p", IMAGE, OTHER))
    _assert_denied(result, f"returned no verdict for image <{OTHER}>")
    assert len(result["denials"]) == 1, "the image that was answered must not be denied"


def test_fail_per_key_error_denies(harness_factory: Any, gk_tls: Any, fault_provider: Callable[..., FaultProvider]) -> None:
    def answer(keys: list[str]) -> tuple[int, dict[str, Any]]:
        return 200, provider_response([
            {"key": k, "error": "INVALID_REFERENCE: not a valid image reference"} if k == OTHER
            else {"key": k, "value": _healthy_verdict(k), "error": ""}
            for k in keys
        ])

    run = _harness(harness_factory, gk_tls, fault_provider(answer).url)
    result = run.review(pod("p", IMAGE, OTHER))
    _assert_denied(result, f"refused image <{OTHER}>", "INVALID_REFERENCE")
    assert len(result["denials"]) == 1


def test_fail_answer_after_spec_timeout_denies(harness_factory: Any, gk_tls: Any,
                                              fault_provider: Callable[..., FaultProvider]) -> None:
    fp = fault_provider(_healthy, delay=2.5)
    run = _harness(harness_factory, gk_tls, fp.url, timeout=1)
    result = run.review(pod("p", IMAGE))
    _assert_denied(result, f"could not verify image <{IMAGE}> now", "deadline exceeded")
    # Gatekeeper gave up after spec.timeout (1 s), well before the stand-in answered.
    assert result["elapsedMs"] < 2400, result


@pytest.mark.parametrize(
    ("name", "answer", "fragment"),
    [
        ("not-json", lambda keys: (200, b"<html>oops</html>"), "failed to unmarshal external data response"),
        ("http-500-empty-items", lambda keys: (500, provider_response([])), "returned no verdict"),
        ("value-not-a-verdict", lambda keys: (200, provider_response([{"key": k, "value": "yes"} for k in keys])),
         "malformed verdict"),
        ("value-null", lambda keys: (200, provider_response([{"key": k, "value": None} for k in keys])),
         "malformed verdict"),
        ("duplicate-verdicts", lambda keys: (200, provider_response(
            [{"key": k, "value": _healthy_verdict(k)} for k in keys]
            + [{"key": k, "value": {**_healthy_verdict(k), "attestations": []}} for k in keys])), "different verdicts"),
        ("future-schema", lambda keys: (200, provider_response(
            [{"key": k, "value": {**_healthy_verdict(k), "schemaVersion": 2}} for k in keys])), "schemaVersion 2"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "",
)
def test_fail_malformed_answer_denies(harness_factory: Any, gk_tls: Any, fault_provider: Callable[..., FaultProvider],
                                      name: str, answer: Callable[[list[str]], tuple[int, Any]], fragment: str) -> None:
    run = _harness(harness_factory, gk_tls, fault_provider(answer).url)
    _assert_denied(run.review(pod("p", IMAGE)), IMAGE, fragment)


def test_fail_provider_down_denies(harness_factory: Any, gk_stack: Any) -> None:
    """The real provider stopped (here: nothing listens on its port any more)."""
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = _harness(harness_factory, gk_stack.tls, f"https://127.0.0.1:{port}/gatekeeper/v1/verify")
    _assert_denied(run.review(pod("p", IMAGE)), f"could not verify image <{IMAGE}> now", "connection refused")


def test_fail_real_provider_stopped_denies(harness_factory: Any, provider_factory: Any, gk_tls: Any,
                                          gk_cosign_key: Any, tmp_path: Path, ocireg: str) -> None:
    from tests.fixtures.gatekeeper import provider_config
    from tests.fixtures.images import push_test_image

    provider = provider_factory(provider_config(gk_cosign_key.public, tmp_path), tls=gk_tls)
    run = _harness(harness_factory, gk_tls, f"{provider.url}/gatekeeper/v1/verify")
    push_test_image(ocireg, "gk/stopped", "v1")
    image = f"{ocireg}/gk/stopped:v1"
    first = run.review(pod("p", image))
    _assert_denied(first, f"image <{image}> is not admitted", "no attestation")  # provider answered
    provider.stop()
    second = run.review(pod("p", image))
    _assert_denied(second, f"could not verify image <{image}> now", "failed to send external data request")


def test_fail_client_certificate_from_another_ca_denies(harness_factory: Any, gk_stack: Any, gk_foreign_tls: Any) -> None:
    """The real provider requires a client certificate from Gatekeeper's CA; another CA's is refused."""
    image, digest = gk_stack.push("gk/foreign")
    gk_stack.attest(image, digest, {"purpose": "gatekeeper harness"}, PREDICATE)
    run = _harness(harness_factory, gk_stack.tls, gk_stack.verify_url, client=gk_foreign_tls)
    message = _assert_denied(run.review(pod("p", image)), f"could not verify image <{image}> now",
                             "failed to send external data request")
    assert "tls" in message.lower(), message
    # Control: the same engine, image and provider with Gatekeeper's own certificate admits.
    ok = _harness(harness_factory, gk_stack.tls, gk_stack.verify_url)
    result = ok.review(pod("p", image))
    assert result["allowed"] is True, result


def test_fail_no_client_certificate_denies(harness_factory: Any, gk_stack: Any) -> None:
    """Without a client certificate (a Gatekeeper whose cert is not mounted) the real provider refuses the call."""
    run: HarnessRun = harness_factory(
        templates=[_template()], constraints=[(POLICY / "constraint.yaml").read_text()],
        providers=[provider_yaml(gk_stack.verify_url, gk_stack.tls.ca_pem, timeout=2)],
    )
    assert run.setup_error is None, run.setup_error
    image = f"{gk_stack.registry}/gk/no-client-cert:v1"
    _assert_denied(run.review(pod("p", image)), f"could not verify image <{image}> now", "failed to send external data request")


# --- stacked templates behind a stalled registry (issue 16 item 5) ------------------------------
ROOT = Path(__file__).resolve().parents[2]
# the admission webhook's timeout in the shipped values: a review past it is the API server's
WEBHOOK_TIMEOUT_MS = 1000 * int(
    yaml.safe_load((ROOT / "deploy/gatekeeper/provider/gatekeeper-values.yaml").read_text())["validatingWebhookTimeoutSeconds"]
)
# the provider's transient memory; the test was run with 0.001 (memory off: gone before the
# next template's call; config.py does not accept 0 yet) to see it fail: 9.1 s, six deadlines
TRANSIENT_MEMORY_SECONDS = 5.0


def _shipped_policies() -> list[tuple[Path, Path]]:
    """(deploy/gatekeeper/<policy>/template.yaml, its first sample constraint) for every policy."""
    out = []
    for suite in sorted((ROOT / "rego/policies").glob("*/suite.yaml")):
        first = yaml.safe_load(suite.read_text())["tests"][0]
        out.append((ROOT / "deploy/gatekeeper" / suite.parent.name / "template.yaml", suite.parent / first["constraint"]))
    return out


def test_fail_six_templates_behind_a_stalled_registry_cost_one_deadline(
    harness_factory: Any, provider_factory: Any, gk_tls: Any, gk_cosign_key: Any, tmp_path: Path,
    ocireg: str, fault_proxy_factory: Any,
) -> None:
    """Every shipped template installed, each with its sample constraint; the image's registry
    accepts connections and never answers. Gatekeeper calls the provider once per template and
    never caches a systemError: six deadlines (9 s) used to outlive the webhook's 3 s, which the
    chart's failurePolicy Ignore turned into an admission. With the provider's transient memory
    the first call waits out the deadline and the five others are answered at once: the review
    denies, for every constraint, well within the webhook timeout. (The elapsed time is the
    behaviour under test here: one deadline per admission, not one per template; the bound is
    the webhook's own timeout, twice the single deadline.)"""
    from tests.fixtures.gatekeeper import provider_config
    from tests.fixtures.images import push_test_image

    policies = _shipped_policies()
    assert len(policies) == 6, policies
    config = yaml.safe_load(provider_config(gk_cosign_key.public, tmp_path))
    config["server"] = {
        "deadlineSeconds": 1.5, "transientMemorySeconds": TRANSIENT_MEMORY_SECONDS,
        "tls": {"cert": str(gk_tls.server_cert), "key": str(gk_tls.server_key), "clientCA": str(gk_tls.ca_cert)},
    }
    provider = provider_factory(yaml.safe_dump(config), tls=gk_tls)
    proxy = fault_proxy_factory(ocireg)
    push_test_image(ocireg, "gk/stalled", "v1")
    image = f"{proxy.address}/gk/stalled:v1"
    run: HarnessRun = harness_factory(
        templates=[t for t, _ in policies], constraints=[c for _, c in policies],
        providers=[provider_yaml(f"{provider.url}/gatekeeper/v1/verify", gk_tls.ca_pem, timeout=2)],
        client_cert=gk_tls.client_cert, client_key=gk_tls.client_key, cache_ttl="3m",  # as shipped
    )
    assert run.setup_error is None, run.setup_error
    assert run.loaded is not None and len(run.loaded["templates"]) == 6 and len(run.loaded["constraints"]) == 6, run.loaded

    proxy.set("stall")
    result = run.review(pod("stalled", image), timeout=60)
    assert sum(proxy.requests.values()) > 0, "the provider never asked the registry: the check would be vacuous"
    _assert_denied(result, f"could not verify image <{image}> now", "DEADLINE_EXCEEDED")
    constraints = {yaml.safe_load(c.read_text())["metadata"]["name"] for _, c in policies}
    denied_by = {d.split("]", 1)[0].lstrip("[") for d in result["denials"]}
    assert denied_by == constraints, f"not every template denied: {sorted(denied_by)} of {sorted(constraints)}"
    assert result["elapsedMs"] < WEBHOOK_TIMEOUT_MS, (
        f"six templates took {result['elapsedMs']} ms behind a stalled registry, past the webhook's"
        f" {WEBHOOK_TIMEOUT_MS} ms: each paid the provider's deadline"
    )
