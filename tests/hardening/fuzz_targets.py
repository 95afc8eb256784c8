"""Fuzz targets and input strategies, shared by the bounded tests (``test_fuzz.py``, run by
``make test``) and the long runs (``scripts/fuzz.py``, ``make fuzz``, with atheris when it is
installed, else hypothesis with a large example budget).

Each target takes untrusted input and must either return or raise one of its documented
error classes; anything else escaping is a bug. ``TARGETS`` maps a name to
``(callable(bytes), allowed exception classes)`` for byte-level fuzzers (atheris); the
hypothesis strategies below generate structured near-valid inputs that reach deeper.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from stellaops import dsse, gatekeeper, importer
from stellaops.config import parse_config
from stellaops.errors import StellaError
from stellaops.reference import parse_reference
from stellaops.registry import OCI_INDEX, OCI_MANIFEST, Descriptor, Manifest, _next_link, _parse_json_object
from stellaops.registry_auth import parse_www_authenticate

HEX64 = "a" * 64

# --------------------------------------------------------------------------- strategies

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=16,
)

_REF_CHARS = "abcxyzAZ0189.-_:/@[]"
hosts = st.one_of(
    st.sampled_from(
        ["registry.example.com", "localhost", "127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "[fd00:ec2::254]",
         "0x7f.1", "2130706433", "docker.io", "index.docker.io", "Reg.Example.COM", "a-b.c", "x..y", "-a.b", "[::ffff:127.0.0.1]"]
    ),
    st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9-]{1,8}){0,3}", fullmatch=True),
)  # fmt: skip
ports = st.one_of(st.just(""), st.sampled_from([":5000", ":0", ":65535", ":65536", ":", ":x", ":08080"]))
paths = st.lists(st.one_of(st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*", fullmatch=True), st.text(_REF_CHARS, max_size=6)), min_size=0, max_size=4)
tags = st.one_of(st.just(""), st.from_regex(r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True), st.text(":" + _REF_CHARS, max_size=8))
digests = st.one_of(
    st.just(""), st.just("@sha256:" + HEX64), st.just("@sha512:" + "b" * 128), st.just("@md5:" + "c" * 32),
    st.just("@sha256:" + "A" * 64), st.text("@sha256:0af", max_size=70),
)  # fmt: skip
references = st.one_of(
    st.text(_REF_CHARS, max_size=60),
    st.text(max_size=40),
    st.builds(lambda h, p, path, t, d: h + p + ("/" if path else "") + "/".join(path) + t + d, hosts, ports, paths, tags, digests),
)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def statement_docs() -> st.SearchStrategy[dict[str, Any]]:
    digest_maps = st.one_of(
        st.just({"sha256": HEX64}),
        st.dictionaries(st.sampled_from(["sha256", "sha512", "md5", "SHA256", ""]), st.one_of(st.text("0af", max_size=70), json_scalars), max_size=3),
        json_values,
    )  # fmt: skip
    subject = st.one_of(st.fixed_dictionaries({"name": st.text(max_size=10), "digest": digest_maps}), json_values)
    return st.fixed_dictionaries(
        {},
        optional={
            "_type": st.one_of(st.sampled_from(dsse.STATEMENT_TYPES), json_scalars),
            "subject": st.one_of(st.lists(subject, max_size=3), json_values),
            "predicateType": st.one_of(st.just("stellaops.io/predicates/scan-result@v1"), json_scalars),
            "predicate": json_values,
            "predicate_type": st.text(max_size=5),
        },
    )


def envelope_docs() -> st.SearchStrategy[dict[str, Any]]:
    payload = st.one_of(
        statement_docs().map(lambda d: _b64(json.dumps(d).encode())),
        st.binary(max_size=40).map(_b64),
        st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()),
        st.text(max_size=20),
        json_values,
    )
    sig = st.one_of(
        st.fixed_dictionaries({"sig": st.binary(max_size=80).map(_b64)}, optional={"keyid": st.one_of(st.text(max_size=5), json_scalars)}),
        st.fixed_dictionaries({"sig": st.one_of(st.text(max_size=12), json_scalars)}),
        json_values,
    )  # fmt: skip
    return st.fixed_dictionaries(
        {},
        optional={
            "payloadType": st.one_of(st.just(dsse.PAYLOAD_TYPE_INTOTO), json_scalars),
            "payload": payload,
            "signatures": st.one_of(st.lists(sig, max_size=20), json_values),
            "extra": json_scalars,
        },
    )


def descriptor_docs() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "mediaType": st.one_of(st.sampled_from([OCI_MANIFEST, OCI_INDEX, "application/vnd.dsse.envelope.v1+json"]), json_scalars),
                "digest": st.one_of(st.just("sha256:" + HEX64), st.text("sha256:0af", max_size=72), json_scalars),
                "size": st.one_of(st.integers(min_value=-5, max_value=2**40), json_scalars),
                "artifactType": st.one_of(st.just("application/vnd.dev.sigstore.bundle.v0.3+json"), json_scalars),
                "annotations": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3), json_values),
                "platform": json_values,
            },
        ),
        json_values,
    )


def manifest_docs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "schemaVersion": json_scalars,
            "mediaType": st.one_of(st.sampled_from([OCI_MANIFEST, OCI_INDEX]), json_scalars),
            "artifactType": st.one_of(st.just("application/vnd.dev.sigstore.bundle.v0.3+json"), json_scalars),
            "config": descriptor_docs(),
            "layers": st.one_of(st.lists(descriptor_docs(), max_size=3), json_values),
            "manifests": st.one_of(st.lists(descriptor_docs(), max_size=3), json_values),
            "subject": descriptor_docs(),
            "annotations": json_values,
        },
    )


def provider_requests() -> st.SearchStrategy[bytes]:
    keys = st.one_of(st.lists(st.one_of(references, json_values), max_size=5), json_values)
    doc = st.fixed_dictionaries(
        {},
        optional={
            "apiVersion": st.one_of(st.sampled_from(gatekeeper.ACCEPTED_API_VERSIONS), json_scalars),
            "kind": st.one_of(st.just("ProviderRequest"), json_scalars),
            "request": st.one_of(st.fixed_dictionaries({}, optional={"keys": keys}), json_values),
        },
    )
    return st.one_of(doc.map(lambda d: json.dumps(d).encode()), st.binary(max_size=60))


def cosign_downloads() -> st.SearchStrategy[bytes]:
    bundle = envelope_docs().map(
        lambda e: {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {}, "dsseEnvelope": e}
    )
    docs = st.lists(st.one_of(envelope_docs(), bundle, json_values), max_size=4)
    joiners = st.sampled_from(["\n", "", " ", "\r\n", ",", "\n\n"])
    as_lines = st.builds(lambda ds, j: j.join(json.dumps(d) for d in ds).encode(), docs, joiners)
    as_array = docs.map(lambda ds: json.dumps(ds).encode())
    return st.one_of(as_lines, as_array, st.binary(max_size=60), st.text(max_size=60).map(str.encode))


_CONFIG_KEYS = {
    "attestation": ["trustRoots", "authorities", "requireTlog"],
    "registries": ["allow", "insecure", "allowPrivate", "auth"],
    "server": ["host", "port", "tls", "deadlineSeconds", "maxKeys", "maxKeyLength", "maxBodyBytes", "workers", "threads"],
    "limits": ["manifestBytes", "blobBytes", "referrers", "retries", "connectTimeoutSeconds"],
    "cache": ["ttlSeconds", "negativeTtlSeconds", "redisUrl", "maxBytes"],
    "store": ["dsn"],
    "importApi": ["tokens", "maxBodyBytes"],
    "logging": ["level", "format"],
}


def config_texts() -> st.SearchStrategy[str]:
    import yaml

    yaml_scalars = st.one_of(json_scalars, st.sampled_from([".nan", ".inf", "-1", "0", "~", "yes", "null", "[]", "{}", "*a"]))
    section = st.sampled_from(sorted(_CONFIG_KEYS)).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.one_of(
                st.dictionaries(st.sampled_from(_CONFIG_KEYS[name]), st.one_of(json_values, st.lists(json_values, max_size=2)), max_size=3),
                json_values,
            ),
        )
    )
    docs = st.lists(section, max_size=4).map(dict)
    as_yaml = docs.map(lambda d: yaml.safe_dump(d))
    raw = st.builds(lambda k, v: f"{k}: {v}\n", st.sampled_from(sorted(_CONFIG_KEYS)), yaml_scalars.map(str))
    return st.one_of(as_yaml, raw, st.text(max_size=60))


# --------------------------------------------------------------------------- targets


def check_reference(text: str) -> None:
    """parse_reference: a Reference that round-trips, or InvalidReferenceError."""
    from stellaops.errors import InvalidReferenceError

    try:
        ref = parse_reference(text)
    except InvalidReferenceError:
        return
    again = parse_reference(str(ref))
    assert again == ref, (text, ref, again)


def check_manifest_doc(doc: dict[str, Any]) -> None:
    """Manifest properties raise only RegistryError on hostile documents."""
    m = Manifest(digest="sha256:" + HEX64, media_type=OCI_MANIFEST, raw=json.dumps(doc).encode(), doc=doc)
    for attr in ("is_index", "artifact_type", "annotations", "layers", "manifests", "config", "subject"):
        try:
            getattr(m, attr)
        except StellaError:
            pass
    m.descriptor()


def check_descriptor_doc(doc: Any) -> None:
    from stellaops.errors import RegistryError

    try:
        d = Descriptor.from_json(doc, where="fuzz")
    except RegistryError:
        return
    Descriptor.from_json(d.to_json(), where="fuzz round trip")


def _bytes_target(fn: Callable[[bytes], Any]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        fn(data)

    return run


def _config_bytes(data: bytes) -> None:
    parse_config(data.decode("utf-8", "replace"), env={})


def _reference_bytes(data: bytes) -> None:
    check_reference(data.decode("utf-8", "replace"))


def _manifest_bytes(data: bytes) -> None:
    from stellaops.errors import RegistryError

    try:
        doc = _parse_json_object(data, "fuzz manifest")
    except RegistryError:
        return
    check_manifest_doc(doc)


# name -> (target over bytes, exception classes that may escape)
TARGETS: dict[str, tuple[Callable[[bytes], None], tuple[type[BaseException], ...]]] = {
    "reference": (_reference_bytes, ()),
    "envelope": (_bytes_target(dsse.parse_envelope), (dsse.MalformedEnvelope, StellaError)),
    "statement": (_bytes_target(dsse.parse_statement), (dsse.MalformedStatement, StellaError)),
    "manifest": (_manifest_bytes, ()),
    "provider_request": (_bytes_target(lambda b: gatekeeper.parse_provider_request(b, max_keys=100)), (ValueError,)),
    "cosign_download": (_bytes_target(importer.parse_cosign_download), (StellaError,)),
    "config": (_config_bytes, (StellaError,)),
    "www_authenticate": (_bytes_target(lambda b: parse_www_authenticate(b.decode("utf-8", "replace"))), (StellaError,)),
    "link_header": (_bytes_target(lambda b: _next_link(b.decode("utf-8", "replace"))), ()),
}


def known_bug(exc: BaseException) -> str:
    """The name of a known, reported, still-open bug this exception is (see the xfail tests),
    or "" for a new finding. Long runs skip known bugs so they can look for new ones. Every
    parser bug found so far has been fixed, so none is skipped; add an entry here (with its
    xfail test) when a new one is reported but not yet fixed."""
    return ""
