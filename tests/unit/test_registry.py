"""Registry client pieces that need no server: policy, SSRF guard, headers, Docker config, deadline.

SSRF refusals are proven *before* any connection: name resolution is replaced by a stub that
answers the forbidden address, and the socket layer is replaced by one that fails the test if
it is ever asked to connect.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from stellaops import registry as regmod
from stellaops.errors import ConfigError, RegistryError
from stellaops.registry import (
    Descriptor,
    Manifest,
    RegistryClient,
    RegistryLimits,
    RegistryPolicy,
    _next_link,
    deadline_scope,
    remaining_time,
)
from stellaops.registry_auth import (
    Credentials,
    DockerConfig,
    StaticCredentials,
    parse_www_authenticate,
)

D = "sha256:" + "ab" * 32


# -- policy ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patterns", "registry", "allowed"),
    [
        (("*",), "anything.example:5000", True),
        (("registry.example.com",), "registry.example.com", True),
        (("registry.example.com",), "registry.example.com:443", True),  # no port in pattern = any port
        (("registry.example.com",), "evil-registry.example.com", False),
        (("registry.example.com",), "registry.example.com.evil.io", False),
        (("*.internal.example.com",), "a.internal.example.com", True),
        (("*.internal.example.com",), "internal.example.com", False),
        (("localhost:5000",), "localhost:5000", True),
        (("localhost:5000",), "localhost:5001", False),
        (("localhost:5000",), "localhost", False),
        (("127.0.0.1:*",), "127.0.0.1:1234", True),
        (("[::1]:5000",), "[::1]:5000", True),
        ((), "registry.example.com", False),
    ],
)
def test_allow_globs(patterns: tuple[str, ...], registry: str, allowed: bool) -> None:
    policy = RegistryPolicy(allow=patterns, allow_private=True)
    assert policy.is_allowed(registry) is allowed
    if not allowed:
        with pytest.raises(RegistryError) as info:
            policy.check(registry)
        assert info.value.reason == "REGISTRY_NOT_ALLOWED"
        assert registry in info.value.detail


@pytest.mark.parametrize(
    ("policy", "registry", "scheme"),
    [
        (RegistryPolicy(), "registry.example.com", "https"),
        (RegistryPolicy(), "localhost:5000", "http"),
        (RegistryPolicy(), "127.0.0.1:5000", "http"),
        (RegistryPolicy(), "127.8.9.10", "http"),
        (RegistryPolicy(), "[::1]:5000", "http"),
        (RegistryPolicy(plain_http_loopback=False), "localhost:5000", "https"),
        (RegistryPolicy(insecure=("*.lan",)), "reg.lan:80", "http"),
        (RegistryPolicy(insecure=("*.lan",)), "reg.lan.example.com", "https"),
        (RegistryPolicy(), "10.0.0.5:5000", "https"),
    ],
)
def test_scheme(policy: RegistryPolicy, registry: str, scheme: str) -> None:
    assert policy.scheme(registry) == scheme


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1", "::1", "fe80::1",
     "fc00::1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::ffff:10.0.0.1"],
)
def test_private_addresses_refused_by_default(address: str) -> None:
    with pytest.raises(RegistryError) as info:
        RegistryPolicy().check_address(ipaddress.ip_address(address), "registry.test")
    assert info.value.reason == "REGISTRY_NOT_ALLOWED"


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "100.100.100.200"])
def test_metadata_addresses_refused_even_when_private_allowed(address: str) -> None:
    with pytest.raises(RegistryError) as info:
        RegistryPolicy(allow_private=True).check_address(ipaddress.ip_address(address), "registry.test")
    assert info.value.reason == "REGISTRY_NOT_ALLOWED"
    assert "metadata" in info.value.detail


def test_public_address_allowed() -> None:
    RegistryPolicy().check_address(ipaddress.ip_address("93.184.216.34"), "registry.test")


@pytest.mark.parametrize("registry", ["10.0.0.1:5000", "169.254.169.254", "localhost:5000", "127.0.0.1:80", "[::1]:5000"])
def test_literal_private_registry_refused_before_resolving(registry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _explode)
    with pytest.raises(RegistryError) as info:
        RegistryPolicy().check(registry)
    assert info.value.reason == "REGISTRY_NOT_ALLOWED"


def _explode(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"network touched: {args!r}")


class _Resolver:
    """Stands in for DNS: answers fixed addresses, records what was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        self.asked.append(host)
        out = []
        for a in self.answers[host]:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            out.append((fam, socket.SOCK_STREAM, 6, "", (a, port) if fam == socket.AF_INET else (a, port, 0, 0)))
        return out


@pytest.mark.parametrize(
    ("answers", "allow_private"),
    [
        (["169.254.169.254"], False),
        (["169.254.169.254"], True),
        (["10.0.0.7"], False),
        (["127.0.0.1"], False),
        (["fd00:ec2::254"], True),
        (["93.184.216.34", "10.0.0.7"], False),  # one public, one private answer: rebinding trick
    ],
)
def test_hostname_resolving_to_refused_address_never_connects(
    answers: list[str], allow_private: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = _Resolver({"registry.attacker.test": answers})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(regmod._u3conn, "create_connection", _explode)
    monkeypatch.setattr(socket, "create_connection", _explode)
    client = RegistryClient(policy=RegistryPolicy(allow_private=allow_private), limits=RegistryLimits(retries=0))
    with pytest.raises(RegistryError) as info:
        client.get_manifest("registry.attacker.test", "app", "latest")
    assert info.value.reason == "REGISTRY_NOT_ALLOWED"
    assert "registry.attacker.test" in info.value.detail
    assert resolver.asked == ["registry.attacker.test"]


def test_https_used_for_public_registries() -> None:
    client = RegistryClient()
    assert client.base_url("registry.example.com") == "https://registry.example.com"
    assert client.base_url("docker.io") == "https://registry-1.docker.io"


# -- headers -------------------------------------------------------------------------------------
def test_parse_bearer_challenge() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push",
    }


def test_parse_several_challenges_and_escapes() -> None:
    cs = parse_www_authenticate('Basic realm="a \\"quoted\\" realm", Bearer realm="https://x/t", service=reg')
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    assert cs[0].params["realm"] == 'a "quoted" realm'
    assert cs[1].params == {"realm": "https://x/t", "service": "reg"}


@pytest.mark.parametrize("header", ["", "   ", ",,,", "Bearer"])
def test_parse_degenerate_challenges(header: str) -> None:
    cs = parse_www_authenticate(header)
    assert all(not c.params for c in cs)


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ('</v2/a/referrers/x?n=2&last=y>; rel="next"', "/v2/a/referrers/x?n=2&last=y"),
        ('<https://r/v2/a?x>; rel=next', "https://r/v2/a?x"),
        ('<a>; rel="prev", <b>; rel="next"', "b"),
        ('<a>; rel="prev"', ""),
        ("", ""),
        ("garbage", ""),
    ],
)
def test_next_link(header: str, target: str) -> None:
    assert _next_link(header) == target


# -- descriptors and manifests ------------------------------------------------------------------
def test_descriptor_round_trip() -> None:
    doc = {"mediaType": "m", "size": 3, "digest": D, "artifactType": "a", "annotations": {"k": "v"}}
    assert Descriptor.from_json(doc, where="t").to_json() == doc


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"mediaType": "m", "size": 1},
        {"mediaType": "m", "size": -1, "digest": D},
        {"mediaType": "m", "size": True, "digest": D},
        {"mediaType": "m", "size": "1", "digest": D},
        {"mediaType": "m", "size": 1, "digest": "sha256:xyz"},
        {"mediaType": 1, "size": 1, "digest": D},
        {"mediaType": "m", "size": 1, "digest": D, "annotations": {"k": 1}},
        {"mediaType": "m", "size": 1, "digest": D, "platform": "linux"},
    ],
)
def test_descriptor_rejects_malformed(doc: Any) -> None:
    with pytest.raises(RegistryError) as info:
        Descriptor.from_json(doc, where="test")
    assert info.value.reason == "REGISTRY_ERROR"


def test_manifest_views() -> None:
    doc = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{"mediaType": "m", "size": 1, "digest": D}]}
    m = Manifest(D, doc["mediaType"], b"{}", doc)
    assert m.is_index and [x.digest for x in m.manifests] == [D]
    art = Manifest(D, "application/vnd.oci.image.manifest.v1+json", b"{}", {
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": D}, "layers": [],
    })
    assert not art.is_index and art.artifact_type == "application/vnd.oci.empty.v1+json"


# -- deadline ------------------------------------------------------------------------------------
def test_deadline_scope_nests_and_resets() -> None:
    assert remaining_time() is None
    with deadline_scope(time.monotonic() + 10):
        outer = remaining_time()
        assert outer is not None and 9 < outer <= 10
        with deadline_scope(time.monotonic() + 100):  # cannot extend
            inner = remaining_time()
            assert inner is not None and inner <= 10
        with deadline_scope(time.monotonic() + 1):
            inner = remaining_time()
            assert inner is not None and inner <= 1
    assert remaining_time() is None


def test_past_deadline_fails_before_any_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _explode)
    client = RegistryClient(policy=RegistryPolicy(allow_private=True))
    with deadline_scope(time.monotonic() - 1):
        with pytest.raises(RegistryError) as info:
            client.get_manifest("registry.example.com", "app", "latest")
    assert info.value.reason == "DEADLINE_EXCEEDED"
    assert info.value.transient


# -- Docker config -------------------------------------------------------------------------------
def _write(path: Path, doc: Any) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_docker_config_auth_field(tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:s3cr:et").decode()
    cfg = DockerConfig(_write(tmp_path / "config.json", {"auths": {"https://registry.example.com/v1/": {"auth": auth}}}))
    creds = cfg.get("registry.example.com")
    assert creds == Credentials(username="alice", password="s3cr:et")
    assert cfg.get("other.example.com") is None
    assert "s3cr" not in repr(creds)


def test_docker_config_docker_hub_key_and_identity_token(tmp_path: Path) -> None:
    cfg = DockerConfig(_write(tmp_path / "config.json", {
        "auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"bob:pw").decode()},
                  "reg.example.com:5000": {"identitytoken": "refresh-123"}},
    }))
    assert cfg.get("docker.io") == Credentials(username="bob", password="pw")
    assert cfg.get("reg.example.com:5000") == Credentials(identity_token="refresh-123")
    assert cfg.get("reg.example.com") is None  # the port is part of the key


def test_kubernetes_mounted_secret_directory(tmp_path: Path) -> None:
    secret = tmp_path / "pull-secret"
    secret.mkdir()
    _write(secret / ".dockerconfigjson", {"auths": {"reg.example.com": {"username": "u", "password": "p"}}})
    assert DockerConfig(str(secret)).get("reg.example.com") == Credentials(username="u", password="p")


def test_legacy_dockercfg(tmp_path: Path) -> None:
    path = _write(tmp_path / ".dockercfg", {"reg.example.com": {"auth": base64.b64encode(b"u:p").decode()}})
    assert DockerConfig(path).get("reg.example.com") == Credentials(username="u", password="p")


def _helper(directory: Path, name: str, body: str) -> None:
    exe = directory / f"docker-credential-{name}"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_credential_helper_and_store(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _helper(bindir, "pass", 'read s; echo "{\\"ServerURL\\":\\"$s\\",\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"for-$s\\"}"\n')
    _helper(bindir, "tok", 'read s; echo "{\\"ServerURL\\":\\"$s\\",\\"Username\\":\\"<token>\\",\\"Secret\\":\\"rt-1\\"}"\n')
    _helper(bindir, "none", 'echo "credentials not found in native keychain"; exit 1\n')
    cfg = DockerConfig(
        _write(tmp_path / "config.json", {
            "credHelpers": {"a.example.com": "pass", "b.example.com": "tok", "c.example.com": "none",
                            "d.example.com": "not-installed"},
            "credsStore": "pass",
            "auths": {"c.example.com": {"username": "from", "password": "auths"}},
        }),
        helper_dir=str(bindir),
    )
    assert cfg.get("a.example.com") == Credentials(username="helper-user", password="for-a.example.com")
    assert cfg.get("b.example.com") == Credentials(identity_token="rt-1")
    assert cfg.get("c.example.com") == Credentials(username="from", password="auths")
    assert cfg.get("d.example.com") == Credentials(username="helper-user", password="for-d.example.com")  # credsStore
    assert cfg.get("docker.io") == Credentials(username="helper-user", password="for-https://index.docker.io/v1/")


def test_failing_credential_helper_is_unauthorized(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _helper(bindir, "broken", 'echo "keychain locked" >&2; exit 3\n')
    cfg = DockerConfig(_write(tmp_path / "config.json", {"credsStore": "broken"}), helper_dir=str(bindir))
    with pytest.raises(RegistryError) as info:
        cfg.get("reg.example.com")
    assert info.value.reason == "UNAUTHORIZED"
    assert "docker-credential-broken" in info.value.detail


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot be read as JSON"),
        ("[]", "must be a JSON object"),
        ('{"auths": []}', "'auths' must be an object"),
        ('{"auths": {"r": {"auth": "***"}}}', "not base64"),
        ('{"auths": {"r": {"auth": "' + base64.b64encode(b"nocolon").decode() + '"}}}', "no ':'"),
    ],
)
def test_bad_docker_config_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        DockerConfig(str(path)).get("r")
    assert message in info.value.detail
    assert str(path) in info.value.detail


def test_missing_named_docker_config_is_an_error_but_default_is_anonymous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        DockerConfig(str(tmp_path / "absent.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "nothing-here"))
    assert DockerConfig().get("reg.example.com") is None


def test_static_credentials() -> None:
    src = StaticCredentials({"https://Reg.Example.com/": Credentials("u", "p")})
    assert src.get("reg.example.com") == Credentials("u", "p")
    assert src.get("docker.io") is None


def test_load_docker_config_for_the_engine(tmp_path: Path) -> None:
    path = _write(tmp_path / "config.json", {"auths": {"r.example.com": {"username": "u", "password": "p"}}})
    assert regmod.load_docker_config(path).get("r.example.com") == Credentials("u", "p")


def test_no_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
    client = RegistryClient()
    assert client._session("https://registry.example.com").trust_env is False  # noqa: SLF001
    assert os.environ["HTTPS_PROXY"]


def test_header_parsers_never_crash() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=600, deadline=None, derandomize=True)
    @given(st.text(alphabet='Bearer realm="\\,= <>;relnxt/', max_size=60))
    def check(header: str) -> None:
        for c in parse_www_authenticate(header):
            assert c.scheme and isinstance(c.params, dict)
        assert isinstance(_next_link(header), str)

    check()


def test_descriptor_parser_raises_only_registry_error() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.just(D),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
    keys = st.sampled_from(["mediaType", "digest", "size", "artifactType", "annotations", "platform"])

    @settings(max_examples=600, deadline=None, derandomize=True)
    @given(st.dictionaries(keys, values, max_size=6) | values)
    def check(doc: Any) -> None:
        try:
            Descriptor.from_json(doc, where="fuzz")
        except RegistryError as exc:
            assert exc.reason == "REGISTRY_ERROR"

    check()
