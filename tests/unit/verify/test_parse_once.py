"""Each candidate is parsed once (issue 16 item 8: "no payload is parsed twice").

A junk envelope of 3.9 MB took 0.34 s to refuse: its claimed predicate type was found by
parsing the whole candidate a second time, and its digest by re-encoding it. Now:

- the envelope JSON is parsed once, and a candidate that is not valid JSON is refused at that
  parse with no second attempt;
- the statement (the payload) is parsed once at most: after the signature check, or, for an
  attestation that failed before, only to report its claimed predicate type and only when the
  payload is small (``CLAIM_PARSE_BYTES``): a large envelope signed by nobody never has its
  payload parsed, its claimed type comes from its annotations;
- the envelope digest (cosign v3's serialisation) is computed without base64-encoding the
  payload again, and equals what that serialisation hashes to for every input, canonical
  base64 or not.

The real functions are counted (wrapped), never replaced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from typing import Any

import pytest

from stellaops import dsse
from stellaops.verify import attestation
from stellaops.verify.attestation import CLAIM_PARSE_BYTES, verify_candidate
from tests.fixtures.keys import IMAGE_DIGEST, SCAN_TYPE, candidate, envelope_bytes, key_authority, make_private_key, statement, trust_for


class Calls:
    def __init__(self) -> None:
        self.json: list[int] = []  # sizes of the documents strict_json parsed
        self.statements: list[int] = []  # sizes of the payloads parse_statement parsed
        self.encoded: list[int] = []  # sizes of what base64.b64encode encoded


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    c = Calls()
    strict_json, parse_statement, b64encode = dsse.strict_json, dsse.parse_statement, base64.b64encode

    def counted_json(data: Any, **kw: Any) -> Any:
        c.json.append(len(data))
        return strict_json(data, **kw)

    def counted_statement(payload: bytes) -> Any:
        c.statements.append(len(payload))
        return parse_statement(payload)

    def counted_b64encode(data: Any, *args: Any) -> Any:
        c.encoded.append(len(data))
        return b64encode(data, *args)

    monkeypatch.setattr(dsse, "strict_json", counted_json)
    monkeypatch.setattr(dsse, "parse_statement", counted_statement)
    monkeypatch.setattr(base64, "b64encode", counted_b64encode)
    return c


@pytest.fixture(scope="module")
def trusted() -> Any:
    return make_private_key("p256")


def _big_statement(size: int) -> bytes:
    return statement(predicate={"scanner": {"name": "junk"}, "pad": "x" * size, "findings": []})


def test_a_large_envelope_signed_by_nobody_never_has_its_payload_parsed(calls: Calls, trusted: Any) -> None:
    payload = _big_statement(3 * 1024 * 1024)
    env = envelope_bytes(payload, [make_private_key("p256")])
    calls.encoded.clear()  # what building the envelope encoded
    result = verify_candidate(candidate(env, annotations={"predicateType": "claimed/by-annotation"}), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert not result.verified and [e.reason for e in result.errors] == ["SIGNATURE_INVALID"]
    assert calls.json == [len(env)]  # the envelope, once
    assert calls.statements == []  # the payload never
    assert result.predicate_type == "claimed/by-annotation"  # unsigned, from its annotations
    assert not [n for n in calls.encoded if n >= len(payload)], calls.encoded  # the digest without re-encoding
    assert result.envelope_digest == "sha256:" + hashlib.sha256(env).hexdigest()  # cosign's serialisation already


def test_a_small_envelope_signed_by_nobody_reports_its_claimed_type_from_one_parse(calls: Calls, trusted: Any) -> None:
    env = envelope_bytes(statement(), [make_private_key("p256")])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["SIGNATURE_INVALID"] and result.predicate_type == SCAN_TYPE
    payload = json.loads(env)["payload"]
    assert calls.json == [len(env), len(base64.b64decode(payload))] and len(calls.statements) == 1  # envelope, statement


def test_the_claim_parse_bound_is_inclusive(calls: Calls, trusted: Any) -> None:
    base = statement(predicate={"pad": ""})
    payload = statement(predicate={"pad": "x" * (CLAIM_PARSE_BYTES - len(base))})
    assert len(payload) == CLAIM_PARSE_BYTES
    for data, parsed in ((payload, 1), (statement(predicate={"pad": "x" * (CLAIM_PARSE_BYTES - len(base) + 1)}), 0)):
        calls.statements.clear()
        result = verify_candidate(candidate(envelope_bytes(data, [make_private_key("p256")])), IMAGE_DIGEST, trust_for(key_authority(trusted)))
        assert len(calls.statements) == parsed and result.predicate_type == (SCAN_TYPE if parsed else "")


def test_a_candidate_that_is_not_json_is_refused_at_the_first_parse(calls: Calls, trusted: Any) -> None:
    data = b'{"payload": "' + b"A" * 100_000  # cut short
    result = verify_candidate(candidate(data, annotations={"predicateType": SCAN_TYPE}), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["MALFORMED_ENVELOPE"] and result.predicate_type == SCAN_TYPE
    assert calls.json == [len(data)] and calls.statements == []
    assert result.envelope_digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_bundle_that_is_not_a_bundle_is_parsed_once(calls: Calls, trusted: Any) -> None:
    data = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "junk": "y" * 100_000}).encode()
    result = verify_candidate(candidate(data, kind="bundle"), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["MALFORMED_ENVELOPE"]
    assert calls.json == [len(data)] and calls.statements == []


def test_a_signed_payload_that_is_not_a_statement_is_parsed_once(calls: Calls, trusted: Any) -> None:
    payload = b'{"_type": "https://in-toto.io/Statement/v1", "subject": [' + b"1" * 10
    env = envelope_bytes(payload, [trusted])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["MALFORMED_STATEMENT"] and result.predicate_type == ""
    assert calls.statements == [len(payload)] and calls.json == [len(env), len(payload)]


def test_a_genuine_attestation_parses_envelope_and_statement_once_each(calls: Calls, trusted: Any) -> None:
    env = envelope_bytes(_big_statement(1024 * 1024), [trusted])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert result.verified, result.errors
    assert calls.json[0] == len(env) and calls.json.count(len(env)) == 1
    assert len(calls.statements) == 1


# ---------------------------------------------------------------- the envelope digest, every input


def _cosign_v3_bytes(env: dsse.Envelope) -> bytes:
    """cosign v3's serialisation as written before (json.dumps of to_json): the reference."""
    return json.dumps(
        {
            "payload": base64.b64encode(env.payload).decode(),
            "payloadType": env.payload_type,
            "signatures": [{"sig": base64.b64encode(s.sig).decode()} for s in env.signatures],
        },
        separators=(",", ":"),
    ).encode()


@pytest.mark.parametrize(
    "payload_text",
    [
        "",  # empty payload
        "QQ==",  # canonical, 1 byte
        "QR==",  # the same byte with non-zero spare bits: not canonical
        "QUI=",
        "QUJ=",  # not canonical
        "QUJD",
        base64.b64encode(b"x" * 1000).decode(),
        base64.b64encode(b"x" * 1000).decode()[:-2] + "h=",  # 1000 % 3 == 1: "eA==" tail altered
    ],
)
@pytest.mark.parametrize("payload_type", [dsse.PAYLOAD_TYPE_INTOTO, 'a"quote\\and é unicode\u2028', ""])
def test_the_envelope_digest_is_cosigns_serialisation_for_every_input(payload_text: str, payload_type: str) -> None:
    doc = {"payloadType": payload_type, "payload": payload_text, "signatures": [{"keyid": "k", "sig": "c2ln"}, {"sig": "c2lnMg"}]}
    env = dsse.parse_envelope(json.dumps(doc).encode())
    assert env.to_bytes() == _cosign_v3_bytes(env)
    assert json.loads(env.to_bytes()) == env.to_json()
    assert env.to_bytes(with_keyid=True) == json.dumps(env.to_json(with_keyid=True), separators=(",", ":")).encode()
    assert env.canonical_digest() == "sha256:" + hashlib.sha256(_cosign_v3_bytes(env)).hexdigest()


def test_an_envelope_built_or_replaced_in_code_encodes_its_own_payload() -> None:
    from dataclasses import replace

    env = dsse.parse_envelope(json.dumps({"payloadType": "t", "payload": "QUJD", "signatures": [{"sig": "c2ln"}]}).encode())
    other = replace(env, payload=b"other")
    assert other.to_bytes() == _cosign_v3_bytes(other) and json.loads(other.to_bytes())["payload"] == base64.b64encode(b"other").decode()
    built = dsse.Envelope("t", b"built", (dsse.Signature(b"s"),))
    assert built.to_bytes() == _cosign_v3_bytes(built)


def test_the_standard_base64_check_matches_the_regular_expression_it_replaces() -> None:
    """``b64decode_std``'s check, written with C loops, accepts exactly what
    ``^[A-Za-z0-9+/]*={0,2}$`` (Python's ``$``: also before one final newline) accepted."""
    regex = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
    rng = random.Random(8)
    alphabet = ["A", "z", "0", "+", "/", "=", "\n", "-", "_", " ", "é", "\x00"]
    samples = ["", "=", "==", "===", "\n", "A\n", "A\n\n", "A=\n", "A==\n", "A===\n", "=A", "A=A", "\nA"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(20000)]
    for s in samples:
        assert dsse.is_std_base64_text(s) == bool(regex.match(s)), repr(s)


# ---------------------------------------------------------------- junk that is not an envelope


@pytest.mark.parametrize("item", [b"{}", b"[]", b"1", b'"s"'])
def test_megabytes_of_json_values_are_refused_before_the_strict_parse(calls: Calls, trusted: Any, item: bytes) -> None:
    """4 MB of ``{}`` took 2 s to refuse (a Python call per object, a walk of every node), so 16
    of them in the store made every admission of the image a DEADLINE_EXCEEDED."""
    data = b'{"payload":"","payloadType":"x","signatures":[{"sig":"QQ=="}],"x":[' + b",".join([item] * 1_000_000) + b"]}"
    result = verify_candidate(candidate(data), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["LIMIT_EXCEEDED"] and "JSON values" in result.errors[0].message
    assert calls.json == [] and calls.statements == []


def test_brackets_and_commas_inside_strings_do_not_count(trusted: Any) -> None:
    """Sixteen signatures whose keyids, and a payloadType, are full of brackets and commas: the
    count is of values outside strings, so the envelope is parsed and verifies as before."""
    noise = '{[,\\"' * 400  # an escaped quote inside, too
    env = json.loads(envelope_bytes(statement(), [trusted] * 16))
    for s in env["signatures"]:
        s["keyid"] = noise
    data = json.dumps(env).encode()
    assert data.count(b"{") + data.count(b"[") + data.count(b",") > dsse.MAX_ENVELOPE_VALUES
    result = verify_candidate(candidate(data), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert result.verified, result.errors
    env["payloadType"] = noise
    result = verify_candidate(candidate(json.dumps(env).encode()), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["PAYLOAD_TYPE_INVALID"]


def test_seventeen_signatures_keep_their_own_refusal(trusted: Any) -> None:
    data = envelope_bytes(statement(), [trusted] * 17)
    result = verify_candidate(candidate(data), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["LIMIT_EXCEEDED"] and "more than the limit of 16" in result.errors[0].message


def test_a_bundle_of_megabytes_of_json_values_is_refused_before_the_strict_parse(calls: Calls, trusted: Any) -> None:
    data = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","x":[' + b",".join([b"{}"] * 1_000_000) + b"]}"
    result = verify_candidate(candidate(data, kind="bundle"), IMAGE_DIGEST, trust_for(key_authority(trusted)))
    assert [e.reason for e in result.errors] == ["LIMIT_EXCEEDED"] and "JSON values" in result.errors[0].message
    assert calls.json == []
