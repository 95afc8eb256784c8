"""Parsing what `cosign download attestation` prints (stellaops.importer), and importing it.

The helpers here build real, signed DSSE envelopes and sigstore v0.3 bundles in the exact
shapes cosign v3.1.3 prints (reference/cosign-formats.md §1, §2, §5): the bundle line first,
keyless of any keyid, then the legacy envelope with ``"keyid":""``. Other import tests import
them from this module.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from stellaops.candidate import KIND_BUNDLE, KIND_DSSE
from stellaops.dsse import PAYLOAD_TYPE_INTOTO, STATEMENT_V01, pae
from stellaops.errors import StoreError
from stellaops.importer import (
    MAX_ITEMS,
    ImportSyntaxError,
    import_items,
    parse_cosign_download,
    resolve_image,
)
from stellaops.store import open_store

_KEY = ec.generate_private_key(ec.SECP256R1())
SLSA02 = "https://slsa.dev/provenance/v0.2"


def digest_of(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


IMAGE_DIGEST = digest_of("image")
OTHER_DIGEST = digest_of("other")


def statement(digests: list[str] = (IMAGE_DIGEST,), ptype: str = SLSA02, predicate: object = None) -> bytes:  # type: ignore[assignment]
    doc = {
        "_type": STATEMENT_V01,
        "subject": [
            {"name": "127.0.0.1:5000/demo/app", "digest": {d.split(":")[0]: d.split(":")[1]}} for d in digests
        ],
        "predicateType": ptype,
        "predicate": predicate if predicate is not None else {"buildType": "x", "builder": {"id": "b"}},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def sign(payload: bytes, payload_type: str = PAYLOAD_TYPE_INTOTO) -> str:
    return base64.b64encode(_KEY.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))).decode()


def envelope(payload: bytes | None = None, *, payload_type: str = PAYLOAD_TYPE_INTOTO, keyid: bool = True) -> bytes:
    """A DSSE envelope as `cosign download attestation` prints a legacy layer."""
    payload = statement() if payload is None else payload
    sig: dict[str, str] = {"keyid": "", "sig": sign(payload, payload_type)} if keyid else {"sig": sign(payload, payload_type)}
    doc = {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(), "signatures": [sig]}
    return json.dumps(doc, separators=(",", ":")).encode()


def bundle(payload: bytes | None = None, *, media_type: str = "application/vnd.dev.sigstore.bundle.v0.3+json") -> bytes:
    """A sigstore v0.3 bundle as cosign v3 prints one (key-based, no tlog entry)."""
    payload = statement() if payload is None else payload
    doc = {
        "mediaType": media_type,
        "verificationMaterial": {"publicKey": {"hint": "I/uLv74dB/tF45H2+R75zA51nPF7wAtrVQw1hjQLNAo="}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE_INTOTO,
            "signatures": [{"sig": sign(payload)}],
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def cosign_output(*docs: bytes) -> bytes:
    return b"".join(d + b"\n" for d in docs)


# ------------------------------------------------------------------------------- accepted shapes
def test_parses_cosign_download_output_bundle_then_envelope() -> None:
    b, e = bundle(), envelope()
    items = parse_cosign_download(cosign_output(b, e))
    assert [(i.kind, i.line, i.error) for i in items] == [(KIND_BUNDLE, 1, None), (KIND_DSSE, 2, None)]
    assert items[0].data == b and items[1].data == e  # exact bytes, never re-serialised
    assert all(i.predicate_type == SLSA02 and i.subject_digests == (IMAGE_DIGEST,) for i in items)


def test_parses_documents_run_together_as_curl_d_sends_them() -> None:
    # `curl -d @file` strips the file's newlines: the seed's command posts `{…}{…}`
    b, e = bundle(), envelope()
    items = parse_cosign_download(cosign_output(b, e).replace(b"\n", b""))
    assert [i.data for i in items] == [b, e]
    assert all(i.error is None for i in items)


def test_parses_one_pretty_printed_document() -> None:
    pretty = json.dumps(json.loads(envelope()), indent=2).encode()
    (item,) = parse_cosign_download(pretty + b"\n")
    assert item.error is None and item.kind == KIND_DSSE and item.data == pretty


def test_parses_a_json_array_keeping_each_element_bytes() -> None:
    b, e = bundle(), envelope()
    body = b"[\n  " + b + b" ,\n" + e + b"\n]\n"
    items = parse_cosign_download(body)
    assert [i.data for i in items] == [b, e] and [i.line for i in items] == [2, 3]


def test_tolerates_crlf_and_utf8_bom() -> None:
    items = parse_cosign_download(b"\xef\xbb\xbf" + envelope() + b"\r\n" + bundle() + b"\r\n")
    assert [i.kind for i in items] == [KIND_DSSE, KIND_BUNDLE]


def test_reads_every_sha_subject_of_a_multi_subject_statement() -> None:
    sha512 = "sha512:" + hashlib.sha512(b"x").hexdigest()
    (item,) = parse_cosign_download(envelope(statement([IMAGE_DIGEST, OTHER_DIGEST, sha512])))
    assert item.subject_digests == (IMAGE_DIGEST, OTHER_DIGEST, sha512)


def test_accepts_older_bundle_media_types_and_envelopes_without_keyid() -> None:
    items = parse_cosign_download(
        cosign_output(bundle(media_type="application/vnd.dev.sigstore.bundle+json;version=0.2"), envelope(keyid=False))
    )
    assert [i.error for i in items] == [None, None]


# ------------------------------------------------------------------------------- refused input
def test_rejects_bad_lines_with_their_line_numbers() -> None:
    good = envelope()
    body = good + b"\n" + good[:40] + b"\n" + good + b"\nnot json\n"
    with pytest.raises(ImportSyntaxError) as exc:
        parse_cosign_download(body)
    assert exc.value.reason == "REQUEST_INVALID"
    assert [p["line"] for p in exc.value.problems] == [2, 4]


def test_rejects_duplicate_keys_as_ambiguous() -> None:
    body = b'{"payloadType":"a","payloadType":"application/vnd.in-toto+json","payload":"","signatures":[]}'
    with pytest.raises(ImportSyntaxError) as exc:
        parse_cosign_download(body)
    assert "more than once" in exc.value.problems[0]["message"]


def test_rejects_nan_constants() -> None:
    with pytest.raises(ImportSyntaxError):
        parse_cosign_download(b'{"payloadType": NaN}')


def test_rejects_non_utf8() -> None:
    with pytest.raises(ImportSyntaxError) as exc:
        parse_cosign_download(b'{"payloadType": "\xff"}')
    assert exc.value.reason == "REQUEST_INVALID"


@pytest.mark.parametrize("body", [b"", b"  \n\n", b"[]"])
def test_empty_input_is_no_attestation(body: bytes) -> None:
    with pytest.raises(ImportSyntaxError) as exc:
        parse_cosign_download(body)
    assert exc.value.reason == "NO_ATTESTATION"


def test_rejects_an_array_inside_a_stream() -> None:
    with pytest.raises(ImportSyntaxError) as exc:
        parse_cosign_download(envelope() + b"\n[" + envelope() + b"]\n")
    assert exc.value.problems[0]["line"] == 2


def test_rejects_trailing_data_after_an_array() -> None:
    with pytest.raises(ImportSyntaxError):
        parse_cosign_download(b"[" + envelope() + b"] {}")


def test_rejects_more_documents_than_the_limit() -> None:
    with pytest.raises(ImportSyntaxError) as exc:
        parse_cosign_download(b"{}\n" * (MAX_ITEMS + 1))
    assert exc.value.reason == "LIMIT_EXCEEDED"


def _error_of(doc: bytes) -> str:
    (item,) = parse_cosign_download(doc)
    assert item.error is not None and not item.kind
    return item.error.reason


def test_rejects_a_scalar_document() -> None:
    assert _error_of(b'"hello"') == "MALFORMED_ENVELOPE"


def test_rejects_an_object_that_is_neither_envelope_nor_bundle() -> None:
    assert _error_of(b'{"hello": "world"}') == "MALFORMED_ENVELOPE"


def test_rejects_a_payload_type_other_than_in_toto() -> None:
    assert _error_of(envelope(payload_type="text/plain")) == "PAYLOAD_TYPE_INVALID"


def test_rejects_a_payload_that_is_not_a_statement() -> None:
    assert _error_of(envelope(b'{"hello":"world"}')) == "MALFORMED_STATEMENT"


def test_rejects_a_statement_with_unknown_fields() -> None:
    doc = json.loads(statement())
    doc["extraTop"] = 1
    assert _error_of(envelope(json.dumps(doc).encode())) == "MALFORMED_STATEMENT"


def test_rejects_a_statement_with_only_sha1_subjects() -> None:
    doc = json.loads(statement())
    doc["subject"] = [{"name": "x", "digest": {"sha1": "a" * 40}}]
    assert _error_of(envelope(json.dumps(doc).encode())) == "MALFORMED_STATEMENT"


def test_rejects_url_safe_base64_payload() -> None:
    payload = statement(predicate={"k": "???>>>"})
    doc = json.loads(envelope(payload))
    doc["payload"] = base64.urlsafe_b64encode(payload).decode()
    assert "-" in doc["payload"] or "_" in doc["payload"]
    assert _error_of(json.dumps(doc).encode()) == "MALFORMED_ENVELOPE"


def test_rejects_an_envelope_without_signatures() -> None:
    doc = json.loads(envelope())
    doc["signatures"] = []
    assert _error_of(json.dumps(doc).encode()) == "MALFORMED_ENVELOPE"


def test_rejects_a_bundle_with_an_unknown_media_type() -> None:
    assert _error_of(bundle(media_type="application/vnd.dev.sigstore.bundle.v9+json")) == "MALFORMED_ENVELOPE"


def test_rejects_a_message_signature_bundle() -> None:
    doc = json.loads(bundle())
    del doc["dsseEnvelope"]
    doc["messageSignature"] = {"messageDigest": {"algorithm": "SHA2_256", "digest": "AA=="}, "signature": "AA=="}
    assert _error_of(json.dumps(doc).encode()) == "MALFORMED_ENVELOPE"


def test_rejects_a_bundle_with_unknown_fields() -> None:
    doc = json.loads(bundle())
    doc["extra"] = {}
    assert _error_of(json.dumps(doc).encode()) == "MALFORMED_ENVELOPE"


def test_rejects_a_bundle_without_verification_material() -> None:
    doc = json.loads(bundle())
    del doc["verificationMaterial"]
    assert _error_of(json.dumps(doc).encode()) == "MALFORMED_ENVELOPE"


def test_a_bad_document_does_not_hide_the_good_ones() -> None:
    items = parse_cosign_download(cosign_output(envelope(), b'{"hello":1}', bundle()))
    assert [i.error is None for i in items] == [True, False, True]


# ------------------------------------------------------------------------------- resolve_image
def test_resolve_image_pinned_by_digest_needs_no_registry() -> None:
    def no_registry() -> None:
        raise AssertionError("the registry must not be asked")

    image = f"127.0.0.1:5000/demo/app@{IMAGE_DIGEST}"
    assert resolve_image(image, None, no_registry) == (image, IMAGE_DIGEST)


def test_resolve_image_takes_cosign_style_bare_hex_digest() -> None:
    assert resolve_image(None, IMAGE_DIGEST.split(":")[1], None) == (None, IMAGE_DIGEST)


def test_resolve_image_refuses_disagreeing_digests() -> None:
    with pytest.raises(Exception) as exc:
        resolve_image(f"127.0.0.1:5000/demo/app@{IMAGE_DIGEST}", OTHER_DIGEST, None)
    assert exc.value.reason == "SUBJECT_MISMATCH"  # type: ignore[attr-defined]


def test_resolve_image_refuses_a_malformed_digest() -> None:
    with pytest.raises(Exception) as exc:
        resolve_image(None, "sha256:1234", None)
    assert getattr(exc.value, "reason", "") in ("INVALID_REFERENCE", "REQUEST_INVALID")


def test_resolve_image_refuses_a_malformed_reference() -> None:
    with pytest.raises(Exception) as exc:
        resolve_image("UPPER/Case:://", None, None)
    assert getattr(exc.value, "reason", "") == "INVALID_REFERENCE"


# ------------------------------------------------------------------------------- import_items
@pytest.fixture()
def store(tmp_path):  # type: ignore[no-untyped-def]
    s = open_store(f"sqlite:///{tmp_path}/store.db")
    yield s
    s.close()


def test_import_with_image_digest_stores_under_that_digest_only(store) -> None:  # type: ignore[no-untyped-def]
    items = parse_cosign_download(envelope(statement([IMAGE_DIGEST, OTHER_DIGEST])))
    report = import_items(store, "acme", items, image="img", image_digest=IMAGE_DIGEST)
    assert report.to_json()["imported"] == 1 and report.results[0]["subjects"] == [IMAGE_DIGEST]
    assert store.find_by_digest(IMAGE_DIGEST) and not store.find_by_digest(OTHER_DIGEST)


def test_import_without_image_stores_under_every_subject(store) -> None:  # type: ignore[no-untyped-def]
    report = import_items(store, "acme", parse_cosign_download(envelope(statement([IMAGE_DIGEST, OTHER_DIGEST]))))
    assert report.imported == 1
    assert len(store.find_by_digest(IMAGE_DIGEST)) == 1 and len(store.find_by_digest(OTHER_DIGEST)) == 1


def test_import_rejects_an_envelope_about_another_image(store) -> None:  # type: ignore[no-untyped-def]
    items = parse_cosign_download(cosign_output(envelope(statement([OTHER_DIGEST])), bundle()))
    report = import_items(store, "acme", items, image_digest=IMAGE_DIGEST)
    assert [r["status"] for r in report.results] == ["error", "imported"]
    assert report.results[0]["error"]["reason"] == "SUBJECT_MISMATCH"
    assert OTHER_DIGEST in report.results[0]["error"]["message"]
    assert store.find_by_digest(OTHER_DIGEST) == []


def test_reimport_is_a_duplicate_even_reserialised(store) -> None:  # type: ignore[no-untyped-def]
    e = envelope()
    first = import_items(store, "acme", parse_cosign_download(e))
    pretty = json.dumps(json.loads(e), indent=4, sort_keys=True).encode()
    second = import_items(store, "acme", parse_cosign_download(cosign_output(e, pretty)))
    assert [r["status"] for r in second.results] == ["duplicate", "duplicate"]
    assert {r["id"] for r in second.results} == {first.results[0]["id"]}
    assert len(store.find_by_digest(IMAGE_DIGEST)) == 1


def test_same_envelope_twice_in_one_body_is_stored_once(store) -> None:  # type: ignore[no-untyped-def]
    e = envelope()
    report = import_items(store, "acme", parse_cosign_download(cosign_output(e, e)))
    assert [r["status"] for r in report.results] == ["imported", "duplicate"]


def test_unavailable_store_aborts_the_import_as_transient(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = open_store(f"sqlite:///{tmp_path}/store.db")
    s.close()
    with pytest.raises(StoreError) as exc:
        import_items(s, "acme", parse_cosign_download(envelope()))
    assert exc.value.reason == "STORE_UNAVAILABLE" and exc.value.transient


# ------------------------------------------------------------------------------- robustness
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from stellaops.errors import StellaError  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _parse_or_refuse(body: bytes) -> None:
    try:
        items = parse_cosign_download(body)
    except StellaError:
        return
    for item in items:
        assert (item.error is None) == bool(item.kind)
        assert item.data and isinstance(item.data, bytes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(body: bytes) -> None:
    _parse_or_refuse(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json_values, max_size=5), st.sampled_from([b"\n", b"", b" \r\n"]))
def test_arbitrary_json_documents_are_parsed_or_refused_per_document(docs: list, sep: bytes) -> None:  # type: ignore[type-arg]
    _parse_or_refuse(sep.join(json.dumps(d).encode() for d in docs))


_FIXED_ENVELOPE = envelope()  # one signature: hypothesis needs the same input on every run


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_envelopes_are_parsed_or_refused_never_crash(data) -> None:  # type: ignore[no-untyped-def]
    raw = bytearray(_FIXED_ENVELOPE)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _parse_or_refuse(bytes(raw))
