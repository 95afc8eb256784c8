"""Store junk of any shape at the provider's defaults (issue 16 item 8; threat id proposed to
the lead): 16 imports of ~3.9 MB per digest whose bytes are megabytes of JSON values (``{}``,
``[]``, numbers) rather than a padded string took 2 s each to refuse (the strict parser calls
Python per object and walks every node), so one image with them ended DEADLINE_EXCEEDED at
every admission. Now such an envelope or bundle is refused before the strict parse: the image
gets its verdict (genuine attestation verified, each junk one refused LIMIT_EXCEEDED), and an
unrelated image in the same request is verified.

Real loopback registry (ocireg), real SQLite store, the real engine and verifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stellaops.store import open_store
from tests.hardening._support import SCAN_TYPE, reasons
from tests.hardening.test_budgets import Counter, World

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def world(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(ocireg, tmp_path_factory.mktemp("shapes"))
    try:
        yield w
    finally:
        w.client.close()


def _spam(item: bytes, size: int, kind: str, n: int) -> bytes:
    head = (
        b'{"payload":"","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"QQ=="}],"x":['
        if kind == "dsse"
        else b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","x":['
    )
    return head + b",".join([item] * (size // (len(item) + 1))) + b'],"n":%d}' % n  # n: each one distinct


@pytest.mark.parametrize("item, kind", [(b"{}", "dsse"), (b"1", "dsse"), (b"{}", "bundle")])
def test_json_value_junk_in_the_store_does_not_cost_the_deadline(world: World, tmp_path: Any, item: bytes, kind: str) -> None:
    repo, digest = world.image()
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    for i in range(16):
        data = _spam(item, int(3.9 * MiB), kind, i)
        store.put(f"tenant{i % 3}", data, kind=kind, subject_digests=[digest], predicate_type=SCAN_TYPE, image=None, annotations={})
    counter = Counter()
    engine = world.engine(store=store, verify=counter)
    key = f"{world.registry}/{repo}@{digest}"
    other_repo, other = world.image()
    other_key = f"{world.registry}/{other_repo}@{other}"
    try:
        engine.verify_key(other_key)  # warm the connection pool (the cache TTL is 0)
        result = engine.verify_batch([key, other_key])  # the defaults: 1.5 s deadline, 64 MiB per image
    finally:
        engine.close()
        store.close()
    assert not result.errors, result.errors  # no DEADLINE_EXCEEDED for either key
    assert result.verdicts[other_key].to_json()["attestations"][0]["verified"] is True
    verdict = result.verdicts[key].to_json()
    assert [a["source"] for a in verdict["attestations"] if a["verified"]] == ["cosign-tag"], verdict["attestations"]
    junk = [a for a in verdict["attestations"] if a["source"] == "imported"]
    assert len(junk) == 16 and all(reasons(a) == ["LIMIT_EXCEEDED"] for a in junk), [reasons(a) for a in junk]
