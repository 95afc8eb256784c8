"""Gatekeeper's external-data response cache, on with the shipped TTL (3m): a transient failure
(reported in systemError, which Gatekeeper does not cache) does not keep an image denied once it
clears; a definitive verdict is served from the cache, even while the provider is down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.kube import gatekeeper_values
from tests.kube.conftest import OFFLINE, Installed, pod


@pytest.fixture()
def ns(installed: Installed) -> str:
    ns = installed.namespace("cache")
    installed.sample_constraint("requireattestations", ns, parameters=OFFLINE)
    return ns


def test_the_cache_is_on_with_the_shipped_ttl() -> None:
    assert gatekeeper_values()["externaldataProviderResponseCacheTTL"] == "3m"


def test_transient_failure_does_not_keep_the_image_denied(installed: Installed, ns: str) -> None:
    w = installed
    ref = w.push_tag("via-proxy", f"t-{uuid.uuid4().hex[:10]}")
    w.proxy.set("status", code=503)  # the registry answers 503: a transient failure
    try:
        w.expect_denied(pod("during", ref), ns, f"image <{ref}>")
    finally:
        w.proxy.set("pass")
    # The same key, well within the 3m TTL: admitted once the provider's own transient memory
    # (server.transientMemorySeconds, 5 s) has let go; a cached denial would last 3 minutes.
    w.wait_admitted(lambda i: pod(f"after-{i}", ref), ns, timeout=60)


@pytest.fixture()
def provider_back(installed: Installed) -> Iterator[None]:
    yield
    if installed.provider.proc is None:
        installed.provider.start()


def test_definitive_verdict_served_from_the_cache(installed: Installed, ns: str, provider_back: None) -> None:
    w = installed
    tag = f"t-{uuid.uuid4().hex[:10]}"
    ref = w.push_tag("cosign-bundle", tag)
    w.expect_admitted(pod("first", ref), ns)
    w.provider.stop()
    w.expect_admitted(pod("cached", ref), ns)  # served from Gatekeeper's cache: no provider
    other = w.push_tag("cosign-bundle", f"u-{uuid.uuid4().hex[:10]}")
    w.expect_denied(pod("uncached", other), ns, f"image <{other}>")  # the provider really is down
