"""Bounded fuzzing of every parser that reads untrusted input (hypothesis; a few seconds
each). Property: the function returns, or raises only its documented error class; nothing
else escapes, nothing hangs (per-example ``deadline``, per-test timeout). Longer runs:
``scripts/fuzz.py`` (``make fuzz``), over the same targets.

Documented classes: ``parse_reference`` → ``InvalidReferenceError``; ``parse_envelope`` →
``MalformedEnvelope`` (``LIMIT_EXCEEDED`` for too many signatures); ``parse_statement`` →
``MalformedStatement``; manifests/descriptors → ``RegistryError``;
``parse_provider_request`` → ``ValueError`` (documented in its docstring);
``parse_cosign_download`` → ``ImportSyntaxError`` (a ``StellaError``), per-document errors
in ``Item.error``; ``parse_config`` → ``ConfigError``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stellaops import dsse, gatekeeper, importer
from stellaops.config import parse_config
from stellaops.errors import ConfigError, InvalidReferenceError, RegistryError, StellaError
from stellaops.reference import registry_host, registry_port
from stellaops.registry import Manifest, RegistryPolicy, _next_link, _parse_json_object
from stellaops.registry_auth import parse_www_authenticate
from tests.hardening import fuzz_targets as ft

# make test: a few seconds per target. scripts/fuzz.py (make fuzz) raises both through the env.
EXAMPLES = int(os.environ.get("STELLAOPS_FUZZ_EXAMPLES", "250"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(milliseconds=2000),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TIMEOUT = pytest.mark.timeout(int(os.environ.get("STELLAOPS_FUZZ_TIMEOUT", "90")))

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@TIMEOUT
@FUZZ
@given(ft.references)
@example("0x7f.1/app:v1")
@example("[::1]:5000/app@sha256:" + "a" * 64)
@example("a" * 5000)
@example("localhost:65536/x")
@example("docker.io/app")
def test_parse_reference_only_invalid_reference_error(text: str) -> None:
    ft.check_reference(text)


@TIMEOUT
@FUZZ
@given(ft.references)
def test_policy_check_on_any_parsed_reference_raises_only_registry_error(text: str) -> None:
    """No I/O, only RegistryError, and a non-public IP literal is always refused."""
    import ipaddress

    from stellaops.reference import parse_reference

    try:
        ref = parse_reference(text)
    except InvalidReferenceError:
        return
    registry_host(ref.registry), registry_port(ref.registry)
    policy = RegistryPolicy(allow=("*",), allow_private=False)
    try:
        policy.check(ref.registry)
    except RegistryError as exc:
        assert exc.reason == "REGISTRY_NOT_ALLOWED"
        return
    try:
        ip = ipaddress.ip_address(registry_host(ref.registry))
    except ValueError:
        return
    assert ip.is_global, f"{ref.registry} passed the policy with a non-public address"


@TIMEOUT
@FUZZ
@given(st.one_of(ft.envelope_docs().map(lambda d: json.dumps(d).encode()), st.binary(max_size=80)))
@example(DEEP_ARRAY)
@example(DEEP_OBJECT)
@example(b'{"payloadType":"a","payloadType":"b","payload":"","signatures":[{"sig":"AA=="}]}')
@example(b"\xff\xfe{}")
@example(b'{"payloadType":"x","payload":"","signatures":[{"sig":"AA=="}],"payload":NaN}')
def test_parse_envelope_only_malformed_envelope(data: bytes) -> None:
    try:
        env = dsse.parse_envelope(data)
    except dsse.MalformedEnvelope as exc:
        assert exc.reason in ("MALFORMED_ENVELOPE", "LIMIT_EXCEEDED")
        return
    assert env.signatures and len(env.signatures) <= dsse.MAX_SIGNATURES
    assert all(s.sig for s in env.signatures)


@TIMEOUT
@FUZZ
@given(st.one_of(ft.statement_docs().map(lambda d: json.dumps(d).encode()), st.binary(max_size=80)))
@example(DEEP_ARRAY)
@example(DEEP_OBJECT)
@example(b'{"_type":"https://in-toto.io/Statement/v1","subject":[],"subject":[]}')
def test_parse_statement_only_malformed_statement(data: bytes) -> None:
    try:
        st_ = dsse.parse_statement(data)
    except dsse.MalformedStatement:
        return
    assert st_.type in dsse.STATEMENT_TYPES and st_.subjects and st_.predicate_type
    try:
        dsse.require_subject(st_, "sha256:" + ft.HEX64)
    except dsse.SubjectMismatch:
        pass


@TIMEOUT
@FUZZ
@given(ft.manifest_docs())
def test_manifest_properties_raise_only_registry_error(doc: dict) -> None:
    ft.check_manifest_doc(doc)


@TIMEOUT
@FUZZ
@given(ft.descriptor_docs())
def test_descriptor_parse_only_registry_error_and_round_trips(doc: object) -> None:
    ft.check_descriptor_doc(doc)


@TIMEOUT
@FUZZ
@given(st.binary(max_size=100))
@example(DEEP_ARRAY)
@example(b'{"a":1,"a":2}')
@example(b"\xc3\x28")
def test_manifest_json_parser_only_registry_error(data: bytes) -> None:
    try:
        doc = _parse_json_object(data, "fuzz")
    except RegistryError as exc:
        assert exc.reason == "REGISTRY_ERROR"
        return
    assert isinstance(doc, dict)


@TIMEOUT
@FUZZ
@given(ft.manifest_docs())
def test_referrer_classification_raises_only_registry_error(doc: dict) -> None:
    from stellaops.discovery import _manifest_kind

    m = Manifest(digest="sha256:" + ft.HEX64, media_type="application/vnd.oci.image.manifest.v1+json", raw=b"{}", doc=doc)
    try:
        assert _manifest_kind(m) in ("bundle", "dsse", "unrelated")
    except RegistryError:
        pass


def test_referrer_with_string_config_is_a_registry_error_not_a_crash() -> None:
    from stellaops.discovery import _manifest_kind

    m = Manifest(digest="sha256:" + ft.HEX64, media_type="application/vnd.oci.image.manifest.v1+json", raw=b"{}",
                 doc={"config": "application/vnd.oci.empty.v1+json", "layers": []})  # fmt: skip
    try:
        _manifest_kind(m)
    except RegistryError:
        pass


@TIMEOUT
@FUZZ
@given(ft.provider_requests())
@example(DEEP_ARRAY)
@example(b'{"apiVersion":"externaldata.gatekeeper.sh/v1beta1","kind":"ProviderRequest","request":{"keys":' + b"[" * 900 + b"]" * 900 + b"}}")
def test_parse_provider_request_only_value_error(body: bytes) -> None:
    try:
        keys = gatekeeper.parse_provider_request(body, max_keys=3)
    except ValueError:
        return
    assert isinstance(keys, list) and len(keys) <= 3
    for k in keys:  # the blueprint answers a non-string key under its JSON form
        json.dumps(k)


@TIMEOUT
@FUZZ
@given(ft.cosign_downloads())
@example(DEEP_ARRAY)
@example(b"{}" * 1500)
@example(b"\xef\xbb\xbf{}")
@example(b"[" + b"{}," * 1200 + b"{}]")
def test_parse_cosign_download_only_import_errors(data: bytes) -> None:
    try:
        items = importer.parse_cosign_download(data)
    except importer.ImportSyntaxError as exc:
        assert exc.reason in ("REQUEST_INVALID", "LIMIT_EXCEEDED", "NO_ATTESTATION")
        return
    assert 0 < len(items) <= importer.MAX_ITEMS
    for item in items:
        assert (item.error is None) == bool(item.kind)
        if item.error is not None:
            assert isinstance(item.error, StellaError)


@TIMEOUT
@FUZZ
@given(ft.config_texts())
@example("server: {deadlineSeconds: -1}")
@example("importApi: {tokens: [{tenant: a}]}")
@example("a: &a [*a]")
def test_parse_config_only_config_error(text: str) -> None:
    try:
        parse_config(text, env={}, base_dir="/nonexistent-stellaops-fuzz")
    except ConfigError:
        pass


def test_parse_config_deeply_nested_yaml_is_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_config("a: " + "[" * 5000 + "]" * 5000, env={})


@pytest.mark.parametrize("text", ["attestation: {authorities: [null]}", "importApi: {tokens: [null]}"])
def test_parse_config_null_list_items_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text, env={})


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_parse_config_refuses_non_finite_durations(value: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(f"server: {{deadlineSeconds: {value}}}", env={})


@TIMEOUT
@FUZZ
@given(st.text(max_size=80))
@example('Bearer realm="a\\')
@example("=" * 50)
@example('Bearer realm="x",service="y",scope="repository:a:pull",,,')
def test_www_authenticate_parser_terminates(header: str) -> None:
    for ch in parse_www_authenticate(header):
        assert isinstance(ch.scheme, str) and all(isinstance(v, str) for v in ch.params.values())


@TIMEOUT
@FUZZ
@given(st.text(max_size=80))
@example('<a>; rel="next", <b>; rel=next')
def test_link_header_parser_terminates(header: str) -> None:
    assert isinstance(_next_link(header), str)


@TIMEOUT
@FUZZ
@given(st.one_of(ft.envelope_docs().map(lambda d: json.dumps(d).encode()), st.binary(max_size=60)),
       st.sampled_from(["dsse", "bundle"]))  # fmt: skip
def test_verify_candidate_never_raises_and_never_verifies_noise(data: bytes, kind: str) -> None:
    """Random envelopes against a real key authority: verify_candidate never raises and never
    says verified (no key signed any of this)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from stellaops.candidate import Candidate
    from stellaops.trust import KeyAuthority, TrustConfig
    from stellaops.verify import keys
    from stellaops.verify.attestation import verify_candidate

    if kind == "bundle":
        try:
            env = json.loads(data)
        except ValueError:
            env = None
        data = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {}, "dsseEnvelope": env}).encode()
    pub = _KEY.public_key()
    trust = TrustConfig(authorities=(KeyAuthority(name="k", public_key=pub, key_id=keys.key_id(pub)),), require_tlog=False)
    result = verify_candidate(Candidate(kind=kind, data=data, source="cosign-tag", attached_to=""), "sha256:" + ft.HEX64, trust)
    assert result.verified is False and result.errors
    _ = ec


def _make_key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


_KEY = _make_key()
