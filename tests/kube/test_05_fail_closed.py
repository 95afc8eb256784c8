"""Fail closed with the shipped values, through the API server: Gatekeeper's answer comes before
the webhook's timeout (3 s) and denies when the provider is stopped, when it is slower than the
Provider's spec.timeout (2 s), when the registry stalls with all six templates' constraints
installed, and when Gatekeeper's client certificate comes from a CA the provider does not trust."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.kube import CA
from tests.kube.conftest import OFFLINE, POLICIES, Installed, pod

WEBHOOK_FAILED = "failed calling webhook"


@pytest.fixture()
def ns(installed: Installed) -> str:
    ns = installed.namespace("failclosed")
    installed.sample_constraint("requireattestations", ns, parameters=OFFLINE)
    return ns


def fresh(w: Installed, name: str = "cosign-bundle") -> str:
    """A reference Gatekeeper has never cached: a new tag of an attested image."""
    return w.push_tag(name, f"t-{uuid.uuid4().hex[:10]}")


def _denied_by_gatekeeper(w: Installed, ref: str, ns: str) -> str:
    error = w.expect_denied(pod(f"p-{uuid.uuid4().hex[:6]}", ref), ns, f"image <{ref}>")
    assert WEBHOOK_FAILED not in error, error
    return error


@pytest.fixture()
def restore_provider(installed: Installed) -> Iterator[None]:
    yield
    p = installed.provider
    if p.proc is None:
        p.start()
    else:
        p.resume()


def test_provider_stopped_denies(installed: Installed, ns: str, restore_provider: None) -> None:
    w = installed
    w.expect_admitted(pod("before", fresh(w)), ns)  # the image itself is admitted
    w.provider.stop()
    _denied_by_gatekeeper(w, fresh(w), ns)
    w.provider.start()
    w.expect_admitted(pod("after", fresh(w)), ns)


def test_provider_slower_than_spec_timeout_denies(installed: Installed, ns: str, restore_provider: None) -> None:
    """The provider accepts connections (the kernel does) and never answers: Gatekeeper gives up
    after spec.timeout and denies, within the webhook's 3 s."""
    w = installed
    w.provider.pause()
    _denied_by_gatekeeper(w, fresh(w), ns)
    w.provider.resume()
    w.expect_admitted(pod("after", fresh(w)), ns)


def test_registry_stalled_with_all_six_templates_denies_in_time(installed: Installed) -> None:
    """Every shipped policy's sample constraint in one namespace, each asking the provider about
    the image; the registry never answers. The answer must still be Gatekeeper's denial, not the
    API server's webhook timeout (which failurePolicy Ignore would turn into an admission)."""
    w = installed
    ns = w.namespace("stalled")
    assert len(POLICIES) == 6
    for policy in POLICIES:
        w.sample_constraint(policy, ns)
    ref = w.push_tag("via-proxy", f"t-{uuid.uuid4().hex[:10]}")
    seen = sum(w.proxy.requests.values())
    w.proxy.set("stall")
    try:
        got = w.create(pod("stalled", ref), ns)
    finally:
        w.proxy.set("pass")
    assert sum(w.proxy.requests.values()) > seen, "the provider never asked the registry: the check would be vacuous"
    assert got.returncode != 0, f"admitted while the registry stalled: {got.stdout}"
    assert got.status == 403, f"expected Gatekeeper's 403, got {got.status}:\n{got.error}"
    assert WEBHOOK_FAILED not in got.error, got.error
    assert 'admission webhook "validation.gatekeeper.sh" denied the request' in got.error


def test_client_certificate_from_another_ca_denies(installed: Installed, ns: str) -> None:
    """Gatekeeper reinstalled with a new CA (docs/install.md troubleshooting): its client
    certificate no longer chains to a CA the provider trusts, and every image is denied."""
    w = installed
    try:
        w.kube.restart_gatekeeper(ca=CA.make("another gatekeeper-ca"))
        error = _denied_by_gatekeeper(w, fresh(w), ns)
        assert "certificate" in error or "tls" in error.lower(), error
    finally:
        w.kube.restart_gatekeeper(ca=None)
    w.wait_admitted(lambda i: pod(f"back-{i}", fresh(w)), ns)
