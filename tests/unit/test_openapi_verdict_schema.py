"""The OpenAPI document's Verdict schema documents every field the verdict carries: a verdict
with every optional part filled (an index with platformDetails, keyless and key signers, a
looked-up log entry, timestamps, a verified predicate, cut annotations from bounds.py) and the
recorded verdicts of the real provider validate against it with unknown fields forbidden."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import stellaops
from stellaops.bounds import bound_verdict
from stellaops.config import LimitsConfig
from stellaops.verdict import AttestationResult, ErrorItem, PlatformDetail, Signer, TimestampResult, TlogResult, Verdict

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = Path(stellaops.__file__).parent / "openapi.yaml"
RECORDED = sorted((ROOT / "rego" / "testdata" / "verdicts").glob("*/data.json"))
D = {c: f"sha256:{c * 64}" for c in "abcd"}


def _strict(node: Any) -> Any:
    """The components as JSON Schema: refs rewritten, OpenAPI's nullable turned into a type
    union, and additionalProperties false wherever an object lists its properties."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items() if k not in ("nullable", "description")}
        if "$ref" in out:
            out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
        if node.get("nullable"):
            out = {"anyOf": [out, {"type": "null"}]}
        elif out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def _validator(name: str) -> jsonschema.Draft202012Validator:
    doc = yaml.safe_load(OPENAPI.read_text())
    defs = _strict(doc["components"]["schemas"])
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs})


def _full_verdict() -> Verdict:
    keyless = Signer("keyless", "ci", issuer="https://token.actions.githubusercontent.com", subject="https://github.com/o/r/.github/workflows/b.yml@refs/heads/main")
    key = Signer("key", "release-key", key_id="sha256:" + "e" * 64)
    verified = AttestationResult(
        predicate_type="https://slsa.dev/provenance/v1", verified=True, source="bundle", digest=D["b"], signers=(keyless, key),
        tlog=TlogResult(verified=True, log_index=7, integrated_time=1_700_000_000, looked_up=True), created="2026-11-25T18:19:37Z",
        created_signed=True, annotations={"org.opencontainers.image.created": "x" * 5000}, predicate={"buildDefinition": {}},
        predicate_summary={"source": "git+https://github.com/o/r@refs/heads/main"}, timestamps=(TimestampResult("tsa", "2026-11-25T18:19:37Z"),),
    )  # fmt: skip
    unverified = AttestationResult(predicate_type="", verified=False, source="imported", digest=D["c"], errors=(ErrorItem("SIGNATURE_INVALID", "no", "h"),))
    details = (PlatformDetail(D["b"], "linux/amd64", D["a"]), PlatformDetail(D["c"], "linux/arm64/v8", D["d"]))
    return Verdict(image="127.0.0.1:5000/app:v1", digest=D["a"], attestations=(verified, unverified), errors=(ErrorItem("LIMIT_EXCEEDED", "m", ""),),
                   platforms=(D["b"], D["c"]), platform_details=details)  # fmt: skip


def test_a_verdict_with_every_part_validates_strictly() -> None:
    doc = _full_verdict().to_json()
    assert doc["platformDetails"] and "timestamps" in doc["attestations"][0] and "predicate" in doc["attestations"][0]
    _validator("Verdict").validate(doc)


def test_a_bounded_verdict_validates_strictly() -> None:
    bounded = bound_verdict(_full_verdict(), LimitsConfig())
    _validator("Verdict").validate(bounded.to_json())


def test_an_undocumented_field_is_refused() -> None:  # the check can fail
    doc = copy.deepcopy(_full_verdict().to_json())
    doc["platformDetails"][0]["variant"] = "v8"
    with pytest.raises(jsonschema.ValidationError):
        _validator("Verdict").validate(doc)


@pytest.mark.parametrize("path", RECORDED, ids=[p.parent.name for p in RECORDED])
def test_recorded_verdicts_validate(path: Path) -> None:
    item = json.loads(path.read_text())
    if item.get("value") is None:
        pytest.skip("a per-key error, no verdict")
    _validator("Verdict").validate(item["value"])
