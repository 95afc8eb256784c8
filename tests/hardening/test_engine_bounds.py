"""Threat "unsigned bytes amplified into verdicts" (issue 16 item 6, engine side; row and id
proposed to the lead): every freshly computed verdict goes through
``bounds.bound_verdict`` before it is cached or answered, so unsigned registry annotations on
an attestation layer cannot amplify a small request into a huge cached answer."""

from __future__ import annotations

import json
from pathlib import Path

from stellaops.config import parse_config
from stellaops.engine import Engine
from tests.fixtures.images import loopback_client, push_test_image
from tests.hardening._support import new_key, provider_config, push_att, sign_envelope, statement, write_public_key


def test_verdict_is_bounded_before_it_is_cached(ocireg: str, tmp_path: Path) -> None:
    key, stranger = new_key(), new_key()
    client = loopback_client()
    repo = "bounds/app"
    digest = push_test_image(ocireg, repo, "v1", client=client)
    fat = {f"x.example/a{i}": "v" * 4000 for i in range(40)}  # 160 KB of unsigned annotations per layer
    layers = [sign_envelope(statement(digest, predicate={"n": i}), [stranger]) for i in range(4)]
    push_att(client, ocireg, repo, digest, layers, layer_annotations=[fat] * 4)
    cfg = provider_config(tmp_path, {"release": write_public_key(key, tmp_path / "k.pub")}, cache_ttl=60, store_dsn="sqlite:///:memory:")
    config = parse_config(cfg + "limits: {verdictBytes: 65536}\n", source="test")
    engine = Engine(config, client=client)
    image = f"{ocireg}/{repo}@{digest}"
    try:
        fresh = engine.verify_key(image).to_json()
        cached = engine.verify_key(image)  # from the cache now
        assert type(cached).__name__ == "CachedVerdict"
        raw = cached.raw  # type: ignore[attr-defined]
    finally:
        engine.close()
        client.close()
    limits = config.limits
    assert len(json.dumps(fresh)) <= limits.verdict_bytes
    assert len(raw) <= limits.verdict_bytes
    for a in fresh["attestations"]:
        assert len(a["annotations"]) <= limits.unsigned_annotations + 1  # + the dev.stellaops/cut marker
        assert all(len(v.encode()) <= limits.unsigned_string_bytes for v in a["annotations"].values())
