"""Find every attestation attached to an image, from every source, as untrusted candidates.

Sources, for the image digest and — when it is an index — for each platform manifest in it
(``Candidate.attached_to`` says which digest each was found on):

1. **Referrers** (OCI 1.1 ``/v2/<name>/referrers/<digest>``, paged via ``Link``), or when the
   registry has no such API, the ``sha256-<hex>`` referrers-tag index. A server-side
   ``artifactType`` filter is never relied on (registries ignore it without saying so); each
   referrer is classified by its descriptor:
   - ``application/vnd.dev.sigstore.bundle*`` → a sigstore bundle referrer (``source=bundle``,
     ``kind=bundle``, ``data`` = the bundle layer bytes); cosign's rule applies: exactly one
     bundle layer;
   - ``application/vnd.dsse.envelope.v1+json`` → a plain DSSE referrer (``source=referrers``, or
     ``referrers-tag`` when listed by the fallback tag), one candidate per DSSE layer;
   - empty, ``application/vnd.oci.empty.v1+json`` or an image config type (registries such as
     go-containerregistry's report the *config* media type) → ambiguous: the manifest is fetched
     and classified by its own ``artifactType``, config ``artifactType`` and layers;
   - anything else (SBOMs, signatures, unrelated artifacts) is skipped **without any fetch**,
     so hundreds of unrelated referrers cost one listing.
   A referrer bundle whose predicate-type annotation is cosign's *signature* type
   (``https://sigstore.dev/cosign/sign/v1``) is skipped: it signs the image, it attests nothing.
2. **cosign's legacy tag** ``sha256-<hex>.att``: one candidate per DSSE layer, the layer bytes
   kept verbatim, ``dev.sigstore.cosign/*`` annotations carried in ``Candidate.cosign``.
3. **The imported-attestation store**: ``store.find_by_digest(digest, per_tenant=…, max_bytes=…)``,
   inside a byte budget of its own (``limits.attestationBytesPerImage`` again, apart from the
   registry's), shared fairly between the targets of an index.

Duplicates: one candidate per (source, location). The same envelope found in several places
(a bundle referrer *and* an ``.att`` layer, as ``stella attest attach`` writes by default) is
kept once per place; verification deduplicates by envelope digest.

Failures: a listing that cannot be read fails the whole discovery (definitive errors are
per-key verdict errors; transient ones propagate as such). A single referrer or layer that
cannot be fetched or is malformed is skipped and recorded in :attr:`Discovery.problems` (it
hides only itself). A registry layer or referrer *not read because of a limit* (the image
budget, ``blobBytes``, ``envelopeBytes``, ``manifestBytes``) is recorded in
:attr:`Discovery.cuts`: it may hide evidence that changes the decision, so the pipeline refuses
the key (:func:`refusal`; docs/discovery.md "Evidence that was not read").
"""

from __future__ import annotations

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .candidate import (
    KIND_BUNDLE,
    KIND_DSSE,
    SOURCE_BUNDLE,
    SOURCE_COSIGN_TAG,
    SOURCE_REFERRERS,
    SOURCE_REFERRERS_TAG,
    Candidate,
    CosignLayerAnnotations,
)
from .budget import ByteBudget, RequestBudgetExceeded
from .errors import RegistryError, StellaError
from .reference import Reference, cosign_attestation_tag
from .registry import DOCKER_MANIFEST, INDEX_MEDIA_TYPES, OCI_CONFIG, OCI_EMPTY, OCI_MANIFEST, Descriptor, Manifest, RegistryClient

log = logging.getLogger(__name__)

BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
AMBIGUOUS_ARTIFACT_TYPES = frozenset(
    {"", OCI_EMPTY, OCI_CONFIG, "application/vnd.docker.container.image.v1+json", "application/vnd.unknown.config.v1+json"}
)
ANN_CREATED = "org.opencontainers.image.created"
IMAGE_MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ANN_BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"


class CandidateStore(Protocol):
    def find_by_digest(self, digest: str, *, per_tenant: int, max_bytes: int | None = None) -> Any:  # pragma: no cover - protocol
        """A ``store.StoreFind``: ``candidates`` and ``skipped`` (tenant, rows, why)."""
        ...


@dataclass(frozen=True)
class Problem:
    """Something found but not usable (skipped, never trusted)."""

    attached_to: str
    location: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"attachedTo": self.attached_to, "location": self.location, "reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class Cut:
    """Registry evidence discovery did not read because of a limit (never a junk-only verdict:
    whatever it held might have changed the decision, so :func:`imagecheck.verify_image`
    refuses the key, :func:`refusal`)."""

    attached_to: str
    location: str
    limit: str  # the configuration key: "limits.attestationBytesPerImage", "limits.blobBytes", …
    size: int  # bytes not read (0 when unknown)
    message: str


class EvidenceCut(RegistryError):
    """A registry layer or referrer not read because of a limit (definitive ``LIMIT_EXCEEDED``)."""

    reason = "LIMIT_EXCEEDED"

    def __init__(self, detail: str, *, limit: str, size: int, hint: str = "") -> None:
        super().__init__(detail, hint=hint)
        self.limit = limit
        self.size = size


@dataclass
class Discovery:
    """The result of one discovery run."""

    image_digest: str
    targets: list[str] = field(default_factory=list)  # image digest, then platform digests
    platforms: list[PlatformEntry] = field(default_factory=list)  # every selectable platform (index only)
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)  # registry evidence not read (limits): the key is refused
    referrer_sources: dict[str, str] = field(default_factory=dict)  # target -> "api" | "tag"
    skipped_unrelated: int = 0
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, cand: Candidate) -> None:
        key = (cand.source, cand.location)
        if key in self._seen:
            return
        self._seen.add(key)
        self.candidates.append(cand)


def classify(artifact_type: str) -> str:
    """``bundle``, ``dsse``, ``ambiguous`` or ``unrelated`` for a referrer artifactType."""
    if artifact_type.startswith(BUNDLE_PREFIX):
        return "bundle"
    if artifact_type == DSSE_MEDIA_TYPE:
        return "dsse"
    if artifact_type in AMBIGUOUS_ARTIFACT_TYPES:
        return "ambiguous"
    return "unrelated"


def _manifest_kind(m: Manifest) -> str:
    """Classify a fetched referrer manifest by its own fields."""
    config = m.doc.get("config")
    config_type = config.get("artifactType") if isinstance(config, dict) else None  # hostile manifests lie about shapes
    for at in (m.doc.get("artifactType"), config_type):
        if isinstance(at, str) and at:
            kind = classify(at)
            if kind in ("bundle", "dsse"):
                return kind
            if kind == "unrelated":
                return kind
    layers = m.layers
    if layers and all(d.media_type.startswith(BUNDLE_PREFIX) for d in layers):
        return "bundle"
    if layers and any(d.media_type == DSSE_MEDIA_TYPE for d in layers):
        return "dsse"
    return "unrelated"


def _cosign_annotations(ann: dict[str, str]) -> CosignLayerAnnotations:
    return CosignLayerAnnotations(
        certificate=ann.get("dev.sigstore.cosign/certificate", ""),
        chain=ann.get("dev.sigstore.cosign/chain", ""),
        rekor_bundle=ann.get("dev.sigstore.cosign/bundle", ""),
        rfc3161_timestamp=ann.get("dev.sigstore.cosign/rfc3161timestamp", ""),
    )


@dataclass(frozen=True)
class PlatformEntry:
    """One manifest a runtime could select from an index (untrusted: as the index lists it)."""

    digest: str
    platform: str  # "os/architecture[/variant]" as listed (bounded, printable), "" when none is named
    index: str  # the digest of the index that lists it (the image index, or a nested one)

    def to_json(self) -> dict[str, str]:
        return {"digest": self.digest, "platform": self.platform, "index": self.index}


_PLATFORM_PART_CHARS = 32  # each of os/architecture/variant, as copied into the verdict


def _platform_text(plat: dict[str, Any] | None) -> str:
    """``os/architecture[/variant]`` of a descriptor, bounded: registry data is unsigned, so each
    part keeps at most 32 characters of ``[A-Za-z0-9._+-]`` (anything else becomes ``?``)."""
    if not isinstance(plat, dict):
        return ""
    parts = []
    for key in ("os", "architecture", "variant"):
        value = plat.get(key)
        if not isinstance(value, str) or not value:
            if key == "variant":
                break
            value = ""
        clean = "".join(c if (c.isascii() and (c.isalnum() or c in "._+-")) else "?" for c in value[:_PLATFORM_PART_CHARS])
        parts.append(clean)
    return "/".join(parts) if any(parts) else ""


def _is_unknown_platform(plat: dict[str, Any] | None) -> bool:
    """BuildKit's attestation manifests are ``unknown/unknown``; only those are not images a
    runtime would select (an ``attestation-manifest`` *annotation* proves nothing: it is unsigned)."""
    return isinstance(plat, dict) and plat.get("os") == "unknown" and plat.get("architecture") == "unknown"


def platform_entries(
    client: RegistryClient,
    ref: Reference,
    index: Manifest,
    *,
    max_entries: int,
    max_depth: int,
) -> list[PlatformEntry]:
    """Every manifest a runtime could select from ``index``, nested indexes followed.

    Skips only ``unknown/unknown`` entries. Refuses (definitive ``RegistryError``) rather than
    truncates: more than ``max_entries`` entries in one index or in the whole walk
    (``LIMIT_EXCEEDED``, naming ``limits.platformManifests``), nesting deeper than ``max_depth``
    (``LIMIT_EXCEEDED``, ``limits.indexDepth``), an entry of a media type that is neither an image
    manifest nor an index, or a nested "index" that is not one (``REGISTRY_ERROR``). A nested index
    that cannot be fetched fails as its fetch failed (transient stays transient; not found
    refuses the key: a runtime could not pull that path either, and skipping it would hide it).
    Each distinct leaf is listed once, with the first index that lists it."""
    out: list[PlatformEntry] = []
    seen_leaves: set[str] = set()
    seen_indexes: set[str] = {index.digest}
    counted = 0
    stack: list[tuple[Manifest, int]] = [(index, 0)]
    while stack:
        m, depth = stack.pop(0)  # breadth first: the listing order within each index is kept
        entries = [d for d in m.manifests if not _is_unknown_platform(d.platform)]
        counted += len(entries)
        if len(entries) > max_entries or counted > max_entries:
            raise RegistryError(
                f"index {m.digest} {'lists' if len(entries) > max_entries else 'brings the image to'} "
                f"{len(entries) if len(entries) > max_entries else counted} platform entries, more than "
                f"limits.platformManifests ({max_entries}); refused, not truncated (a runtime could select any of them)",
                reason="LIMIT_EXCEEDED",
                hint="raise limits.platformManifests if images this wide are expected",
            )
        for d in entries:
            if d.media_type in INDEX_MEDIA_TYPES:
                if depth + 1 > max_depth:
                    raise RegistryError(
                        f"index {m.digest} nests index {d.digest} {depth + 1} levels deep, deeper than "
                        f"limits.indexDepth ({max_depth}); refused",
                        reason="LIMIT_EXCEEDED",
                        hint="raise limits.indexDepth if images nested this deep are expected",
                    )
                if d.digest in seen_indexes:
                    continue
                seen_indexes.add(d.digest)
                nested = client.get_manifest(ref.registry, ref.repository, d.digest)
                if not nested.is_index:
                    raise RegistryError(
                        f"index {m.digest} lists {d.digest} as an index ({d.media_type}) but it is a {nested.media_type or 'manifest'}; refused"
                    )
                stack.append((nested, depth + 1))
                continue
            if d.media_type not in IMAGE_MANIFEST_MEDIA_TYPES:
                raise RegistryError(
                    f"index {m.digest} lists {d.digest} with media type {d.media_type!r}, neither an image manifest nor an index; refused",
                    hint="an index entry a runtime may select must be an image manifest or an index",
                )
            if d.digest in seen_leaves:
                continue
            seen_leaves.add(d.digest)
            out.append(PlatformEntry(d.digest, _platform_text(d.platform), m.digest))
    return out


@dataclass
class _Outcome:
    """What one referrer or layer gave: candidates, problems, and unrelated artifacts seen."""

    candidates: list[Candidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)
    unrelated: int = 0


class _Walker:
    """Walks one image's sources. Manifests and blobs of different referrers are fetched by a
    small thread pool (each worker runs in a copy of the caller's context, so the registry
    deadline applies there too); results are merged in listing order, so output is stable."""

    def __init__(
        self,
        client: RegistryClient,
        ref: Reference,
        result: Discovery,
        *,
        signatures: bool = False,
        workers: int = 4,
        byte_budget: int | None = None,
        request_budget: ByteBudget | None = None,
        envelope_bytes: int | None = None,
    ) -> None:
        self.client = client
        self.image_budget = ByteBudget(byte_budget, "limits.attestationBytesPerImage")
        # the imported store's own budget (the same limit, apart): registry bytes never starve imports
        self.store_budget = ByteBudget(byte_budget, "limits.attestationBytesPerImage")
        self.envelope_bytes = envelope_bytes
        self.request_budget = request_budget
        self.ref = ref
        self.result = result
        self.signatures = signatures  # keep cosign v3 *signature* bundles (download does, as cosign)
        self.workers = workers

    def _is_signature(self, annotations: dict[str, str]) -> bool:
        return not self.signatures and annotations.get(ANN_BUNDLE_PREDICATE) == COSIGN_SIGN_PREDICATE

    def _map(self, fn: Any, items: list[Any]) -> list[_Outcome]:
        if len(items) <= 1 or self.workers <= 1:
            return [fn(i) for i in items]
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(items)), thread_name_prefix="discovery")
        try:
            futures = [pool.submit(contextvars.copy_context().run, fn, i) for i in items]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _merge(self, outcomes: list[_Outcome]) -> None:
        for o in outcomes:
            for c in o.candidates:
                self.result.add(c)
            self.result.problems.extend(o.problems)
            self.result.cuts.extend(o.cuts)
            self.result.skipped_unrelated += o.unrelated

    @staticmethod
    def _problem(out: _Outcome, target: str, location: str, err: StellaError) -> None:
        """A referrer or layer that could not be used. Transient: raised. Over a limit
        (``LIMIT_EXCEEDED``: over the image budget, ``blobBytes``, ``envelopeBytes``,
        ``manifestBytes``): a :class:`Cut` (registry evidence not read; the key is refused),
        listed as a problem too (``oci-list`` shows them).
        Anything else (malformed, gone): a problem; it hides only itself."""
        if err.transient:
            raise err
        if err.reason == "LIMIT_EXCEEDED":
            limit = err.limit if isinstance(err, EvidenceCut) else "a registry limit"
            size = err.size if isinstance(err, EvidenceCut) else 0
            out.cuts.append(Cut(target, location, limit, size, err.detail))
            out.problems.append(Problem(target, location, err.reason, err.detail))  # listed too (oci-list shows problems)
            log.info("discovery could not read %s (over %s): %s", location, limit, err)
            return
        out.problems.append(Problem(target, location, err.reason, err.detail))
        log.info("discovery skipped %s: %s", location, err)

    def referrers(self, target: str) -> None:
        c, ref = self.client, self.ref
        listing = c.list_referrers(ref.registry, ref.repository, target)
        self.result.referrer_sources[target] = listing.source
        wanted: list[Descriptor] = []
        for desc in listing:
            if classify(desc.artifact_type) == "unrelated" or self._is_signature(desc.annotations):
                self.result.skipped_unrelated += 1  # decided from the listing alone: nothing fetched
                continue
            wanted.append(desc)
        self._merge(self._map(lambda d: self._referrer(target, d, listing.source), wanted))

    def _referrer(self, target: str, desc: Descriptor, listing_source: str) -> _Outcome:
        c, ref = self.client, self.ref
        out = _Outcome()
        location = f"{ref.name}@{desc.digest}"
        try:
            try:
                m = c.get_manifest(ref.registry, ref.repository, desc.digest)
            except RegistryError as err:
                if err.reason != "LIMIT_EXCEEDED":
                    raise
                raise EvidenceCut(f"referrer {desc.digest}: {err.detail}; not read", limit="limits.manifestBytes",
                                  size=max(desc.size, 0), hint="raise limits.manifestBytes if referrers this large are expected") from err
            if m.is_index:
                raise RegistryError(f"referrer {desc.digest} is an index, not an artifact manifest")
            subject = m.subject
            if listing_source == "tag" and (subject is None or subject.digest != target):
                raise RegistryError(
                    f"referrer {desc.digest} listed by the fallback tag has subject "
                    f"{subject.digest if subject else 'none'}, expected {target}"
                )
            kind = _manifest_kind(m)  # the manifest's own fields decide, not the listing's
            if kind == "unrelated" or self._is_signature(m.annotations):
                out.unrelated += 1
                return out
            if kind == "bundle":
                out.candidates.append(self._bundle(target, m, location))
            else:
                self._dsse_referrer(out, target, m, location, listing_source)
        except StellaError as err:
            self._problem(out, target, location, err)
        return out

    def reserve(self, size: int, what: str) -> None:
        """Reserve ``size`` bytes in the image's and the request's budgets before fetching them.

        Over the image budget: a definitive ``LIMIT_EXCEEDED`` (a property of this image; the
        caller records it as a problem). Over the request budget: :class:`RequestBudgetExceeded`,
        transient (it depends on the other keys of the request)."""
        if not self.image_budget.try_reserve(size):
            raise EvidenceCut(
                f"{what} ({size} bytes) would take this image's registry attestations past "
                f"limits.attestationBytesPerImage ({self.image_budget.limit} bytes); not fetched",
                limit="limits.attestationBytesPerImage",
                size=size,
                hint="raise limits.attestationBytesPerImage, or prune the image's attestations",
            )
        if self.request_budget is not None and not self.request_budget.try_reserve(size):
            self.image_budget.release(size)
            raise RequestBudgetExceeded(
                f"{what} ({size} bytes) would take this request's attestations past "
                f"limits.attestationBytesPerRequest ({self.request_budget.limit} bytes); not fetched",
                hint="the other images of the same request hold the budget; retried on the next admission "
                "(raise limits.attestationBytesPerRequest if requests this large are expected)",
            )

    def _blob(self, desc: Descriptor) -> bytes:
        # the client reads at most min(blobBytes, envelopeBytes) (clients.py): name the one passed
        if self.envelope_bytes is not None and desc.size > self.envelope_bytes:
            raise EvidenceCut(
                f"layer {desc.digest} is {desc.size} bytes, more than limits.envelopeBytes ({self.envelope_bytes}); not fetched",
                limit="limits.envelopeBytes", size=desc.size, hint="raise limits.envelopeBytes if attestations this large are expected",
            )
        limit = self.client.limits.blob_bytes
        if desc.size > limit:
            raise EvidenceCut(
                f"layer {desc.digest} is {desc.size} bytes, more than limits.blobBytes ({limit}); not fetched",
                limit="limits.blobBytes", size=desc.size, hint="raise limits.blobBytes if attestations this large are expected",
            )
        self.reserve(desc.size, f"layer {desc.digest}")
        try:
            return self.client.get_blob(self.ref.registry, self.ref.repository, desc.digest, max_bytes=max(desc.size, 1))
        except RegistryError as err:
            if err.reason != "LIMIT_EXCEEDED":
                raise
            raise EvidenceCut(f"{err.detail}; not read", limit="limits.blobBytes", size=desc.size, hint=err.hint) from err

    def _bundle(self, target: str, m: Manifest, location: str) -> Candidate:
        layers = [d for d in m.layers if d.media_type.startswith(BUNDLE_PREFIX)]
        if len(layers) != 1:
            raise RegistryError(
                f"bundle referrer {m.digest} has {len(layers)} sigstore bundle layers; exactly one is expected"
            )
        data = self._blob(layers[0])
        ann = m.annotations
        return Candidate(
            kind=KIND_BUNDLE, data=data, source=SOURCE_BUNDLE, attached_to=target, location=location,
            annotations=ann, artifact_type=m.artifact_type, created=ann.get(ANN_CREATED, ""),
        )

    def _dsse_referrer(self, out: _Outcome, target: str, m: Manifest, location: str, listing_source: str) -> None:
        layers = [d for d in m.layers if d.media_type == DSSE_MEDIA_TYPE]
        if not layers:
            raise RegistryError(f"DSSE referrer {m.digest} has no {DSSE_MEDIA_TYPE} layer")
        source = SOURCE_REFERRERS if listing_source == "api" else SOURCE_REFERRERS_TAG
        ann = m.annotations
        for d in layers:
            loc = location if len(layers) == 1 else f"{location}#{d.digest}"
            try:
                data = self._blob(d)
            except StellaError as err:
                self._problem(out, target, loc, err)
                continue
            out.candidates.append(
                Candidate(
                    kind=KIND_DSSE, data=data, source=source, attached_to=target, location=loc,
                    annotations={**ann, **d.annotations}, artifact_type=m.artifact_type or DSSE_MEDIA_TYPE,
                    created=ann.get(ANN_CREATED, d.annotations.get(ANN_CREATED, "")),
                )
            )

    def cosign_tag(self, target: str) -> None:
        c, ref = self.client, self.ref
        tag = cosign_attestation_tag(target)
        try:
            m = c.get_manifest(ref.registry, ref.repository, tag)
        except RegistryError as err:
            if err.reason == "MANIFEST_NOT_FOUND":
                return
            raise
        if m.is_index:
            raise RegistryError(f"{ref.name}:{tag} is an index; cosign's attestation tag holds one image manifest")
        layers = m.layers
        if len(layers) > c.limits.referrers:
            raise RegistryError(
                f"{ref.name}:{tag} has {len(layers)} layers, more than the limit of {c.limits.referrers}",
                reason="LIMIT_EXCEEDED",
            )
        self._merge(self._map(lambda d: self._att_layer(target, tag, d), layers))

    def _att_layer(self, target: str, tag: str, d: Descriptor) -> _Outcome:
        out = _Outcome()
        location = f"{self.ref.name}:{tag}@{d.digest}"
        if d.media_type != DSSE_MEDIA_TYPE:
            out.problems.append(
                Problem(target, location, "REGISTRY_ERROR", f"layer media type {d.media_type!r} is not {DSSE_MEDIA_TYPE}")
            )
            return out
        try:
            data = self._blob(d)
        except StellaError as err:
            self._problem(out, target, location, err)
            return out
        out.candidates.append(
            Candidate(
                kind=KIND_DSSE, data=data, source=SOURCE_COSIGN_TAG, attached_to=target, location=location,
                annotations=dict(d.annotations), cosign=_cosign_annotations(d.annotations),
                artifact_type=DSSE_MEDIA_TYPE, created=d.annotations.get(ANN_CREATED, ""),
            )
        )
        return out


def discover_all(
    client: RegistryClient,
    ref: Reference,
    digest: str,
    *,
    store: Any = None,
    platforms: bool = True,
    signature_bundles: bool = False,
    media_type: str | None = None,
    byte_budget: int | None = None,
    request_budget: ByteBudget | None = None,
    index_depth: int = 4,
    max_platforms: int | None = None,
    store_per_tenant: int = 200,
    check_deadline: Callable[[], None] | None = None,
    envelope_bytes: int | None = None,
    store_after_cut: bool = True,
) -> Discovery:
    """Run discovery and return candidates with everything learned on the way.

    ``platforms=False`` looks at ``digest`` only (as ``cosign download`` does);
    ``signature_bundles=True`` keeps cosign v3 signature bundles (predicate type
    ``https://sigstore.dev/cosign/sign/v1``), which attestation discovery skips.
    ``media_type`` (from :meth:`RegistryClient.resolve`) saves the GET that finds out whether
    ``digest`` is an index when it says it is a plain manifest.
    For an index, every platform a runtime could select is a target (:func:`platform_entries`:
    nested indexes up to ``index_depth``, at most ``max_platforms`` entries, default the
    client's ``limits.platform_manifests``; over either the key is refused, never truncated).

    ``byte_budget`` (``limits.attestationBytesPerImage``) bounds the registry's attestation
    bytes of the whole image, and — as a budget of its own — the imported store's rows, so
    registry bytes can never starve imports (every layer is also bounded by
    ``limits.blobBytes`` and ``envelope_bytes``). A registry layer or referrer not read because
    of a limit is a :class:`Cut` (``Discovery.cuts``): the caller must refuse the key
    (:func:`refusal`). Store rows left out are problems naming their tenant. The store's
    budget is shared fairly between the targets of an index (each gets at least its
    ``1/len(targets)`` share; unused shares roll over), so one tenant's rows about one digest
    cannot use up what another tenant's rows about another platform need.
    ``request_budget`` is shared by every key of one request (:class:`RequestBudgetExceeded`,
    transient, when it runs out). ``store_per_tenant``: rows read per import tenant
    (``limits.attestationsPerImage``). ``check_deadline`` is called between the sources
    (raises when the request's deadline has passed). ``store_after_cut=False`` skips the store
    once the registry's evidence was cut (the key is refused anyway).
    """
    result = Discovery(image_digest=digest)
    tick = check_deadline or (lambda: None)
    is_manifest = media_type is not None and media_type not in INDEX_MEDIA_TYPES
    result.targets = [digest]
    if platforms and not is_manifest:
        top = client.get_manifest(ref.registry, ref.repository, digest)
        if top.is_index:
            limit = client.limits.platform_manifests if max_platforms is None else max_platforms
            result.platforms = platform_entries(client, ref, top, max_entries=limit, max_depth=index_depth)
            result.targets += [p.digest for p in result.platforms if p.digest != digest]
    walker = _Walker(
        client, ref, result, signatures=signature_bundles, byte_budget=byte_budget, request_budget=request_budget,
        envelope_bytes=envelope_bytes,
    )
    for target in result.targets:
        tick()
        walker.referrers(target)
        walker.cosign_tag(target)
    if store is not None and (store_after_cut or not result.cuts):
        for i, target in enumerate(result.targets):
            tick()
            _store_candidates(store, walker, result, target, store_per_tenant, len(result.targets) - i)
    return result


def refusal(cuts: list[Cut], digest: str) -> EvidenceCut | None:
    """The definitive per-key error for registry evidence that was not read, or None.

    One message for every cut: per limit, how many attestations (and bytes) were not read.
    Evidence not read could change the decision (a newer failing scan, a VEX withdrawn), so no
    verdict is given on the rest: every policy denies. A registry writer can always make their
    own image undeployable this way; nobody else can (imports have their own budget)."""
    if not cuts:
        return None
    by_limit: dict[str, list[Cut]] = {}
    for c in cuts:
        by_limit.setdefault(c.limit, []).append(c)
    parts = []
    for limit, group in by_limit.items():
        size = sum(c.size for c in group)
        parts.append(f"{len(group)} over {limit}" + (f" ({size} bytes not read)" if size else "") + f", e.g. {group[0].message}")
    limits = ", ".join(by_limit)
    return EvidenceCut(
        f"registry attestations of {digest} not read: {'; '.join(parts)}. The key is refused: evidence not read "
        f"could change the decision (raise {limits} if images with this much attestation data are expected, or prune "
        "the image's attestations)",
        limit=limits,
        size=sum(c.size for c in cuts),
        hint=f"raise {limits}, or prune the image's attestations (old or junk referrers, old .att layers)",
    )


def _store_candidates(store: Any, walker: _Walker, result: Discovery, target: str, per_tenant: int, targets_left: int = 1) -> None:
    """The store's candidates for ``target`` within its share of the store's own byte budget:
    what is left of it divided by the targets still to read (the store checks each row's size
    before loading its bytes, and gives each tenant a max-min fair share, newest first); what it left out becomes
    problems naming the tenant (never a cut: one tenant must not make another's image
    undeployable). Each row is also reserved in the request's budget (transient when it is
    used up by the request's other keys)."""
    remaining = walker.store_budget.remaining
    share = None if remaining is None else remaining // max(targets_left, 1)
    found = store.find_by_digest(target, per_tenant=per_tenant, max_bytes=share)
    for tenant, rows, why in found.skipped:
        detail = (
            f"{rows} imported attestation(s) of tenant {tenant!r} over limits.attestationsPerImage ({per_tenant}); the newest were read"
            if why == "rows"
            else f"{rows} imported attestation(s) of tenant {tenant!r} not read: over the tenant's share of "
            f"limits.attestationBytesPerImage ({walker.store_budget.limit} bytes for imports, {share} bytes for {target})"
        )
        result.problems.append(Problem(target, f"store:{tenant}", "LIMIT_EXCEEDED", detail))
    for cand in found.candidates:
        size = len(cand.data)
        if not walker.store_budget.try_reserve(size):  # a store that ignored max_bytes: left out, named
            tenant = cand.annotations.get("dev.stellaops/tenant", "")
            result.problems.append(Problem(target, cand.location or f"store:{tenant}", "LIMIT_EXCEEDED",
                                           f"imported attestation of tenant {tenant!r} ({size} bytes) not read: over limits.attestationBytesPerImage for imports"))
            continue
        if walker.request_budget is not None and not walker.request_budget.try_reserve(size):
            walker.store_budget.release(size)
            raise RequestBudgetExceeded(
                f"imported attestation {cand.location} ({size} bytes) would take this request's attestations past "
                f"limits.attestationBytesPerRequest ({walker.request_budget.limit} bytes); not read",
                hint="the other images of the same request hold the budget; retried on the next admission "
                "(raise limits.attestationBytesPerRequest if requests this large are expected)",
            )
        result.add(cand)


def discover(
    client: RegistryClient,
    ref: Reference,
    digest: str,
    *,
    store: CandidateStore | None = None,
    media_type: str | None = None,
) -> list[Candidate]:
    """Every attestation candidate for the image ``digest`` in ``ref``'s repository."""
    return discover_all(client, ref, digest, store=store, media_type=media_type).candidates
