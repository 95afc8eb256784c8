"""T-L21 unsigned bytes amplified into verdicts (issue 16 item 6), through the real provider.

An attacker with push access to a repository gives an image many referrers whose manifests
carry large annotations, a claimed predicate type and ``created`` of their choosing, with
envelopes nobody trusted signed. A ProviderRequest of a few hundred bytes used to get all of it
back verbatim (20 MB for one key in the review), and Gatekeeper caches each item for minutes.

Now (``bounds.bound_verdict``, ``gatekeeper._assemble``): every unsigned string in a verdict is
cut to ``limits.unsignedStringBytes``, at most ``limits.unsignedAnnotations`` are kept per
attestation, a verdict stays within ``limits.verdictBytes`` and a response within
``limits.responseBytes``, and each cut says so (annotation ``dev.stellaops/cut``, errors
``LIMIT_EXCEEDED``, keys over the response cap in ``systemError``, which Gatekeeper never caches).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from stellaops.registry import RegistryClient
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, start_provider
from tests.hardening._support import (
    assert_provider_response,
    egress_env,
    key_bundle,
    new_key,
    provider_config,
    provider_request,
    push_bundle_referrer,
    sign_envelope,
    statement,
    write_public_key,
)

REFERRERS = 16
ANNOTATIONS = 40
VALUE_BYTES = 4000
STRING_CAP, ANNOTATION_CAP, VERDICT_CAP, RESPONSE_CAP = 256, 16, 256 * 1024, 200_000


@dataclass
class Amp:
    registry: str
    client: RegistryClient
    provider: ProviderProcess
    n: int = 0

    def hostile_image(self) -> str:
        """An image with REFERRERS forged referrers, each with ANNOTATIONS annotations of VALUE_BYTES."""
        self.n += 1
        repo = f"amplify/img{self.n}"
        digest = push_test_image(self.registry, repo, "v1", client=self.client)
        size = len(self.client.get_manifest(self.registry, repo, digest).raw)
        attacker = new_key()  # trusted by nobody
        for i in range(REFERRERS):
            env = sign_envelope(statement(digest, name=f"r{i}"), [attacker])
            push_bundle_referrer(
                self.client, self.registry, repo, digest, size, key_bundle(env, attacker.public_key()),
                annotated_predicate_type="https://evil.example/" + "t" * VALUE_BYTES,
                extra_annotations={
                    "org.opencontainers.image.created": "c" * VALUE_BYTES,
                    **{f"pad.{i}.{j:03d}": chr(ord("a") + j % 26) * VALUE_BYTES for j in range(ANNOTATIONS)},
                },
            )
        return f"{self.registry}/{repo}@{digest}"

    def ask(self, keys: list[str]) -> tuple[int, dict[str, Any]]:
        status, data = self.provider.post("/gatekeeper/v1/verify", provider_request(keys))
        doc = json.loads(data)
        assert_provider_response(doc)
        return len(data), doc


@pytest.fixture(scope="module")
def amp(tmp_path_factory: pytest.TempPathFactory, ocireg: str) -> Iterator[Amp]:
    tmp = tmp_path_factory.mktemp("amplify")
    trusted = new_key()
    extra = (
        "server: {deadlineSeconds: 8}\n"  # many referrers on a shared CI machine: not what is under test
        f"limits: {{responseBytes: {RESPONSE_CAP}}}\n"
    )
    cfg = provider_config(tmp, {"release-key": write_public_key(trusted, tmp / "k.pub")}, extra=extra)
    env, _ = egress_env(tmp)
    provider = start_provider(tmp / "provider", cfg, env=env)
    client = loopback_client()
    try:
        yield Amp(ocireg, client, provider)
    finally:
        provider.stop()
        client.close()


def test_unsigned_annotations_type_and_created_are_bounded_and_the_cut_is_said(amp: Amp) -> None:
    key = amp.hostile_image()
    size, doc = amp.ask([key])
    (item,) = doc["response"]["items"]
    value = item["value"]
    raw = len(json.dumps(value, separators=(",", ":")).encode())
    unbounded = REFERRERS * (ANNOTATIONS + 2) * VALUE_BYTES  # what used to come back (2.7 MB)
    assert raw <= VERDICT_CAP and size < unbounded // 10, f"{raw} bytes for one key"
    assert value["attestations"], value
    for att in value["attestations"]:
        assert att["verified"] is False
        assert len(att["predicateType"].encode()) <= STRING_CAP
        assert len(att["created"].encode()) <= STRING_CAP
        assert len(att["annotations"]) <= ANNOTATION_CAP + 1
        assert all(len(k.encode()) <= STRING_CAP and len(v.encode()) <= STRING_CAP for k, v in att["annotations"].items())
        assert "annotations dropped" in att["annotations"]["dev.stellaops/cut"], att["annotations"]


def test_a_response_stays_within_its_cap_and_the_rest_goes_to_system_error(amp: Amp) -> None:
    keys = [amp.hostile_image() for _ in range(4)]
    size, doc = amp.ask(keys)
    assert size <= RESPONSE_CAP, size
    answered = {i["key"] for i in doc["response"]["items"]}
    left_out = [k for k in keys if k not in answered]
    assert answered and left_out, (answered, doc["response"]["systemError"][:300])
    for k in left_out:  # never an item (Gatekeeper would cache it): systemError, which it retries
        assert k in doc["response"]["systemError"]
    assert "limits.responseBytes" in doc["response"]["systemError"]
    # the next call (Gatekeeper asks only for what it has no item for) answers the rest
    size, again = amp.ask(left_out)
    assert size <= RESPONSE_CAP and {i["key"] for i in again["response"]["items"]}
