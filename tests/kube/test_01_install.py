"""docs/install.md, as a user runs it, against the real API server and Gatekeeper: the site
applied with `kubectl apply -k`, the generated templates and a sample constraint applied with
`kubectl`, and Pods created with `kubectl` (steps 4 and 6)."""

from __future__ import annotations

import base64

import yaml

from tests.kube.conftest import DEPLOY, POLICIES, SCAN, Installed, pod


def test_signed_pod_admitted_unsigned_pod_denied_with_the_policys_message(installed: Installed) -> None:
    """Step 6: an unsigned image is refused with a message naming the container, the image and
    the missing predicate type; the attested one is created."""
    w = installed
    ns = w.namespace("install")
    _, name = w.sample_constraint("requireattestations", ns)
    w.expect_admitted(pod("signed", w.images["sample:v1.0.0"]), ns)
    unsigned = w.images["sample:unsigned"]
    error = w.expect_denied(pod("unsigned", unsigned), ns, f"[{name}] container <app> image <{unsigned}>",
                            f"no attestation of type <{SCAN}> is attached")
    assert error.startswith("Error from server (Forbidden)"), error
    pods = w.kube.get_json("pods", "-n", ns)["items"]
    assert [p["metadata"]["name"] for p in pods] == ["signed"]


def test_the_site_is_in_the_cluster_as_applied(installed: Installed) -> None:
    """`kubectl apply -k` of the site (through an overlay that patches only the Provider's URL)
    created the provider's objects and a Provider with the site's caBundle and shipped timeout."""
    w = installed
    provider = w.kube.get_json("providers.externaldata.gatekeeper.sh", "stellaops")
    shipped = yaml.safe_load((DEPLOY / "gatekeeper" / "provider" / "provider.yaml").read_text())
    assert provider["spec"]["url"] == w.provider.url
    assert provider["spec"]["timeout"] == shipped["spec"]["timeout"] == 2
    assert base64.b64decode(provider["spec"]["caBundle"]) == (w.site / "certs" / "ca.crt").read_bytes()
    ns = w.kube.get_json("namespace", "stellaops-system")
    assert "admission.gatekeeper.sh/ignore" in ns["metadata"]["labels"]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in w.kube.get_json("deployment,service,networkpolicy", "-n",
                                                                          "stellaops-system")["items"]}
    assert {("Deployment", "stellaops"), ("Service", "stellaops"), ("NetworkPolicy", "stellaops")} <= kinds


def test_every_generated_template_is_created_by_gatekeeper(installed: Installed) -> None:
    assert len(POLICIES) == 6, POLICIES
    for policy in POLICIES:
        name = yaml.safe_load((DEPLOY / "gatekeeper" / policy / "template.yaml").read_text())["metadata"]["name"]
        status = installed.kube.get_json("constrainttemplate", name)["status"]
        assert status["created"] is True, status
        assert not any(p.get("errors") for p in status.get("byPod", [])), status
