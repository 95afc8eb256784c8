"""Tag-to-digest pinning through the real mutating and validating webhooks: the provider's
``/gatekeeper/v1/mutate`` and the ``Assign`` mutators of deploy/kubernetes/mutation. The stored Pod
holds ``name@digest`` for a verified image; an unverifiable one is never pinned; a tag moved after
admission does not change what the Pod names."""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import yaml

from tests.fixtures.images import loopback_client, push_test_image
from tests.kube.conftest import OFFLINE, DEPLOY, Installed, pod

MUTATORS = ("stellaops-pin-containers", "stellaops-pin-init-containers", "stellaops-pin-ephemeral-containers",
            "stellaops-pin-image-volumes")


def _post_mutate(w: Installed, keys: list[str]) -> dict[str, object]:
    ctx = ssl.create_default_context(cafile=str(w.provider.ca))
    ctx.load_cert_chain(str(w.provider.client_cert), str(w.provider.client_key))
    body = json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest",
                       "request": {"keys": keys}}).encode()
    req = urllib.request.Request(w.provider.url.replace("/verify", "/mutate"), data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20, context=ctx) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def test_mutate_endpoint_pins_only_verified_references(installed: Installed) -> None:
    w = installed
    signed, unsigned = w.images["cosign-bundle"], w.images["sample:unsigned"]
    by_digest = f"{signed.rsplit(':', 1)[0]}@{w.digests['cosign-bundle']}"
    doc = _post_mutate(w, [signed, unsigned, by_digest])
    items = {i["key"]: i for i in doc["response"]["items"]}  # type: ignore[index]
    assert items[signed] == {"key": signed, "value": by_digest, "error": ""}
    assert items[by_digest]["value"] == by_digest and items[by_digest]["error"] == ""
    assert items[unsigned]["value"] is None and items[unsigned]["error"].startswith("NOT_VERIFIED: "), items[unsigned]
    assert doc["response"]["systemError"] == ""  # type: ignore[index]


@pytest.fixture(scope="module")
def mutation(installed: Installed) -> Iterator[None]:
    """The mutators installed through an overlay that points the mutation Provider at the loopback
    provider with the site's CA; Gatekeeper's mutating webhook at 3 s (see the kustomization)."""
    w = installed
    overlay = w.work / "mutation"
    overlay.mkdir(exist_ok=True)
    ca = base64.b64encode((w.site / "certs" / "ca.crt").read_bytes()).decode()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / "kubernetes" / "mutation", overlay)],
        "patches": [{"target": {"group": "externaldata.gatekeeper.sh", "kind": "Provider", "name": "stellaops-mutate"},
                     "patch": yaml.safe_dump([
                         {"op": "replace", "path": "/spec/url", "value": w.provider.url.replace("/verify", "/mutate")},
                         {"op": "replace", "path": "/spec/caBundle", "value": ca}])}],
    }, sort_keys=False))  # fmt: skip
    w.kube.restart_gatekeeper(mutatingWebhookTimeoutSeconds=3)
    w.kube.kubectl("apply", "-k", str(overlay), timeout=120)
    try:
        for name in MUTATORS:
            w.kube.wait_mutator("assign", name)
        yield
    finally:
        w.kube.kubectl("delete", "-k", str(overlay), "--wait=false", check=False, timeout=120)


def test_stored_pod_holds_the_verified_digest(installed: Installed, mutation: None) -> None:
    w = installed
    ns = w.namespace("pin")
    w.sample_constraint("requireattestations", ns, parameters=OFFLINE)
    tag = f"pin-{uuid.uuid4().hex[:8]}"
    ref = w.push_tag("cosign-bundle", tag)
    pinned = f"{ref.rsplit(':', 1)[0]}@{w.digests['cosign-bundle']}"
    # T-F46: an image volume is pinned too; a volume of another kind gets no image added
    obj = pod("pinned", ref, initContainers=[{"name": "init", "image": ref}],
              volumes=[{"name": "data", "image": {"reference": ref}}, {"name": "scratch", "emptyDir": {}}])
    w.wait_admitted(lambda i: {**obj, "metadata": {"name": f"pinned-{i}"}}, ns, timeout=60)
    stored = next(p for p in w.kube.get_json("pods", "-n", ns)["items"] if p["metadata"]["name"].startswith("pinned-"))
    assert stored["spec"]["containers"][0]["image"] == pinned, stored["spec"]
    assert stored["spec"]["initContainers"][0]["image"] == pinned, stored["spec"]
    volumes = {v["name"]: v for v in stored["spec"]["volumes"]}
    assert volumes["data"]["image"]["reference"] == pinned, stored["spec"]
    assert "image" not in volumes["scratch"], stored["spec"]
    # the tag moves to another image after admission: the Pod still names the verified digest
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    moved = push_test_image(w.registry, repo, tag)
    with loopback_client() as c:
        assert c.get_manifest(w.registry, repo, tag).digest == moved != w.digests["cosign-bundle"]
    again = w.kube.get_json("pod", stored["metadata"]["name"], "-n", ns)
    assert again["spec"]["containers"][0]["image"] == pinned
    assert {v["name"]: v for v in again["spec"]["volumes"]}["data"]["image"]["reference"] == pinned


def test_unverifiable_image_is_never_pinned(installed: Installed, mutation: None) -> None:
    """No constraint in this namespace, so the unsigned Pod is admitted: its image stays as written."""
    w = installed
    ns = w.namespace("nopin")
    unsigned = w.images["sample:unsigned"]
    w.expect_admitted(pod("unsigned", unsigned), ns)
    assert w.kube.get_json("pod", "unsigned", "-n", ns)["spec"]["containers"][0]["image"] == unsigned
