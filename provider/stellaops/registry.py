"""The only code that speaks HTTP to registries: OCI Distribution API v2.

What it promises (``docs/discovery.md``):

- **Policy before I/O.** :class:`RegistryPolicy` decides which registries may be contacted
  (globs over ``host[:port]``), over which scheme (HTTPS; plain HTTP only for registries
  listed as insecure and, when ``plain_http_loopback``, for ``localhost``/127.0.0.0/8/::1, as
  Docker and cosign do), and whether loopback, private, link-local, multicast, reserved and
  cloud metadata addresses may be reached (``allow_private``). The address check runs inside
  the connection: the host is resolved, *every* address is classified, and the socket is
  opened to the vetted address itself, so nothing is ever sent to a refused address and a
  DNS answer cannot change between check and connect. Redirects are followed by hand, at most
  ``max_redirects`` hops, each hop through the same guard, never from HTTPS down to HTTP, and
  the ``Authorization`` header is dropped when a hop leaves the registry's host.
- **Integrity.** Every manifest and blob fetched by digest is hashed and compared; a manifest
  fetched by tag is hashed and compared with ``Docker-Content-Digest`` when the registry
  sends one. Bodies are streamed and cut off at the configured size limit.
- **Failure classes** (``RegistryError.reason``): connection failures, 5xx and 429 after
  bounded retries with backoff → ``REGISTRY_UNREACHABLE`` (transient); 404 manifest →
  ``MANIFEST_NOT_FOUND``; 401/403 → ``UNAUTHORIZED``; policy refusal →
  ``REGISTRY_NOT_ALLOWED``; size limit → ``LIMIT_EXCEEDED``; digest mismatch, bad JSON, other
  4xx → ``REGISTRY_ERROR``; past the deadline → ``DEADLINE_EXCEEDED``.
- **Deadline.** :func:`deadline_scope` sets a monotonic deadline in a context variable; every
  call under it uses ``timeout = min(configured, remaining)`` and stops retrying in time.
- **Auth.** Anonymous and credentialed bearer tokens from the ``WWW-Authenticate`` challenge
  (``identitytoken`` via the OAuth2 refresh-token grant), and basic auth; tokens are cached
  per (registry, scope) until they expire.
- **Threads.** One :class:`requests.Session` per registry endpoint (a pooled
  ``HTTPAdapter``), created under a lock; the client may be shared by a thread pool.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import fnmatch
import hashlib
import ipaddress
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as _u3conn

from .errors import RegistryError
from .reference import Reference, referrers_tag, registry_host, validate_digest
from .registry_auth import Anonymous, Challenge, Credentials, CredentialSource, parse_www_authenticate

log = logging.getLogger(__name__)

# Media types ---------------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

DOCKER_HUB_API = "registry-1.docker.io"
_REDIRECTS = (301, 302, 303, 307, 308)
# Cloud metadata, credential and wire-server endpoints, refused even when allow_private is set
# (each cloud's documented address; a registry never legitimately lives on one of them). Most are
# link-local or private and so refused anyway without allowPrivate; 168.63.129.16 is a *public*
# address (is_global), so only this list refuses it.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # IMDS of AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean, IBM, Hetzner, Linode, Huawei
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6 (Nitro)
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata and credentials
        ipaddress.ip_address("169.254.170.23"),  # AWS EKS Pod Identity agent (credentials)
        ipaddress.ip_address("fd00:ec2::23"),  # AWS EKS Pod Identity agent over IPv6
        ipaddress.ip_address("fd20:ce::254"),  # GCP metadata server over IPv6
        ipaddress.ip_address("168.63.129.16"),  # Azure wire server (WireServer / host agent), a public address
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud ECS metadata
        ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud legacy metadata (OCI classic)
        ipaddress.ip_address("169.254.0.23"),  # Tencent Cloud metadata (metadata.tencentyun.com)
        ipaddress.ip_address("fd00:a9fe:a9fe::1"),  # Akamai/Linode metadata over IPv6
        ipaddress.ip_address("169.254.42.42"),  # Scaleway metadata
        ipaddress.ip_address("fd00:42::42"),  # Scaleway metadata over IPv6
    }
)

# IPv6 forms that carry an IPv4 address a gateway or the kernel may reach in its place: NAT64's
# well-known prefix (RFC 6052, the IPv4 address in the last 32 bits), 6to4 (RFC 3056) and the
# deprecated IPv4-compatible form.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"),)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4, NAT64, IPv4-compatible),
    else ``ip`` itself: ``64:ff9b::a9fe:a9fe`` is classified as ``169.254.169.254``."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("stellaops_registry_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(deadline_monotonic: float) -> Iterator[None]:
    """Every registry call made inside (in this thread/context) ends by ``deadline_monotonic``
    (a :func:`time.monotonic` value); nested scopes can only shorten it."""
    current = _deadline.get()
    effective = deadline_monotonic if current is None else min(current, deadline_monotonic)
    token = _deadline.set(effective)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_time() -> float | None:
    """Seconds left before the current deadline, or None when there is none."""
    d = _deadline.get()
    return None if d is None else d - time.monotonic()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hasher(digest: str) -> Any:
    alg = digest.partition(":")[0]
    return hashlib.new(alg)


# Policy and limits ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryPolicy:
    """Which registries may be contacted, how, and which addresses they may resolve to.

    ``allow`` and ``insecure`` are shell globs over ``host[:port]`` as written in references
    (``*.example.com``, ``localhost:5000``); a pattern without a port matches any port.
    """

    allow: tuple[str, ...] = ("*",)
    insecure: tuple[str, ...] = ()
    allow_private: bool = False
    plain_http_loopback: bool = True

    @staticmethod
    def _matches(registry: str, patterns: tuple[str, ...]) -> bool:
        reg = registry.lower()
        host = registry_host(reg)
        for pattern in patterns:
            pat = pattern.lower().strip()
            if not pat:
                continue
            has_port = (pat.rsplit(":", 1)[-1].isdigit() or pat.endswith(":*")) and (
                not pat.startswith("[") or "]:" in pat
            )
            # Only '*' and '?' are wildcards: '[' is literal (IPv6 brackets), not a glob class.
            glob = pat.replace("[", "[[]")
            if has_port:
                if fnmatch.fnmatchcase(reg, glob):
                    return True
            elif fnmatch.fnmatchcase(host, pat.strip("[]").replace("[", "[[]")) or fnmatch.fnmatchcase(reg, glob):
                return True
        return False

    def is_allowed(self, registry: str) -> bool:
        return self._matches(registry, self.allow)

    def check(self, registry: str) -> None:
        """Raise ``REGISTRY_NOT_ALLOWED`` unless ``registry`` is allowed (no I/O)."""
        if not self.is_allowed(registry):
            raise RegistryError(
                f"registry {registry!r} is not allowed; registries.allow is {list(self.allow)}",
                reason="REGISTRY_NOT_ALLOWED",
                hint="add the registry (host or host:port glob) to registries.allow",
            )
        host = registry_host(registry)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None:
            self.check_address(ip, registry)
        elif host.lower() == "localhost" or host.lower().endswith(".localhost"):
            if not self.allow_private:
                raise RegistryError(
                    f"registry {registry!r} names the loopback host; private addresses are refused",
                    reason="REGISTRY_NOT_ALLOWED",
                    hint="set registries.allowPrivate: true to reach registries on private networks",
                )

    def is_loopback_name(self, registry: str) -> bool:
        host = registry_host(registry).lower()
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def scheme(self, registry: str) -> str:
        if self._matches(registry, self.insecure):
            return "http"
        if self.plain_http_loopback and self.is_loopback_name(registry):
            return "http"
        return "https"

    def check_address(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, what: str) -> None:
        """Refuse metadata addresses always, and non-public ones unless ``allow_private``."""
        ip = embedded_ipv4(ip)
        if ip in METADATA_ADDRESSES:
            raise RegistryError(
                f"{what} resolves to the cloud metadata address {ip}; refused",
                reason="REGISTRY_NOT_ALLOWED",
                hint="metadata endpoints are never contacted, whatever the configuration",
            )
        if ip.is_unspecified or ip.is_multicast:
            raise RegistryError(f"{what} resolves to {ip}, which is not a unicast address", reason="REGISTRY_NOT_ALLOWED")
        private = ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or not ip.is_global
        if private and not self.allow_private:
            raise RegistryError(
                f"{what} resolves to the non-public address {ip}; private, loopback and link-local targets are refused",
                reason="REGISTRY_NOT_ALLOWED",
                hint="set registries.allowPrivate: true to reach registries on private networks",
            )


@dataclass(frozen=True)
class RegistryLimits:
    """Sizes, counts and timeouts for registry calls (all configurable; ``limits:`` in the config)."""

    manifest_bytes: int = 4 * 1024 * 1024
    blob_bytes: int = 32 * 1024 * 1024
    referrers: int = 1000
    referrer_pages: int = 50
    platform_manifests: int = 64
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    retries: int = 2
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 2.0
    max_redirects: int = 3


# Data ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (untrusted: values as the registry or a manifest gave them)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, doc: Any, *, where: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise RegistryError(f"{where}: a descriptor must be an object, got {type(doc).__name__}")
        media_type = doc.get("mediaType", "")
        digest = doc.get("digest")
        size = doc.get("size")
        artifact_type = doc.get("artifactType", "")
        annotations = doc.get("annotations") or {}
        platform = doc.get("platform")
        if not isinstance(media_type, str) or not isinstance(artifact_type, str):
            raise RegistryError(f"{where}: mediaType/artifactType must be strings")
        try:
            validate_digest(digest if isinstance(digest, str) else "")
        except Exception as exc:
            raise RegistryError(f"{where}: descriptor digest {digest!r} is not sha256/384/512:<hex>") from exc
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"{where}: descriptor size {size!r} is not a non-negative integer")
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise RegistryError(f"{where}: annotations must map strings to strings")
        if platform is not None and not isinstance(platform, dict):
            raise RegistryError(f"{where}: platform must be an object")
        return cls(media_type, str(digest), size, artifact_type, dict(annotations), platform)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as fetched: the exact bytes, their digest, and the parsed document."""

    digest: str
    media_type: str
    raw: bytes
    doc: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES or (
            "manifests" in self.doc and "layers" not in self.doc and self.media_type not in (OCI_MANIFEST, DOCKER_MANIFEST)
        )

    @property
    def artifact_type(self) -> str:
        at = self.doc.get("artifactType")
        if isinstance(at, str) and at:
            return at
        cfg = self.doc.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("mediaType"), str):
            return cfg["mediaType"]
        return ""

    @property
    def annotations(self) -> dict[str, str]:
        ann = self.doc.get("annotations") or {}
        return {k: v for k, v in ann.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(ann, dict) else {}

    def _descriptors(self, key: str) -> list[Descriptor]:
        items = self.doc.get(key) or []
        if not isinstance(items, list):
            raise RegistryError(f"manifest {self.digest}: {key!r} must be a list")
        return [Descriptor.from_json(d, where=f"manifest {self.digest} {key}[{i}]") for i, d in enumerate(items)]

    @property
    def layers(self) -> list[Descriptor]:
        return self._descriptors("layers")

    @property
    def manifests(self) -> list[Descriptor]:
        return self._descriptors("manifests")

    @property
    def config(self) -> Descriptor | None:
        cfg = self.doc.get("config")
        return None if cfg is None else Descriptor.from_json(cfg, where=f"manifest {self.digest} config")

    @property
    def subject(self) -> Descriptor | None:
        sub = self.doc.get("subject")
        return None if sub is None else Descriptor.from_json(sub, where=f"manifest {self.digest} subject")

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw), self.artifact_type)


@dataclass(frozen=True)
class Referrers:
    """A referrers listing. ``source`` is ``api`` (OCI 1.1 endpoint) or ``tag`` (the
    ``sha256-<hex>`` fallback index); ``filtered`` is True only when the registry said it applied
    the ``artifactType`` filter (``OCI-Filters-Applied``)."""

    descriptors: tuple[Descriptor, ...]
    source: str
    filtered: bool = False

    def __iter__(self) -> Iterator[Descriptor]:
        return iter(self.descriptors)

    def __len__(self) -> int:
        return len(self.descriptors)


# Connection guard -------------------------------------------------------------------------------
class _AddressRefused(Exception):
    """Raised inside urllib3 when a resolved address is refused (not an OSError, so urllib3
    and requests let it through untouched and it is never retried)."""

    def __init__(self, error: RegistryError) -> None:
        super().__init__(str(error))
        self.error = error


def _vetted_connect(conn: HTTPConnection, policy: RegistryPolicy) -> socket.socket:
    host = conn._dns_host.rstrip(".")  # noqa: SLF001 - urllib3's resolver input
    port = conn.port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[str] = []
    for _family, _, _, _, sockaddr in infos:
        address = str(sockaddr[0])
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        try:
            policy.check_address(ip, f"host {host!r}")
        except RegistryError as err:
            # One refused address refuses the name: a public+private answer is a rebinding trick.
            raise _AddressRefused(err) from None
        addresses.append(address)
    last: OSError | None = None
    for address in addresses:
        try:
            return _u3conn.create_connection(
                (address, port), conn.timeout, source_address=conn.source_address, socket_options=conn.socket_options
            )
        except OSError as exc:
            last = exc
    raise last or OSError(f"no address for {host}")


class _DeadlineBoundResponses:
    """Bounds waiting for a response's head by the request deadline. The read timeout is per
    recv, so a registry that trickles a byte at a time would otherwise hold the thread for as
    long as it likes; a watchdog shuts the socket when the deadline passes (the body is bounded
    the same way in ``_read_limited``)."""

    sock: Any

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        left = remaining_time()
        if left is None or self.sock is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        cut = threading.Event()
        timer = threading.Timer(max(left, 0.0) + 0.05, _shut_socket, (self.sock, cut))
        timer.daemon = True
        timer.start()
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            timer.cancel()


def _shut_socket(sock: Any, cut: threading.Event) -> None:
    cut.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _guarded_adapter(policy: RegistryPolicy, pool_maxsize: int) -> HTTPAdapter:
    class GuardedHTTPConnection(_DeadlineBoundResponses, HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _vetted_connect(self, policy)

    class GuardedHTTPSConnection(_DeadlineBoundResponses, HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _vetted_connect(self, policy)

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}
    adapter.poolmanager.key_fn_by_scheme = dict(adapter.poolmanager.key_fn_by_scheme)
    return adapter


# The client --------------------------------------------------------------------------------------
@dataclass
class _Token:
    header: str
    expires: float


class RegistryClient:
    """A Distribution API v2 client. Safe to share between threads."""

    def __init__(
        self,
        policy: RegistryPolicy | None = None,
        limits: RegistryLimits | None = None,
        auth: CredentialSource | None = None,
        *,
        pool_maxsize: int = 16,
        user_agent: str = "stellaops-attest/0.1",
        observer: Callable[[str, str], None] | None = None,
    ) -> None:
        """``observer(registry, outcome)`` is told of every HTTP attempt (outcome: the status
        class ``2xx``…``5xx``, ``timeout``, ``connection`` or ``refused``); the provider counts
        them in its metrics, the CLI passes none."""
        self.policy = policy or RegistryPolicy()
        self._observe = observer or (lambda _registry, _outcome: None)
        self.limits = limits or RegistryLimits()
        self.auth: CredentialSource = auth or Anonymous()
        self._pool_maxsize = pool_maxsize
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._sessions: dict[str, requests.Session] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic: set[str] = set()  # registries that asked for basic auth
        self._referrers_api: dict[tuple[str, str], bool] = {}

    # -- plumbing ---------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            s.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self, origin: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(origin)
            if session is None:
                session = requests.Session()
                session.trust_env = False  # no proxies or .netrc from the environment
                adapter = _guarded_adapter(self.policy, self._pool_maxsize)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = self._user_agent
                self._sessions[origin] = session
            return session

    def base_url(self, registry: str) -> str:
        endpoint = DOCKER_HUB_API if registry == "docker.io" else registry
        return f"{self.policy.scheme(registry)}://{endpoint}"

    def _timeouts(self) -> tuple[float, float]:
        connect, read = self.limits.connect_timeout, self.limits.read_timeout
        left = remaining_time()
        if left is not None:
            if left <= 0:
                raise RegistryError("the request deadline passed before the registry call", reason="DEADLINE_EXCEEDED")
            connect, read = min(connect, left), min(read, left)
        return connect, read

    def _check_deadline(self, what: str) -> None:
        left = remaining_time()
        if left is not None and left <= 0:
            raise RegistryError(f"the request deadline passed while {what}", reason="DEADLINE_EXCEEDED",
                                hint="raise server.deadlineSeconds or check the registry's latency")

    def _scope(self, repository: str, push: bool) -> str:
        return f"repository:{repository}:{'pull,push' if push else 'pull'}"

    def request(
        self,
        method: str,
        registry: str,
        path: str,
        *,
        repository: str,
        push: bool = False,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        url: str | None = None,
    ) -> requests.Response:
        """One API call with policy, deadline, retries, auth and guarded redirects.

        Returns the final response (streaming; the caller reads and closes it). Raises
        :class:`RegistryError` for transport failures, 5xx/429 after retries, and 401/403.
        """
        self.policy.check(registry)
        target = url or self.base_url(registry) + path
        scope = self._scope(repository, push)
        attempt = 0
        auth_tried = False
        last_problem = ""
        while True:
            self._check_deadline(f"calling {registry}")
            hdrs = dict(headers or {})
            auth_header = self._cached_auth(registry, scope)
            if auth_header:
                hdrs["Authorization"] = auth_header
            try:
                resp = self._send_following_redirects(method, registry, target, hdrs, data)
                self._observe(registry, f"{resp.status_code // 100}xx")
            except _AddressRefused as exc:
                self._observe(registry, "refused")
                raise RegistryError(
                    f"{exc.error.detail} (registry {registry}, repository {repository})",
                    reason="REGISTRY_NOT_ALLOWED",
                    hint=exc.error.hint,
                ) from None
            except requests.Timeout as exc:
                self._observe(registry, "timeout")
                left = remaining_time()
                if left is not None and left <= 0.01:
                    raise RegistryError(
                        f"the request deadline passed waiting for {registry} ({method} {path})",
                        reason="DEADLINE_EXCEEDED",
                    ) from exc
                last_problem = f"timed out ({exc.__class__.__name__})"
                resp = None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                self._observe(registry, "connection")
                last_problem = f"connection failed: {_short(exc)}"
                resp = None
            except requests.RequestException as exc:
                raise RegistryError(f"{method} {target} failed: {_short(exc)}", reason="REGISTRY_ERROR") from exc

            if resp is not None and resp.status_code == 401 and not auth_tried:
                auth_tried = True
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                self._authenticate(registry, repository, scope, challenge)
                continue
            if resp is not None and resp.status_code in (401, 403):
                creds = self.auth.get(registry)
                detail = _error_text(resp)
                resp.close()
                raise RegistryError(
                    f"{registry} refused {method} on repository {repository!r} with HTTP {resp.status_code}"
                    f"{' (' + detail + ')' if detail else ''}; "
                    f"{'the configured credentials were refused' if creds else 'no credentials are configured for it'}",
                    reason="UNAUTHORIZED",
                    hint="configure credentials for this registry (docker login, or registries.auth.dockerConfig)",
                )
            if resp is not None and not (resp.status_code == 429 or resp.status_code >= 500):
                return resp
            if resp is not None:
                last_problem = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After", "")
                resp.close()
            else:
                retry_after = ""
            if attempt >= self.limits.retries:
                raise RegistryError(
                    f"{registry} is unreachable for {method} {path} (repository {repository!r}): {last_problem}"
                    f" after {attempt + 1} attempt(s)",
                    reason="REGISTRY_UNREACHABLE",
                    hint="the registry may be down or rate-limiting; the next admission retries",
                )
            delay = min(self.limits.max_backoff_seconds, self.limits.backoff_seconds * (2**attempt))
            if retry_after.isdigit():
                delay = min(self.limits.max_backoff_seconds, max(delay, float(retry_after)))
            delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not crypto
            left = remaining_time()
            if left is not None and left <= delay:
                raise RegistryError(
                    f"{registry} failed ({last_problem}) and the deadline leaves no time to retry {method} {path}",
                    reason="DEADLINE_EXCEEDED",
                )
            time.sleep(delay)
            attempt += 1

    def _send_following_redirects(
        self, method: str, registry: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> requests.Response:
        origin_host = urlsplit(url).netloc.lower()
        for _hop in range(self.limits.max_redirects + 1):
            parts = urlsplit(url)
            session = self._session(f"{parts.scheme}://{parts.netloc}")
            try:
                resp = session.request(
                    method, url, headers=headers, data=data, timeout=self._timeouts(), stream=True, allow_redirects=False
                )
            except AttributeError as exc:
                # urllib3 2.x swallows ECONNRESET while sending (a macOS workaround), then
                # getresponse() trips over the socket http.client already dropped. It is a
                # connection reset: report it as one (retried, then REGISTRY_UNREACHABLE).
                if not _raised_in_urllib3(exc):
                    raise
                raise requests.ConnectionError(f"connection to {parts.netloc} was reset") from exc
            if resp.status_code not in _REDIRECTS or "Location" not in resp.headers:
                return resp
            location = urljoin(url, resp.headers["Location"])
            resp.close()
            new = urlsplit(location)
            if new.scheme not in ("http", "https"):
                raise RegistryError(f"{registry} redirected to {location!r}, which is not an HTTP(S) URL")
            if parts.scheme == "https" and new.scheme == "http":
                raise RegistryError(
                    f"{registry} redirected from HTTPS down to plain HTTP ({location!r}); refused",
                    reason="REGISTRY_NOT_ALLOWED",
                )
            if new.netloc.lower() != origin_host:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method not in ("GET", "HEAD")):
                method, data = "GET", None
            url = location
        raise RegistryError(
            f"{registry} redirected more than {self.limits.max_redirects} times; last target {url!r}",
            reason="REGISTRY_ERROR",
        )

    # -- auth -----------------------------------------------------------------------------------
    def _cached_auth(self, registry: str, scope: str) -> str:
        with self._lock:
            tok = self._tokens.get((registry, scope))
            if tok is not None and tok.expires > time.monotonic():
                return tok.header
            basic = registry in self._basic
        if basic:
            creds = self.auth.get(registry)
            if creds and creds.has_basic:
                return _basic_header(creds)
        return ""

    def _authenticate(self, registry: str, repository: str, scope: str, header: str) -> None:
        challenges = parse_www_authenticate(header)
        creds = self.auth.get(registry)
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            self._fetch_token(registry, repository, scope, bearer, creds)
            return
        if any(c.scheme == "basic" for c in challenges):
            if creds is None or not creds.has_basic:
                raise RegistryError(
                    f"{registry} requires basic authentication for repository {repository!r} and no "
                    "username/password is configured for it",
                    reason="UNAUTHORIZED",
                    hint="docker login to it, or give registries.auth.dockerConfig",
                )
            with self._lock:
                self._basic.add(registry)
            return
        raise RegistryError(
            f"{registry} answered 401 for repository {repository!r} with an unsupported challenge {header[:120]!r}",
            reason="UNAUTHORIZED",
        )

    def _fetch_token(
        self, registry: str, repository: str, scope: str, challenge: Challenge, creds: Credentials | None
    ) -> None:
        realm = challenge.params.get("realm", "")
        service = challenge.params.get("service", "")
        # Ask for our scope (pull or pull,push) even if the challenge names a narrower one.
        scopes = [scope]
        if creds is not None and creds.registry_token:
            self._store_token(registry, scope, "Bearer " + creds.registry_token, 60)
            return
        if not realm:
            raise RegistryError(f"{registry} sent a Bearer challenge without a realm", reason="UNAUTHORIZED")
        rparts = urlsplit(realm)
        if rparts.scheme not in ("http", "https") or not rparts.netloc:
            raise RegistryError(f"{registry}: token realm {realm!r} is not an HTTP(S) URL", reason="UNAUTHORIZED")
        realm_registry = rparts.netloc
        if rparts.scheme == "http" and self.policy.scheme(realm_registry) != "http":
            raise RegistryError(
                f"{registry}: token realm {realm!r} is plain HTTP and its host is neither loopback nor listed insecure",
                reason="REGISTRY_NOT_ALLOWED",
                hint="credentials are never sent in clear text to a host not listed in registries.insecure",
            )
        headers: dict[str, str] = {}
        try:
            if creds is not None and creds.identity_token:
                body = urlencode(
                    {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "service": service,
                     "scope": " ".join(scopes), "client_id": "stellaops-attest"}
                ).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                resp = self._send_following_redirects("POST", realm_registry, realm, headers, body)
            else:
                query = [("service", service)] if service else []
                query += [("scope", s) for s in scopes]
                sep = "&" if rparts.query else "?"
                url = realm + (sep + urlencode(query) if query else "")
                if creds is not None and creds.has_basic:
                    headers["Authorization"] = _basic_header(creds)
                resp = self._send_following_redirects("GET", realm_registry, url, headers, None)
        except _AddressRefused as exc:
            raise RegistryError(f"token realm of {registry}: {exc.error.detail}", reason="REGISTRY_NOT_ALLOWED") from None
        except requests.RequestException as exc:
            raise RegistryError(
                f"token service {realm} of {registry} is unreachable: {_short(exc)}", reason="REGISTRY_UNREACHABLE"
            ) from exc
        try:
            if resp.status_code in (401, 403):
                raise RegistryError(
                    f"token service {realm} refused {'the configured credentials' if creds else 'an anonymous token'} "
                    f"for {scope} on {registry} (HTTP {resp.status_code})",
                    reason="UNAUTHORIZED",
                    hint="check the credentials for this registry",
                )
            if resp.status_code == 429 or resp.status_code >= 500:
                raise RegistryError(f"token service {realm} answered HTTP {resp.status_code}", reason="REGISTRY_UNREACHABLE")
            if resp.status_code != 200:
                raise RegistryError(f"token service {realm} answered HTTP {resp.status_code}", reason="UNAUTHORIZED")
            body_bytes = self._read_limited(resp, 1024 * 1024, f"token from {realm}")
        finally:
            resp.close()
        try:
            doc = json.loads(body_bytes)
            token = doc.get("token") or doc.get("access_token")
            expires_in = doc.get("expires_in", 60)
        except (ValueError, AttributeError) as exc:
            raise RegistryError(f"token service {realm} did not answer JSON", reason="UNAUTHORIZED") from exc
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {realm} answered without a token", reason="UNAUTHORIZED")
        if not isinstance(expires_in, (int, float)) or expires_in <= 0:
            expires_in = 60
        self._store_token(registry, scope, "Bearer " + token, float(expires_in))

    def _store_token(self, registry: str, scope: str, header: str, ttl: float) -> None:
        with self._lock:
            self._tokens[(registry, scope)] = _Token(header, time.monotonic() + max(1.0, ttl - 10.0))

    # -- bodies ---------------------------------------------------------------------------------
    def _read_limited(self, resp: requests.Response, limit: int, what: str) -> bytes:
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise RegistryError(
                f"{what} is {int(length)} bytes, more than the limit of {limit}",
                reason="LIMIT_EXCEEDED",
                hint="raise the limit in the configuration (limits:) if this size is expected",
            )
        chunks: list[bytes] = []
        total = 0
        # A registry that trickles a byte per recv never trips the per-recv read timeout; a
        # watchdog cuts the connection when the request deadline passes, so no worker thread is
        # held past it (a read of 64 KiB blocks until 64 KiB or EOF).
        cut = threading.Event()
        left = remaining_time()
        watchdog = threading.Timer(max(left, 0.0) + 0.05, _cut_connection, (resp, cut)) if left is not None else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            for chunk in resp.iter_content(65536):
                total += len(chunk)
                if total > limit:
                    raise RegistryError(
                        f"{what} is more than the limit of {limit} bytes",
                        reason="LIMIT_EXCEEDED",
                        hint="raise the limit in the configuration (limits:) if this size is expected",
                    )
                chunks.append(chunk)
                self._check_deadline(f"reading {what}")
        except (requests.RequestException, OSError, AttributeError, ValueError) as exc:
            # (urllib3 raises odd types when its socket is shut under it: they all mean "cut")
            left = remaining_time()
            reason = "DEADLINE_EXCEEDED" if cut.is_set() or (left is not None and left <= 0.01) else "REGISTRY_UNREACHABLE"
            raise RegistryError(f"reading {what} failed: {_short(exc)}", reason=reason) from exc
        finally:
            if watchdog is not None:
                watchdog.cancel()
        if cut.is_set():  # the body may look complete after the cut: never trust it
            raise RegistryError(f"the request deadline passed while reading {what}", reason="DEADLINE_EXCEEDED")
        return b"".join(chunks)

    def _unexpected(self, resp: requests.Response, what: str) -> RegistryError:
        detail = _error_text(resp)
        return RegistryError(
            f"{what}: HTTP {resp.status_code}{' (' + detail + ')' if detail else ''}", reason="REGISTRY_ERROR"
        )

    # -- manifests ------------------------------------------------------------------------------
    def head_manifest(self, registry: str, repository: str, reference: str) -> Descriptor | None:
        """HEAD a manifest: its descriptor, or None when the registry omits digest/type headers.
        404 → ``MANIFEST_NOT_FOUND``."""
        resp = self.request(
            "HEAD", registry, f"/v2/{repository}/manifests/{reference}", repository=repository,
            headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)},
        )
        try:
            if resp.status_code == 404:
                raise _not_found(registry, repository, reference)
            if resp.status_code != 200:
                return None
            digest = resp.headers.get("Docker-Content-Digest", "")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            length = resp.headers.get("Content-Length", "")
            if not digest or media_type not in MANIFEST_MEDIA_TYPES or not length.isdigit():
                return None
            try:
                validate_digest(digest)
            except Exception:
                return None
            if reference.startswith("sha") and ":" in reference and digest != reference:
                raise RegistryError(
                    f"{registry}/{repository}: HEAD of manifest {reference} answered digest {digest}",
                    reason="REGISTRY_ERROR",
                )
            return Descriptor(media_type, digest, int(length))
        finally:
            resp.close()

    def resolve(self, ref: Reference) -> Descriptor:
        """The descriptor (digest, media type, size) of what ``ref`` names: HEAD, falling back to GET.
        A digest in the reference is kept as given (an index stays an index)."""
        desc = self.head_manifest(ref.registry, ref.repository, ref.identifier)
        if desc is None:
            desc = self.get_manifest(ref.registry, ref.repository, ref.identifier).descriptor()
        if ref.digest and desc.digest != ref.digest:
            raise RegistryError(
                f"{ref}: the registry answered digest {desc.digest} for {ref.digest}", reason="REGISTRY_ERROR"
            )
        return desc

    def get_manifest(
        self, registry: str, repository: str, reference: str, *, accept: tuple[str, ...] = MANIFEST_MEDIA_TYPES
    ) -> Manifest:
        """GET a manifest by tag or digest, verified against the digest (asked for, or announced)."""
        by_digest = ":" in reference
        if by_digest:
            validate_digest(reference)
        resp = self.request(
            "GET", registry, f"/v2/{repository}/manifests/{reference}", repository=repository,
            headers={"Accept": ", ".join(accept)},
        )
        what = f"manifest {registry}/{repository}{'@' if by_digest else ':'}{reference}"
        try:
            if resp.status_code == 404:
                raise _not_found(registry, repository, reference)
            if resp.status_code != 200:
                raise self._unexpected(resp, what)
            raw = self._read_limited(resp, self.limits.manifest_bytes, what)
            header_digest = resp.headers.get("Docker-Content-Digest", "")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        finally:
            resp.close()
        expected = reference if by_digest else header_digest
        if expected and ":" in expected:
            try:
                validate_digest(expected)
                h = _hasher(expected)
            except Exception:
                h = None
            if h is not None:
                h.update(raw)
                got = expected.partition(":")[0] + ":" + h.hexdigest()
                if got != expected:
                    raise RegistryError(
                        f"{what}: content digest is {got}, expected {expected}; the registry served other bytes",
                        reason="REGISTRY_ERROR",
                        hint="the registry or something between us and it altered the manifest",
                    )
        digest = reference if by_digest else sha256_digest(raw)
        doc = _parse_json_object(raw, what)
        media_type = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else ""
        if not media_type:
            media_type = content_type if content_type in MANIFEST_MEDIA_TYPES else (
                OCI_INDEX if "manifests" in doc else OCI_MANIFEST
            )
        if media_type not in MANIFEST_MEDIA_TYPES:
            raise RegistryError(f"{what} has media type {media_type!r}; expected one of {list(MANIFEST_MEDIA_TYPES)}")
        return Manifest(digest=digest, media_type=media_type, raw=raw, doc=doc)

    def put_manifest(self, registry: str, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest; returns its digest (checked against the registry's)."""
        digest = sha256_digest(raw)
        if ":" in reference and reference != digest:
            raise RegistryError(f"put_manifest: {reference} is not the digest of these bytes ({digest})")
        if len(raw) > self.limits.manifest_bytes:
            raise RegistryError(
                f"manifest for {registry}/{repository} is {len(raw)} bytes, more than {self.limits.manifest_bytes}",
                reason="LIMIT_EXCEEDED",
            )
        resp = self.request(
            "PUT", registry, f"/v2/{repository}/manifests/{reference}", repository=repository, push=True,
            headers={"Content-Type": media_type}, data=raw,
        )
        try:
            if resp.status_code not in (200, 201, 202):
                raise self._unexpected(resp, f"pushing manifest {registry}/{repository}:{reference}")
            answered = resp.headers.get("Docker-Content-Digest", "")
        finally:
            resp.close()
        if answered and answered != digest:
            raise RegistryError(
                f"{registry}/{repository}: pushed manifest {digest} but the registry recorded {answered}",
                reason="REGISTRY_ERROR",
            )
        return digest

    # -- blobs ----------------------------------------------------------------------------------
    def get_blob(self, registry: str, repository: str, digest: str, max_bytes: int | None = None) -> bytes:
        """GET a blob by digest, size-limited and verified."""
        validate_digest(digest)
        limit = self.limits.blob_bytes if max_bytes is None else min(max_bytes, self.limits.blob_bytes)
        what = f"blob {registry}/{repository}@{digest}"
        resp = self.request("GET", registry, f"/v2/{repository}/blobs/{digest}", repository=repository)
        try:
            if resp.status_code == 404:
                raise RegistryError(f"{what} does not exist (HTTP 404)", reason="REGISTRY_ERROR")
            if resp.status_code != 200:
                raise self._unexpected(resp, what)
            data = self._read_limited(resp, limit, what)
        finally:
            resp.close()
        h = _hasher(digest)
        h.update(data)
        got = digest.partition(":")[0] + ":" + h.hexdigest()
        if got != digest:
            raise RegistryError(
                f"{what}: content digest is {got}, expected {digest}; the registry served other bytes",
                reason="REGISTRY_ERROR",
            )
        return data

    def blob_exists(self, registry: str, repository: str, digest: str) -> bool:
        resp = self.request("HEAD", registry, f"/v2/{repository}/blobs/{digest}", repository=repository, push=True)
        try:
            return resp.status_code == 200
        finally:
            resp.close()

    def put_blob(self, registry: str, repository: str, data: bytes) -> str:
        """Upload a blob (monolithic POST + PUT) unless it is already there; returns its digest."""
        digest = sha256_digest(data)
        if self.blob_exists(registry, repository, digest):
            return digest
        resp = self.request(
            "POST", registry, f"/v2/{repository}/blobs/uploads/", repository=repository, push=True,
            headers={"Content-Length": "0"}, data=b"",
        )
        try:
            if resp.status_code not in (201, 202):
                raise self._unexpected(resp, f"starting a blob upload to {registry}/{repository}")
            location = resp.headers.get("Location", "")
        finally:
            resp.close()
        if not location:
            raise RegistryError(f"{registry}/{repository}: blob upload started without a Location")
        url = urljoin(self.base_url(registry) + "/", location)
        loc = urlsplit(url)
        base = urlsplit(self.base_url(registry))
        if loc.netloc.lower() != base.netloc.lower():
            raise RegistryError(
                f"{registry}/{repository}: upload Location {location!r} points to another host", reason="REGISTRY_ERROR"
            )
        url += ("&" if loc.query else "?") + urlencode({"digest": digest})
        resp = self.request(
            "PUT", registry, "", repository=repository, push=True, url=url,
            headers={"Content-Type": "application/octet-stream"}, data=data,
        )
        try:
            if resp.status_code not in (201, 204):
                raise self._unexpected(resp, f"uploading blob {digest} to {registry}/{repository}")
        finally:
            resp.close()
        return digest

    # -- referrers ------------------------------------------------------------------------------
    def list_referrers(
        self, registry: str, repository: str, digest: str, artifact_type: str | None = None
    ) -> Referrers:
        """Referrers of ``digest``: the OCI 1.1 API (paged via ``Link``), or, when the registry
        has none, the ``sha256-<hex>`` fallback index tag. A missing tag is an empty list."""
        validate_digest(digest)
        path = f"/v2/{repository}/referrers/{digest}"
        if artifact_type:
            path += "?" + urlencode({"artifactType": artifact_type})
        url: str | None = None
        descriptors: list[Descriptor] = []
        filtered = True
        pages = 0
        while True:
            resp = self.request("GET", registry, path, repository=repository, url=url)
            try:
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
                if resp.status_code != 200 or content_type != OCI_INDEX:
                    if pages == 0 and resp.status_code in (200, 400, 404, 405, 406):
                        # No referrers API here (ggcr cmd/registry answers 404, Distribution 404).
                        with self._lock:
                            self._referrers_api[(registry, repository)] = False
                        break
                    raise self._unexpected(resp, f"referrers of {registry}/{repository}@{digest}")
                what = f"referrers page {pages + 1} of {registry}/{repository}@{digest}"
                raw = self._read_limited(resp, self.limits.manifest_bytes, what)
                applied = resp.headers.get("OCI-Filters-Applied", "")
                link = resp.headers.get("Link", "")
            finally:
                resp.close()
            with self._lock:
                self._referrers_api[(registry, repository)] = True
            filtered = filtered and bool(artifact_type) and "artifacttype" in applied.lower().replace(" ", "").split(",")
            doc = _parse_json_object(raw, what)
            items = doc.get("manifests") or []
            if not isinstance(items, list):
                raise RegistryError(f"{what}: 'manifests' must be a list")
            for i, d in enumerate(items):
                descriptors.append(Descriptor.from_json(d, where=f"{what} manifests[{i}]"))
                if len(descriptors) > self.limits.referrers:
                    raise _too_many_referrers(registry, repository, digest, self.limits.referrers)
            pages += 1
            nxt = _next_link(link)
            if not nxt:
                return Referrers(tuple(descriptors), "api", filtered and bool(artifact_type))
            if pages >= self.limits.referrer_pages:
                raise RegistryError(
                    f"referrers of {registry}/{repository}@{digest} span more than {self.limits.referrer_pages} pages",
                    reason="LIMIT_EXCEEDED",
                )
            url = urljoin(self.base_url(registry) + path, nxt)
            if urlsplit(url).netloc.lower() != urlsplit(self.base_url(registry)).netloc.lower():
                raise RegistryError(f"{registry}: referrers Link {nxt!r} points to another host", reason="REGISTRY_ERROR")
        # Fallback: the referrers tag schema.
        try:
            index = self.get_manifest(registry, repository, referrers_tag(digest), accept=(OCI_INDEX,))
        except RegistryError as exc:
            if exc.reason == "MANIFEST_NOT_FOUND":
                return Referrers((), "tag")
            raise
        if not index.is_index:
            raise RegistryError(
                f"{registry}/{repository}:{referrers_tag(digest)} is a {index.media_type}, not an OCI index",
            )
        descs = index.manifests
        if len(descs) > self.limits.referrers:
            raise _too_many_referrers(registry, repository, digest, self.limits.referrers)
        return Referrers(tuple(descs), "tag")

    def referrers_api_supported(self, registry: str, repository: str, digest: str) -> bool:
        """Whether the registry serves the referrers API for this repository (probed once)."""
        with self._lock:
            known = self._referrers_api.get((registry, repository))
        if known is not None:
            return known
        resp = self.request("GET", registry, f"/v2/{repository}/referrers/{digest}", repository=repository)
        try:
            ok = resp.status_code == 200 and resp.headers.get("Content-Type", "").split(";")[0].strip() == OCI_INDEX
        finally:
            resp.close()
        with self._lock:
            self._referrers_api[(registry, repository)] = ok
        return ok


# helpers -----------------------------------------------------------------------------------------
def _raised_in_urllib3(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and "urllib3" in last.tb_frame.f_code.co_filename


def _cut_connection(resp: requests.Response, cut: threading.Event) -> None:
    """Watchdog action: mark the read as cut and shut the socket under it (wakes a blocked recv)."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is None:  # urllib3 released the connection object: reach the socket http.client reads
        fp = getattr(getattr(resp.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is not None:
        _shut_socket(sock, cut)
    else:
        cut.set()  # nothing to shut: the read ends by itself, and the cut flag refuses its result


def _basic_header(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"


def _error_text(resp: requests.Response) -> str:
    """The registry's error code and message, if it sent the standard error JSON (bounded read)."""
    try:
        raw = resp.raw.read(4096, decode_content=True) if resp.raw is not None else b""
        doc = json.loads(raw)
        errs = doc.get("errors") or []
        if errs and isinstance(errs[0], dict):
            return f"{errs[0].get('code', '')}: {str(errs[0].get('message', ''))[:200]}"
    except Exception:  # noqa: BLE001 - best effort only
        return ""
    return ""


def _not_found(registry: str, repository: str, reference: str) -> RegistryError:
    sep = "@" if ":" in reference else ":"
    return RegistryError(
        f"manifest {registry}/{repository}{sep}{reference} does not exist (HTTP 404)",
        reason="MANIFEST_NOT_FOUND",
        hint="check the repository name, tag and digest",
    )


def _too_many_referrers(registry: str, repository: str, digest: str, limit: int) -> RegistryError:
    return RegistryError(
        f"{registry}/{repository}@{digest} has more than {limit} referrers",
        reason="LIMIT_EXCEEDED",
        hint="raise limits.referrers if this many artifacts are expected",
    )


def _next_link(header: str) -> str:
    """The target of ``rel="next"`` in a ``Link`` header, or ``""``."""
    for part in header.split(","):
        segs = part.split(";")
        target = segs[0].strip()
        if target.startswith("<") and target.endswith(">"):
            rels = [s.strip() for s in segs[1:]]
            if any(r.replace(" ", "") in ('rel="next"', "rel=next") for r in rels):
                return target[1:-1]
    return ""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _parse_json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RegistryError(f"{what} is not valid JSON: {_short(exc)}", reason="REGISTRY_ERROR") from exc
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object", reason="REGISTRY_ERROR")
    return doc


def load_docker_config(path: str) -> CredentialSource:
    """Credentials from a Docker ``config.json`` or a mounted Kubernetes docker config
    (file or directory); see :class:`stellaops.registry_auth.DockerConfig`."""
    from .registry_auth import DockerConfig

    return DockerConfig(path)
