"""Image reference grammar and normalisation (reference.py)."""

from __future__ import annotations

import pytest
from stellaops.errors import InvalidReferenceError
from stellaops.reference import (
    Reference,
    cosign_attestation_tag,
    parse_reference,
    referrers_tag,
    registry_host,
    registry_port,
)

D = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("library/nginx", "docker.io", "library/nginx", "latest", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("registry-1.docker.io/org/app", "docker.io", "org/app", "latest", None),
        ("org/app:v1", "docker.io", "org/app", "v1", None),
        ("registry.example.com/app:v1.0.0", "registry.example.com", "app", "v1.0.0", None),
        ("registry.example.com/team/sub/app", "registry.example.com", "team/sub/app", "latest", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        ("127.0.0.1:5555/demo/app:v1", "127.0.0.1:5555", "demo/app", "v1", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("[fe80::1]/app", "[fe80::1]", "app", "latest", None),
        (f"registry.example.com/app@{D}", "registry.example.com", "app", None, D),
        (f"registry.example.com/app:v1@{D}", "registry.example.com", "app", "v1", D),
        (f"localhost:5000/a/b:t@{D}", "localhost:5000", "a/b", "t", D),
        ("Registry.Example.COM/app", "registry.example.com", "app", "latest", None),
        ("reg.io/a_b/c__d/e-f/g.h/i---j", "reg.io", "a_b/c__d/e-f/g.h/i---j", "latest", None),
        ("reg.io/app:_under.score-Tag", "reg.io", "app", "_under.score-Tag", None),
    ],
)
def test_parses_and_normalises(text: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    # The canonical form parses back to the same reference.
    assert parse_reference(str(ref)) == ref


def test_canonical_string_and_name() -> None:
    ref = parse_reference("nginx")
    assert str(ref) == "docker.io/library/nginx:latest"
    assert ref.name == "docker.io/library/nginx"
    pinned = ref.with_digest(D)
    assert str(pinned) == f"docker.io/library/nginx:latest@{D}"
    assert pinned.identifier == D
    assert ref.identifier == "latest"


def test_reference_is_frozen() -> None:
    ref = parse_reference("reg.io/app")
    with pytest.raises(AttributeError):
        ref.tag = "other"  # type: ignore[misc]
    assert isinstance(ref, Reference)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("   ", "whitespace"),
        ("reg.io/app name", "whitespace"),
        ("reg.io/app\n", "whitespace"),
        ("https://reg.io/app", "scheme"),
        ("reg.io/App", "'App'"),
        ("reg.io//app", "empty path component"),
        ("reg.io/app/", "empty path component"),
        ("reg.io/-app", "'-app'"),
        ("reg.io/app:", "tag ''"),
        ("reg.io/app:-bad", "tag '-bad'"),
        ("reg.io/app:" + "t" * 129, "tag"),
        ("reg.io/app@sha256:abc", "64"),
        ("reg.io/app@md5:" + "a" * 32, "'md5'"),
        ("reg.io/app@sha256:" + "A" * 64, "lower-case hex"),
        ("reg.io/app@" + "a" * 64, "no algorithm"),
        ("reg.io/app@sha256:" + "a" * 64 + "@sha256:" + "b" * 64, "more than one '@'"),
        ("reg.io:0/app", "port '0'"),
        ("reg.io:99999/app", "port '99999'"),
        ("reg.io:port/app", "port 'port'"),
        ("reg.io:/app", "empty port"),
        ("reg..io/app", "host 'reg..io'"),
        ("-reg.io/app", "host '-reg.io'"),
        ("[::1/app", "unclosed"),
        ("[zz::1]/app", "IPv6"),
        (":tag", "no repository"),
        ("reg.io/" + "a" * 300, "longer than 255"),
        ("x" * 5000, "characters long"),
    ],
)
def test_rejects_bad_reference_naming_the_part(text: str, names: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert info.value.reason == "INVALID_REFERENCE"
    assert names in info.value.detail
    assert info.value.hint


def test_single_component_is_a_docker_hub_repository() -> None:
    # Without a '/', even a dotted name is a repository (Docker's rule), not a registry.
    assert parse_reference("reg.io").name == "docker.io/library/reg.io"
    assert parse_reference("localhost:5000").name == "docker.io/library/localhost"


def test_rejects_non_string() -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(None)  # type: ignore[arg-type]


def test_with_digest_validates() -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference("reg.io/app").with_digest("sha256:short")


def test_tags_for_digests() -> None:
    assert referrers_tag(D) == "sha256-" + D[7:]
    assert cosign_attestation_tag(D) == "sha256-" + D[7:] + ".att"
    with pytest.raises(InvalidReferenceError):
        referrers_tag("sha256:nothex")


@pytest.mark.parametrize(
    ("registry", "host", "port"),
    [("reg.io", "reg.io", None), ("reg.io:5000", "reg.io", 5000), ("[::1]:5000", "::1", 5000), ("[::1]", "::1", None)],
)
def test_registry_host_and_port(registry: str, host: str, port: int | None) -> None:
    assert registry_host(registry) == host
    assert registry_port(registry) == port


def test_upper_case_single_label_registry_round_trips() -> None:
    # "A/0": the upper case makes "A" a registry (Docker's rule); the canonical form must keep
    # it, or re-parsing would read docker.io/a/0 (found by the hardening fuzzer).
    ref = parse_reference("A/0")
    assert (ref.registry, ref.repository) == ("A", "0")
    assert parse_reference(str(ref)) == ref


_ALPHABET = "aA0:/@._-[]z9Lsha256" + "lcoht"


def test_any_text_parses_to_a_round_trip_or_a_named_error() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=1500, deadline=None, derandomize=True)
    @given(st.text(alphabet=_ALPHABET, max_size=40))
    def check(text: str) -> None:
        try:
            ref = parse_reference(text)
        except InvalidReferenceError as exc:
            assert exc.detail and exc.reason == "INVALID_REFERENCE"
            return
        assert parse_reference(str(ref)) == ref

    check()
