"""Images attested by `stella` and by `cosign` (sigstore bundle and the legacy `.att` tag), by tag
and by digest, and multi-arch indexes, admitted or refused through the API server. The images
are key-signed offline, so the shipped require-scan-and-sbom sample runs with `requireTlog: false`."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.images import loopback_client
from tests.kube.conftest import OFFLINE, SLSA1, Installed, pod


@pytest.fixture(scope="module")
def offline_ns(installed: Installed) -> str:
    ns = installed.namespace("formats")
    installed.sample_constraint("requireattestations", ns, parameters=OFFLINE)
    return ns


def _by_digest(w: Installed, name: str) -> str:
    ref = w.images[name]
    return f"{ref.rsplit(':', 1)[0]}@{w.digests[name]}"


@pytest.mark.parametrize("name", ["stella", "cosign-bundle", "cosign-att"])
@pytest.mark.parametrize("how", ["tag", "digest"])
def test_attested_image_admitted(installed: Installed, offline_ns: str, name: str, how: str) -> None:
    ref = installed.images[name] if how == "tag" else _by_digest(installed, name)
    installed.expect_admitted(pod(f"{name}-{how}", ref), offline_ns)


def test_unattested_image_denied_under_the_same_constraint(installed: Installed, offline_ns: str) -> None:
    unsigned = installed.images["sample:unsigned"]
    installed.expect_denied(pod("unsigned", unsigned), offline_ns, f"image <{unsigned}>", f"<{SLSA1}>")


def test_index_attested_on_the_index_digest_admitted(installed: Installed, offline_ns: str) -> None:
    installed.expect_admitted(pod("index-own", installed.images["index-own"]), offline_ns)
    installed.expect_admitted(pod("index-own-digest", _by_digest(installed, "index-own")), offline_ns)


def test_index_with_every_platform_attested_admitted(installed: Installed, offline_ns: str) -> None:
    installed.expect_admitted(pod("index-platforms", installed.images["index-platforms"]), offline_ns)


def test_index_with_one_platform_unattested_denied_naming_it(installed: Installed, offline_ns: str) -> None:
    """A runtime pulls one platform: an index whose arm64 manifest carries nothing is refused,
    and the message names that platform's digest."""
    w = installed
    with loopback_client() as c:
        host, repo = w.images["index-one-platform"].split("/", 1)
        index = json.loads(c.get_manifest(host, repo.rsplit(":", 1)[0], w.digests["index-one-platform"]).raw)
    unattested = index["manifests"][1]["digest"]
    w.expect_denied(pod("index-one", w.images["index-one-platform"]), offline_ns, f"platform <{unattested}>")
