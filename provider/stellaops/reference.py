"""Docker/OCI image references: parse and normalise (pure, no I/O).

The grammar is the one of distribution/reference, which Docker, cosign and Kubernetes use::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]          host = DNS name, IPv4, or "[" IPv6 "]"
    path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex

Normalisation follows Docker: the first component is a registry only when it contains ``.``
or ``:``, is ``localhost``, or has an upper-case letter; otherwise the registry is
``docker.io``, and a one-component repository on Docker Hub gets ``library/``.
``index.docker.io`` is the same registry as ``docker.io``. A reference with neither tag nor
digest means tag ``latest``. Only digests we can verify are accepted (sha256, sha384,
sha512 with their exact hex length), because every digest we use is checked against bytes.

Hand-written because no maintained Python library implements this grammar with error
messages that name the offending part; the patterns are bounded and anchored (no
backtracking blow-up on hostile input).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from .errors import InvalidReferenceError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
MAX_NAME_LENGTH = 255
MAX_REFERENCE_LENGTH = 4096

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HEX = re.compile(r"[0-9a-f]+")
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

_HINT = "write it as [registry[:port]/]repository[:tag][@sha256:<64 hex>], e.g. registry.example.com/app:v1.0.0"


@dataclass(frozen=True)
class Reference:
    """A normalised image reference. ``tag`` and ``digest`` may both be set."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` (no tag, no digest)."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What to ask ``/v2/<repository>/manifests/`` for: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        """The same reference pinned to ``digest`` (the tag is kept for display)."""
        validate_digest(digest)
        return replace(self, digest=digest)

    def with_tag(self, tag: str) -> Reference:
        """The same repository at ``tag``, without a digest."""
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(f"tag {tag!r} is not a valid tag", hint=_HINT)
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def validate_digest(digest: str, *, what: str = "digest") -> str:
    """Check ``alg:hex`` for an algorithm we can verify; returns the digest unchanged."""
    if not isinstance(digest, str):
        raise InvalidReferenceError(f"{what} must be a string, got {type(digest).__name__}")
    alg, sep, hexval = digest.partition(":")
    if not sep:
        raise InvalidReferenceError(f"{what} {digest!r} has no algorithm; expected sha256:<64 hex>", hint=_HINT)
    if alg not in DIGEST_HEX_LENGTHS:
        raise InvalidReferenceError(
            f"{what} {digest!r} uses algorithm {alg!r}; supported: {', '.join(DIGEST_HEX_LENGTHS)}", hint=_HINT
        )
    want = DIGEST_HEX_LENGTHS[alg]
    if len(hexval) != want or not _HEX.fullmatch(hexval):
        raise InvalidReferenceError(
            f"{what} {digest!r} must have exactly {want} lower-case hex characters after {alg}:, got {len(hexval)}",
            hint=_HINT,
        )
    return digest


def _validate_domain(domain: str, text: str) -> str:
    host, port = domain, ""
    if domain.startswith("["):
        end = domain.find("]")
        if end < 0:
            raise InvalidReferenceError(f"registry {domain!r} in {text!r} has an unclosed '['", hint=_HINT)
        host, rest = domain[: end + 1], domain[end + 1 :]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise InvalidReferenceError(f"registry {domain!r} in {text!r} is not a valid IPv6 address", hint=_HINT) from exc
        if rest:
            if not rest.startswith(":"):
                raise InvalidReferenceError(f"registry {domain!r} in {text!r} has junk after ']'", hint=_HINT)
            port = rest[1:]
            if not port:
                raise InvalidReferenceError(f"registry {domain!r} in {text!r} has an empty port", hint=_HINT)
    else:
        if domain.count(":") > 1:
            raise InvalidReferenceError(
                f"registry {domain!r} in {text!r} has more than one ':'; write IPv6 hosts in brackets", hint=_HINT
            )
        host, _, port = domain.partition(":")
        if ":" in domain and not port:
            raise InvalidReferenceError(f"registry {domain!r} in {text!r} has an empty port", hint=_HINT)
        labels = host.split(".")
        if not host or any(not _DOMAIN_LABEL.fullmatch(label) for label in labels):
            raise InvalidReferenceError(f"registry host {host!r} in {text!r} is not a valid host name", hint=_HINT)
    if port:
        if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
            raise InvalidReferenceError(f"registry port {port!r} in {text!r} is not a port number (1-65535)", hint=_HINT)
    if domain.startswith("["):
        return domain
    # Host names are case-insensitive: normalise to lower case, unless the upper case is what
    # made it a registry at all ("A/b"), where lower-casing would turn it into a Docker Hub path.
    lowered = domain.lower()
    return lowered if _looks_like_domain(lowered) else domain


def _looks_like_domain(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.lower() != first


def parse_reference(text: str) -> Reference:
    """Parse and normalise an image reference, or raise :class:`InvalidReferenceError`
    naming the part that is wrong."""
    if not isinstance(text, str):
        raise InvalidReferenceError(f"an image reference must be a string, got {type(text).__name__}", hint=_HINT)
    if not text:
        raise InvalidReferenceError("the image reference is empty", hint=_HINT)
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReferenceError(
            f"the image reference is {len(text)} characters long, more than {MAX_REFERENCE_LENGTH}", hint=_HINT
        )
    if text != text.strip() or any(c.isspace() or ord(c) < 0x20 for c in text):
        raise InvalidReferenceError(f"image reference {text!r} contains whitespace or control characters", hint=_HINT)
    if "://" in text:
        raise InvalidReferenceError(
            f"image reference {text!r} has a URL scheme; references have none", hint=_HINT
        )

    rest, at, digest = text.partition("@")
    if at:
        if "@" in digest:
            raise InvalidReferenceError(f"image reference {text!r} has more than one '@'", hint=_HINT)
        validate_digest(digest, what=f"digest in {text!r}")

    # The tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag: str | None = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(
                f"tag {tag!r} in {text!r} is not valid: 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
                hint=_HINT,
            )
    if not rest:
        raise InvalidReferenceError(f"image reference {text!r} has no repository name", hint=_HINT)

    first, sep, remainder = rest.partition("/")
    if sep and _looks_like_domain(first):
        registry = _validate_domain(first, text)
        path = remainder
    else:
        registry = DEFAULT_REGISTRY
        path = rest
    if registry in DOCKER_HUB_ALIASES:
        registry = DEFAULT_REGISTRY
        if path and "/" not in path:
            path = "library/" + path

    if not path:
        raise InvalidReferenceError(f"image reference {text!r} has no repository path after the registry", hint=_HINT)
    for component in path.split("/"):
        if not component:
            raise InvalidReferenceError(f"repository {path!r} in {text!r} has an empty path component", hint=_HINT)
        if not _PATH_COMPONENT.fullmatch(component):
            problem = "upper-case letters" if component.lower() != component else "characters outside [a-z0-9._-]"
            raise InvalidReferenceError(
                f"repository path component {component!r} in {text!r} is not valid ({problem}); "
                "components are lower-case alphanumerics separated by '.', '_', '__' or '-'",
                hint=_HINT,
            )
    if len(registry) + 1 + len(path) > MAX_NAME_LENGTH:
        raise InvalidReferenceError(
            f"repository name {registry}/{path} is longer than {MAX_NAME_LENGTH} characters", hint=_HINT
        )
    if tag is None and not at:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=path, tag=tag, digest=digest if at else None)


def registry_host(registry: str) -> str:
    """The host part of ``host[:port]`` (brackets removed from IPv6 literals)."""
    if registry.startswith("["):
        return registry[1 : registry.find("]")]
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


def registry_port(registry: str) -> int | None:
    """The port of ``host[:port]``, or None when it has none."""
    if registry.startswith("["):
        rest = registry[registry.find("]") + 1 :]
        return int(rest[1:]) if rest.startswith(":") else None
    return int(registry.rsplit(":", 1)[1]) if ":" in registry else None


def referrers_tag(digest: str) -> str:
    """The OCI referrers-tag-schema fallback tag for ``digest`` (``sha256-<hex>``)."""
    validate_digest(digest)
    return digest.replace(":", "-", 1)


def cosign_attestation_tag(digest: str) -> str:
    """cosign's legacy attestation tag for ``digest`` (``sha256-<hex>.att``)."""
    return referrers_tag(digest) + ".att"
