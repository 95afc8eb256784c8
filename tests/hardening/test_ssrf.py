"""SSRF and egress: image references come from untrusted Pod specs.

Refusals are proved *before* any connection: an audit hook (``socket.connect``) records every
connect attempt made in this process while a test runs and blocks any to a non-loopback
address, so a regression can neither reach a private/metadata address nor leave the machine.
Names that resolve to refused addresses are real local names (``/etc/hosts``, numeric forms
glibc resolves without DNS); the DNS-rebinding case uses a stub resolver answer (no query
is sent). End-to-end checks run the real provider with the egress tripwire.
"""

from __future__ import annotations

import http.server
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from stellaops.errors import RegistryError
from stellaops.reference import parse_reference
from stellaops.registry import RegistryClient, RegistryLimits, RegistryPolicy
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess
from tests.hardening._support import assert_provider_response, egress_env, provider_config

# --------------------------------------------------------------------------- connect recorder

_RECORD: dict[str, Any] = {"on": False, "connects": []}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _RECORD["on"]:
        return
    addr = args[1]
    if not isinstance(addr, tuple) or not addr:
        return
    _RECORD["connects"].append(addr)
    try:
        loopback = ipaddress.ip_address(str(addr[0]).split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConnectionRefusedError(f"test guard: connect to non-loopback {addr!r} blocked")


sys.addaudithook(_audit)


@contextmanager
def connects() -> Iterator[list[tuple[Any, ...]]]:
    """Record (and confine to loopback) every socket connect made inside the block."""
    _RECORD["connects"] = []
    _RECORD["on"] = True
    try:
        yield _RECORD["connects"]
    finally:
        _RECORD["on"] = False


def _client(allow_private: bool, allow: tuple[str, ...] = ("*",)) -> RegistryClient:
    return RegistryClient(
        policy=RegistryPolicy(allow=allow, allow_private=allow_private),
        limits=RegistryLimits(connect_timeout=1, read_timeout=2, retries=0),
    )


def _refused(ref_text: str, *, allow_private: bool) -> RegistryError:
    ref = parse_reference(ref_text)
    with connects() as seen, _client(allow_private) as client:
        with pytest.raises(RegistryError) as info:
            client.resolve(ref)
    assert seen == [], f"{ref_text}: connected to {seen} before refusing"
    return info.value


# --------------------------------------------------------------------------- literals and names

PRIVATE_LITERALS = [
    "127.0.0.1:5000/app:v1",
    "127.255.0.9/app:v1",
    "10.0.0.1/app:v1",
    "172.16.5.4:443/app:v1",
    "192.168.1.10/app:v1",
    "100.64.0.1/app:v1",  # carrier-grade NAT
    "169.254.10.10/app:v1",  # link-local
    "0.0.0.0:5000/app:v1",
    "224.0.0.1/app:v1",
    "[::1]:5000/app:v1",
    "[fe80::1]/app:v1",
    "[fc00::5]/app:v1",
    "[::ffff:127.0.0.1]:5000/app:v1",  # IPv4-mapped loopback
    "[::ffff:10.0.0.1]/app:v1",
    "[::]/app:v1",
]
METADATA = [
    "169.254.169.254/latest:v1",
    "169.254.170.2/v2:v1",
    "100.100.100.200/app:v1",
    "[fd00:ec2::254]/app:v1",
    "[::ffff:169.254.169.254]/app:v1",
]


@pytest.mark.parametrize("ref", PRIVATE_LITERALS)
def test_private_ip_literal_refused_before_connect(ref: str) -> None:
    assert _refused(ref, allow_private=False).reason == "REGISTRY_NOT_ALLOWED"


@pytest.mark.parametrize("ref", METADATA)
@pytest.mark.parametrize("allow_private", [False, True])
def test_metadata_address_refused_even_when_private_allowed(ref: str, allow_private: bool) -> None:
    assert _refused(ref, allow_private=allow_private).reason == "REGISTRY_NOT_ALLOWED"


def _hosts_aliases() -> list[str]:
    out = []
    try:
        for line in Path("/etc/hosts").read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and fields[0] == "127.0.0.1":
                out += [n for n in fields[1:] if n != "localhost"]
    except OSError:
        pass
    return out


NAMES_TO_LOOPBACK = [
    "localhost:5000/app:v1",
    "LOCALHOST:5000/app:v1",
    "registry.localhost:5000/app:v1",
    "0x7f.1:5000/app:v1",  # glibc's inet_aton forms: resolved locally, no DNS
    "127.1:5000/app:v1",
    "0177.0.0.1:5000/app:v1",
    "2130706433:5000/app:v1",
] + [f"{alias}:5000/app:v1" for alias in _hosts_aliases()[:2]]


@pytest.mark.parametrize("ref", NAMES_TO_LOOPBACK)
def test_names_resolving_to_loopback_refused_before_connect(ref: str) -> None:
    err = _refused(ref, allow_private=False)
    assert err.reason == "REGISTRY_NOT_ALLOWED", err


def test_dns_rebinding_answer_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name answering one public and one private address is refused as a whole (the public
    address is never connected to either: one refused address refuses the name)."""
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "rebind.stellaops.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),  # documentation-range stand-in
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
            ]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    err = _refused("rebind.stellaops.test/app:v1", allow_private=False)
    assert err.reason == "REGISTRY_NOT_ALLOWED" and "10.0.0.7" in err.detail


def test_name_resolving_to_metadata_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "metadata.stellaops.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    err = _refused("metadata.stellaops.test/app:v1", allow_private=True)
    assert err.reason == "REGISTRY_NOT_ALLOWED" and "metadata" in err.detail


# --------------------------------------------------------------------------- allow-list globs

@pytest.mark.parametrize(
    ("registry", "allowed"),
    [
        ("a.internal.example.com", True),
        ("a.b.internal.example.com:8443", True),
        ("internal.example.com", False),  # the glob needs a label before it
        ("a.internal.example.com.evil.net", False),
        ("evilinternal.example.com", False),
        ("registry.example.com", True),
        ("registry.example.com:5000", True),  # no port in the pattern = any port
        ("registry.example.co", False),
        ("localhost:5000", True),
        ("localhost:5001", False),
        ("localhost", False),
        ("xregistry.example.com", False),
    ],
)
def test_allow_list_globs(registry: str, allowed: bool) -> None:
    policy = RegistryPolicy(allow=("registry.example.com", "*.internal.example.com", "localhost:5000"), allow_private=True)
    assert policy.is_allowed(registry) is allowed
    if not allowed:
        with pytest.raises(RegistryError) as info:
            policy.check(registry)
        assert info.value.reason == "REGISTRY_NOT_ALLOWED"


def test_registry_outside_allow_list_refused_before_connect() -> None:
    ref = parse_reference("ghcr.io/acme/app:v1")
    with connects() as seen, _client(False, allow=("registry.example.com",)) as client:
        with pytest.raises(RegistryError) as info:
            client.resolve(ref)
    assert info.value.reason == "REGISTRY_NOT_ALLOWED" and seen == []


# --------------------------------------------------------------------------- redirects


class _Redirector:
    """A loopback HTTP server answering every request from a table: path prefix → (status, headers).
    Records the requests it receives (path, Authorization header)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str]]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                outer.seen.append((self.path, self.headers.get("Authorization", "")))
                for prefix, (status, headers) in outer.routes.items():
                    if self.path.startswith(prefix):
                        self.send_response(status)
                        for k, v in headers.items():
                            self.send_header(k, v.replace("{port}", str(outer.port)))
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _any  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def redirector() -> Iterator[Callable[[dict[str, tuple[int, dict[str, str]]]], _Redirector]]:
    made: list[_Redirector] = []

    def make(routes: dict[str, tuple[int, dict[str, str]]]) -> _Redirector:
        r = _Redirector(routes)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://100.100.100.200/x"],
)
def test_redirect_to_metadata_refused_before_connect(redirector: Any, target: str) -> None:
    r = redirector({"/v2/": (307, {"Location": target})})
    with connects() as seen, _client(True) as client:
        with pytest.raises(RegistryError) as info:
            client.get_blob(f"127.0.0.1:{r.port}", "app", "sha256:" + "a" * 64)
    assert info.value.reason == "REGISTRY_NOT_ALLOWED", info.value
    assert all(ipaddress.ip_address(a[0]).is_loopback for a in seen), seen


def test_redirect_loop_stops_at_the_hop_limit(redirector: Any) -> None:
    r = redirector({"/v2/": (307, {"Location": "http://127.0.0.1:{port}/v2/app/blobs/loop"})})
    with connects(), _client(True) as client:
        with pytest.raises(RegistryError) as info:
            client.get_blob(f"127.0.0.1:{r.port}", "app", "sha256:" + "a" * 64)
    assert "redirected more than" in info.value.detail, info.value
    assert len(r.seen) == client.limits.max_redirects + 1


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://127.0.0.1/x"])
def test_redirect_to_non_http_scheme_refused(redirector: Any, target: str) -> None:
    r = redirector({"/v2/": (302, {"Location": target})})
    with connects(), _client(True) as client:
        with pytest.raises(RegistryError) as info:
            client.get_blob(f"127.0.0.1:{r.port}", "app", "sha256:" + "a" * 64)
    assert "not an HTTP(S) URL" in info.value.detail


def test_redirect_to_another_host_drops_the_authorization_header(redirector: Any) -> None:
    from stellaops.registry_auth import Credentials, StaticCredentials

    storage = redirector({"/": (404, {})})
    reg = redirector({"/v2/": (307, {"Location": f"http://localhost:{storage.port}/blob"})})
    creds = StaticCredentials({f"127.0.0.1:{reg.port}": Credentials(username="alice", password="wonderland")})
    client = RegistryClient(policy=RegistryPolicy(allow_private=True), limits=RegistryLimits(retries=0), auth=creds)
    with client._lock:  # noqa: SLF001 - pretend the registry asked for basic auth earlier
        client._basic.add(f"127.0.0.1:{reg.port}")  # noqa: SLF001
    with connects():
        with pytest.raises(RegistryError):
            client.get_blob(f"127.0.0.1:{reg.port}", "app", "sha256:" + "a" * 64)
    client.close()
    assert reg.seen and reg.seen[0][1].startswith("Basic "), reg.seen
    assert storage.seen and storage.seen[0][1] == "", f"credentials leaked to the redirect target: {storage.seen}"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_redirect_from_https_down_to_http_is_refused(redirector: Any, tmp_path: Path) -> None:
    """An HTTPS registry redirecting to plain HTTP (credentials and blobs would travel in clear):
    refused before the plain-HTTP hop is made. The registry is reached by an /etc/hosts alias of
    127.0.0.1 so that the client uses HTTPS for it; TLS verification is off for this one test
    session (the point is the downgrade rule, not certificate checking)."""
    import ssl

    from tests.fixtures.provider import make_tls

    aliases = [a for a in _hosts_aliases() if "." not in a]
    if not aliases:
        pytest.skip("no /etc/hosts alias of 127.0.0.1 on this machine")
    alias = aliases[0]
    plain = redirector({"/": (200, {})})
    tls_reg = redirector({"/v2/": (302, {"Location": f"http://{alias}:{plain.port}/blob"})})
    files = make_tls(tmp_path / "tls")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(files.server_cert), str(files.server_key))
    tls_reg.server.socket = ctx.wrap_socket(tls_reg.server.socket, server_side=True)
    client = _client(True)
    client._session(f"https://{alias}:{tls_reg.port}").verify = False  # noqa: SLF001 - test-local session
    with connects():
        with pytest.raises(RegistryError) as info:
            client.get_blob(f"{alias}:{tls_reg.port}", "app", "sha256:" + "a" * 64)
    client.close()
    assert info.value.reason == "REGISTRY_NOT_ALLOWED" and "down to plain HTTP" in info.value.detail, info.value
    assert tls_reg.seen, "the HTTPS registry was never asked: the test proved nothing"
    assert plain.seen == [], f"the plain-HTTP hop was made: {plain.seen}"


# --------------------------------------------------------------------------- end to end


def test_provider_refuses_private_registries_unless_allowed(
    tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    digest = push_test_image(ocireg, "ssrf/app", "v1", client=loopback_client())
    keys = [
        f"{ocireg}/ssrf/app@{digest}",
        f"localhost:{ocireg.rsplit(':', 1)[1]}/ssrf/app@{digest}",
        f"[::1]:{ocireg.rsplit(':', 1)[1]}/ssrf/app@{digest}",
        f"0x7f.1:{ocireg.rsplit(':', 1)[1]}/ssrf/app@{digest}",
        "169.254.169.254/latest/meta-data:v1",
        "10.0.0.1/app:v1",
    ]
    env, trip = egress_env(tmp_path)
    strict = provider_factory(provider_config(tmp_path / "strict", {}, allow_private=False), env=env, name="strict")
    doc = strict.verify(*keys)
    assert doc.pop("_status") == 200
    assert_provider_response(doc)
    items = {i["key"]: i for i in doc["response"]["items"]}
    for k in keys:
        assert k in items and items[k]["error"].startswith("REGISTRY_NOT_ALLOWED"), (k, doc)
    assert not trip.exists() or trip.read_text() == ""

    # allowPrivate: the loopback registry is reachable; metadata still is not
    open_ = provider_factory(provider_config(tmp_path / "open", {}, allow_private=True), env=env, name="open")
    doc = open_.verify(keys[0], keys[4])
    items = {i["key"]: i for i in doc["response"]["items"]}
    assert items[keys[0]]["error"] == "" and items[keys[0]]["value"]["digest"] == digest, doc
    assert items[keys[4]]["error"].startswith("REGISTRY_NOT_ALLOWED"), doc
    assert not trip.exists() or trip.read_text() == ""


def test_provider_allow_list_refuses_other_registries(
    tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    digest = push_test_image(ocireg, "ssrf/allow", "v1", client=loopback_client())
    env, trip = egress_env(tmp_path)
    p = provider_factory(provider_config(tmp_path, {}, allow=["registry.example.com", "*.corp.example"], allow_private=True), env=env)
    key = f"{ocireg}/ssrf/allow@{digest}"
    doc = p.verify(key, "ghcr.io/acme/app:v1", "a.corp.example.evil.net/x:y")
    items = {i["key"]: i for i in doc["response"]["items"]}
    for k in (key, "ghcr.io/acme/app:v1", "a.corp.example.evil.net/x:y"):
        assert items[k]["error"].startswith("REGISTRY_NOT_ALLOWED"), doc
    assert not trip.exists() or trip.read_text() == ""


IMPORT_TARGETS = ["169.254.169.254/latest:v1", "10.0.0.1/app:v1", "localhost:1/app:v1", "[::1]:5000/app:v1", "0x7f.1:5000/a:b"]


def test_import_api_image_parameter_cannot_reach_private_addresses(
    tmp_path: Path, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """``POST /api/v1/attestations/import?image=REF`` resolves a tag through the same guarded
    client: an import caller cannot use it to reach internal addresses either."""
    import json
    from urllib.parse import quote

    token = "ssrf-import-token-" + "5" * 30
    (tmp_path / "t").write_text(token)
    env, trip = egress_env(tmp_path)
    extra = f"importApi: {{tokens: [{{tenant: acme, tokenFile: {tmp_path / 't'}}}]}}\n"
    p = provider_factory(provider_config(tmp_path, {}, allow_private=False, extra=extra), env=env)
    for image in IMPORT_TARGETS:
        status, body = p.post(f"/api/v1/attestations/import?image={quote(image)}", b"{}",
                              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
        doc = json.loads(body)
        assert status in (400, 422) and doc["error"]["reason"] == "REGISTRY_NOT_ALLOWED", (image, status, doc)
    assert not trip.exists() or trip.read_text() == ""
