"""dsse.py: strict envelope and statement parsing, PAE, subject binding (pure)."""

from __future__ import annotations

import base64
import json

import pytest

from stellaops import dsse

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _env(payload: bytes, **over: object) -> bytes:
    doc = {"payloadType": dsse.PAYLOAD_TYPE_INTOTO, "payload": base64.b64encode(payload).decode(), "signatures": [{"sig": "AAAA"}]}
    doc.update(over)
    return json.dumps(doc).encode()


def _statement(**over: object) -> bytes:
    doc = {
        "_type": dsse.STATEMENT_V1,
        "subject": [{"name": "r/app", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "stellaops.io/predicates/scan-result@v1",
        "predicate": {},
    }
    doc.update(over)
    return json.dumps(doc).encode()


def test_pae_matches_the_dsse_spec_example() -> None:
    # from the DSSE spec (protocol.md): PAE("http://example.com/HelloWorld", "hello world")
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_parse_envelope_keeps_exact_bytes() -> None:
    raw = _env(b"x")
    env = dsse.parse_envelope(raw)
    assert env.raw == raw and env.payload == b"x" and env.signatures[0].sig == b"\x00\x00\x00"


def test_rejects_duplicate_keys_in_envelope() -> None:
    raw = b'{"payloadType":"a","payloadType":"b","payload":"","signatures":[{"sig":"AA=="}]}'
    with pytest.raises(dsse.MalformedEnvelope, match="more than once"):
        dsse.parse_envelope(raw)


def test_rejects_url_safe_base64_payload() -> None:
    raw = json.dumps({"payloadType": "t", "payload": "-_-_", "signatures": [{"sig": "AAAA"}]}).encode()
    with pytest.raises(dsse.MalformedEnvelope, match="standard base64"):
        dsse.parse_envelope(raw)


def test_accepts_url_safe_signature() -> None:
    raw = json.dumps({"payloadType": "t", "payload": "", "signatures": [{"sig": "-_-_"}]}).encode()
    assert dsse.parse_envelope(raw).signatures[0].sig == base64.urlsafe_b64decode("-_-_")


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"[]", "JSON object"),
        (b"not json", "not valid JSON"),
        (b'{"payloadType":"t","payload":"","signatures":[]}', "at least one signature"),
        (b'{"payloadType":"t","payload":"","signatures":[{"sig":""}]}', "empty"),
        (b'{"payloadType":"t","payload":"","signatures":[{"sig":"AA=="}],"extra":1}', "unknown DSSE envelope field"),
        (b'{"payloadType":1,"payload":"","signatures":[{"sig":"AA=="}]}', "must be a string"),
        (b'{"payload":"","signatures":[{"sig":"AA=="}]}', "no 'payloadType'"),
    ],
)
def test_rejects_malformed_envelopes(raw: bytes, match: str) -> None:
    with pytest.raises(dsse.MalformedEnvelope, match=match) as info:
        dsse.parse_envelope(raw)
    assert info.value.reason == "MALFORMED_ENVELOPE"


def test_too_many_signatures_is_a_limit() -> None:
    raw = _env(b"x", signatures=[{"sig": "AAAA"}] * (dsse.MAX_SIGNATURES + 1))
    with pytest.raises(dsse.MalformedEnvelope) as info:
        dsse.parse_envelope(raw)
    assert info.value.reason == "LIMIT_EXCEEDED"


def test_payload_type_must_be_in_toto() -> None:
    env = dsse.parse_envelope(_env(b"x", payloadType="application/json"))
    with pytest.raises(dsse.PayloadTypeInvalid) as info:
        dsse.require_intoto(env)
    assert info.value.reason == "PAYLOAD_TYPE_INVALID"


def test_statement_binds_to_image_digest() -> None:
    st = dsse.parse_statement(_statement())
    dsse.require_subject(st, DIGEST)
    with pytest.raises(dsse.SubjectMismatch) as info:
        dsse.require_subject(st, OTHER)
    assert info.value.reason == "SUBJECT_MISMATCH" and OTHER in info.value.detail


def test_subject_of_other_algorithm_does_not_count() -> None:
    st = dsse.parse_statement(_statement(subject=[{"name": "x", "digest": {"sha512": "ab" * 32}}]))
    with pytest.raises(dsse.SubjectMismatch):
        dsse.require_subject(st, DIGEST)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"_type": "https://example.com/Statement"}, "_type"),
        ({"predicate_type": "x"}, "unknown statement field"),
        ({"subject": []}, "no subject"),
        ({"subject": [{"name": "x", "digest": {}}]}, "non-empty object"),
        ({"subject": [{"name": "x", "digest": {"sha256": 1}}]}, "must be a string"),
        ({"subject": [{"name": "x", "digest": {"sha256": "ab"}, "evil": 1}]}, "unknown field"),
        ({"predicateType": ""}, "predicateType"),
    ],
)
def test_rejects_malformed_statements(over: dict, match: str) -> None:
    with pytest.raises(dsse.MalformedStatement, match=match) as info:
        dsse.parse_statement(_statement(**over))
    assert info.value.reason == "MALFORMED_STATEMENT"


def test_rejects_duplicate_predicate_type_in_statement() -> None:
    raw = _statement().replace(b'"predicateType"', b'"predicateType": "https://slsa.dev/provenance/v1", "predicateType"')
    with pytest.raises(dsse.MalformedStatement, match="more than once"):
        dsse.parse_statement(raw)


def test_digest_syntax_is_checked() -> None:
    st = dsse.parse_statement(_statement())
    with pytest.raises(dsse.SubjectMismatch, match="not a digest"):
        dsse.require_subject(st, "sha256:XYZ")


def test_make_statement_round_trips_in_cosign_key_order() -> None:
    raw = dsse.make_statement("r/app", DIGEST, "https://slsa.dev/provenance/v1", {"a": 1})
    assert list(json.loads(raw)) == ["_type", "subject", "predicateType", "predicate"]
    st = dsse.parse_statement(raw)
    assert st.covers(DIGEST) and st.predicate == {"a": 1}


def test_json_nested_deeper_than_the_limit_is_refused_before_parsing() -> None:
    deep = '{"_type":"https://in-toto.io/Statement/v1","predicate":' + "[" * 200 + "]" * 200 + "}"
    with pytest.raises(dsse.MalformedStatement, match="deeper than 128") as info:
        dsse.parse_statement(deep.encode())
    assert info.value.reason == "LIMIT_EXCEEDED"


@pytest.mark.parametrize(
    "text, deep",
    [
        ("[" * 128 + "]" * 128, False),
        ("[" * 129 + "]" * 129, True),
        ('{"a": "' + "[" * 500 + '"}', False),  # brackets inside strings do not count
        ('{"a": {"b": [' + "1," * 1000 + "1]}}", False),  # wide is fine
        ('{"a": "\\\\", "b": ' + "[" * 300 + "]" * 300 + "}", True),
    ],
)
def test_json_depth_counts_only_structure(text: str, deep: bool) -> None:
    import json as _json

    assert dsse.json_depth_exceeds(_json.loads(text)) is deep
