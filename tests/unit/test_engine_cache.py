"""engine.CachedVerdict: spliced bytes are the same JSON as the verdict that was cached."""

from __future__ import annotations

import json

from stellaops.engine import CachedVerdict, _verdict_to_cache
from stellaops.gatekeeper import _item
from stellaops.verdict import AttestationResult, ErrorItem, Signer, Verdict


def test_spliced_cached_item_equals_fresh_item() -> None:
    fresh = Verdict(
        image="r.example/app:v1",
        digest="sha256:" + "a" * 64,
        attestations=(AttestationResult(predicate_type="t", verified=True, source="bundle", signers=(Signer("key", "k", "sha256:b"),)),),
        errors=(ErrorItem("X", "m\u00e9ssage \"quoted\"", "h"),),
    )
    cached = CachedVerdict(image="other/key@sha256:" + "a" * 64, digest=fresh.digest, raw=_verdict_to_cache(fresh))
    want = fresh.to_json() | {"image": cached.image}
    assert json.loads(_item(cached.image, cached)) == {"key": cached.image, "value": want, "error": ""}
    assert cached.to_json() == want
    assert json.loads(_item("k", error="E: x")) == {"key": "k", "value": None, "error": "E: x"}
