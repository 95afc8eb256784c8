"""The loopback stack itself: every listener on loopback, the webhooks as the shipped values say."""

from __future__ import annotations

import ipaddress
import json

import pytest

from tests.fixtures.kube import GATEKEEPER_NS, KUBE_VERSION, KubeStack, gatekeeper_values, listening_addresses
from tests.kube.conftest import Installed


@pytest.mark.parametrize("name", ["etcd", "kube-apiserver", "gatekeeper"])
def test_listens_on_loopback_only(kube_stack: KubeStack, name: str) -> None:
    """Gatekeeper's metrics exporter would bind :8888 on every interface by default (the fixture
    points it at OTLP on loopback); etcd and the API server are told 127.0.0.1."""
    ports = listening_addresses(kube_stack.pid(name))
    assert ports, f"found no listening socket of {name}: the check would be vacuous"
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in ports), ports
    if name == "gatekeeper":
        assert ("127.0.0.1", kube_stack.webhook_port) in ports
        assert 8888 not in {port for _, port in ports}, ports


def test_provider_listens_on_loopback_only(installed: Installed) -> None:
    assert installed.provider.proc is not None
    ports = listening_addresses(installed.provider.proc.pid)
    assert ports == {("127.0.0.1", installed.provider.port)}, ports


def test_webhooks_registered_with_the_shipped_values(kube_stack: KubeStack) -> None:
    """The webhook configuration in the API server carries what `helm install -f
    deploy/gatekeeper/provider/gatekeeper-values.yaml` would: timeout, failure policy, URL on loopback."""
    values = gatekeeper_values()
    vwc = kube_stack.get_json("validatingwebhookconfiguration", values["validatingWebhookName"])
    hook = next(w for w in vwc["webhooks"] if w["name"] == "validation.gatekeeper.sh")
    assert hook["timeoutSeconds"] == values["validatingWebhookTimeoutSeconds"] == 3
    assert hook["failurePolicy"] == values["validatingWebhookFailurePolicy"]
    assert hook["clientConfig"]["url"] == f"https://127.0.0.1:{kube_stack.webhook_port}/v1/admit"
    assert "pods/ephemeralcontainers" in hook["rules"][0]["resources"]
    ns = kube_stack.get_json("namespace", GATEKEEPER_NS)
    assert ns["metadata"]["labels"]["admission.gatekeeper.sh/ignore"] == "no-self-managing"


def test_validating_webhook_fails_closed_with_the_shipped_values() -> None:
    """A Gatekeeper that does not answer in time must not admit: failurePolicy Fail (the chart's
    default is Ignore: the fail-open of the review)."""
    assert gatekeeper_values()["validatingWebhookFailurePolicy"] == "Fail"


def test_api_server_and_kubectl_are_the_pinned_version(kube_stack: KubeStack) -> None:
    doc = json.loads(kube_stack.kubectl("version", "-o", "json").stdout)
    assert doc["serverVersion"]["gitVersion"] == KUBE_VERSION, doc
    assert doc["clientVersion"]["gitVersion"] == KUBE_VERSION, doc
