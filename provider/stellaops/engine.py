"""The chain for each image key: reference → digest → discovery → verification → verdict.

The per-image part (discovery with the store, limits and byte budgets, verification, the
verdict with every platform) is :func:`imagecheck.verify_image`, shared with ``stella attest
verify``; this module adds what only the service has: the digest and verdict caches, one
deadline and one byte budget (``limits.attestationBytesPerRequest``) per request, the pool,
and ``bounds.bound_verdict`` on every fresh verdict before it is cached.

``Engine.verify_batch`` runs the keys of one request concurrently (a bounded pool shared by
the process), verifies each distinct key once, and keeps one deadline for the whole request:
a key not finished by then is reported as transient (``DEADLINE_EXCEEDED``), never answered
late (DESIGN.md §2 "Failure semantics", §7).

Outcomes per key:
- a :class:`Verdict` (definitive; verified or not, with reasons), cached by
  (digest, trust fingerprint) with a positive or a negative TTL;
- a definitive :class:`StellaError` (the key can never succeed as written: bad reference,
  registry not allowed, image not found, credentials refused) → per-key ``error``;
- a transient :class:`StellaError` (registry unreachable, deadline, store down, the request's
  byte budget used up by its other keys) → ``systemError``, item omitted, nothing cached, so the
  next admission retries.

A transient failure while verifying *one attestation* (its Rekor lookup, the TUF mirror) is
transient for the key too (``systemError``), even when another attestation verified: a verdict
that leaves one attestation unchecked would be cached by Gatekeeper as if it were complete
(DESIGN.md §2). Only attestations that passed the identity checks reach a lookup, so a junk
attestation cannot cause this (``verify/attestation.py``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from . import metrics
from .bounds import bound_verdict
from .budget import ByteBudget
from .clients import make_registry_client
from .config import Config
from .errors import RegistryError, StellaError
from .imagecheck import DeadlineExceeded, verify_image
from .reference import Reference, parse_reference
from .verdict import AttestationResult, Verdict

log = logging.getLogger("stellaops.engine")


@dataclass
class BatchResult:
    """Per distinct key: a verdict, or an error (``error.transient`` tells which kind)."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    errors: dict[str, StellaError] = field(default_factory=dict)

    @property
    def transient(self) -> dict[str, StellaError]:
        return {k: e for k, e in self.errors.items() if e.transient}

    @property
    def definitive(self) -> dict[str, StellaError]:
        return {k: e for k, e in self.errors.items() if not e.transient}


class Engine:
    """Verifies images against one configuration. Thread-safe; one per process."""

    def __init__(
        self,
        config: Config,
        *,
        client: Any = None,
        store: Any = None,
        cache: Any = None,
        verify: Callable[..., AttestationResult] | None = None,
    ) -> None:
        self.config = config
        self.client = client if client is not None else make_registry_client(config)
        self.store = store
        if cache is None:
            from .cache import open_cache

            cache = open_cache(config.cache)
        self.cache = cache
        if verify is None:
            from .verify.attestation import verify_candidate as verify
        self._verify = verify
        self._pool = ThreadPoolExecutor(max_workers=max(1, config.server.verify_concurrency), thread_name_prefix="verify")
        self._digests: dict[str, tuple[str, float, str | None]] = {}
        self._digests_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ batch

    def verify_batch(self, keys: list[str], *, deadline: float | None = None) -> BatchResult:
        """Verify every distinct key under one deadline (``time.monotonic()`` based)."""
        if deadline is None:
            deadline = time.monotonic() + self.config.server.deadline_seconds
        result = BatchResult()
        budget: ByteBudget | None = None
        futures: dict[Future[Verdict], str] = {}
        for key in dict.fromkeys(keys):  # distinct, in order
            hit = self._cached_fast(key)
            if hit is not None:  # warm path: answered inline, no pool hop
                result.verdicts[key] = hit
                continue
            if budget is None:  # one for the attestation bytes of every key of this request (each key has its own too)
                budget = ByteBudget(self.config.limits.attestation_bytes_per_request, "limits.attestationBytesPerRequest")
            futures[self._pool.submit(self._verify_key_guarded, key, deadline, budget)] = key
        pending = set(futures)
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            done, pending = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
            for fut in done:
                key = futures[fut]
                try:
                    result.verdicts[key] = fut.result()
                except StellaError as exc:
                    result.errors[key] = exc
        for fut in pending:
            fut.cancel()
            key = futures[fut]
            result.errors[key] = DeadlineExceeded(
                f"{key}: not verified within the {self.config.server.deadline_seconds:g}s deadline",
                hint="retry; if it keeps happening, check the registry's latency or raise server.deadlineSeconds "
                "(keep it below the Provider's spec.timeout)",
            )
            metrics.OUTCOMES.labels("DEADLINE_EXCEEDED").inc()
        return result

    def _verify_key_guarded(self, key: str, deadline: float, budget: ByteBudget | None = None) -> Verdict:
        try:
            return self.verify_key(key, deadline=deadline, request_budget=budget)
        except StellaError as exc:
            metrics.OUTCOMES.labels(exc.reason).inc()
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must not take the request down: fail closed
            log.exception("internal error verifying %s", key)
            err = StellaError(
                f"internal error while verifying {key}: {type(exc).__name__}",
                reason="INTERNAL_ERROR",
                hint="this is a bug in StellaOps Attest (see the provider log); the key is retried on the next admission",
            )
            metrics.OUTCOMES.labels("INTERNAL").inc()
            raise err from exc

    # ------------------------------------------------------------------ one key

    def verify_key(self, key: str, *, deadline: float | None = None, request_budget: ByteBudget | None = None) -> Verdict:
        """The whole chain for one image reference (:func:`imagecheck.verify_image`, with the
        digest and verdict caches around it). Raises StellaError when no verdict can be given.
        Every freshly computed verdict is bounded (``bounds.bound_verdict``) before it is cached."""
        from .registry import deadline_scope

        if deadline is None:
            deadline = time.monotonic() + self.config.server.deadline_seconds
        ref = parse_reference(key)
        with deadline_scope(deadline):
            digest, media_type = self._digest(ref)
            cache_key = self._cache_key(ref.name, digest)
            cached = self.cache.get(cache_key)
            if cached is not None:
                metrics.CACHE_HIT.inc()
                return CachedVerdict(image=key, digest=digest, raw=cached)
            metrics.CACHE_MISS.inc()
            verdict = verify_image(
                self.client,
                ref,
                key,
                trust=self.config.trust,
                limits=self.config.limits,
                digest=digest,
                media_type=media_type,
                store=self.store,
                deadline=deadline,
                request_budget=request_budget,
                verify=self._verify,
            )
        verdict = bound_verdict(verdict, self.config.limits)
        positive = any(a.verified for a in verdict.attestations)
        ttl = self.config.cache.ttl_seconds if positive else self.config.cache.negative_ttl_seconds
        if ttl > 0:
            self.cache.set(cache_key, _verdict_to_cache(verdict), ttl)
        for a in verdict.attestations:
            metrics.OUTCOMES.labels("VERIFIED" if a.verified else (a.errors[0].reason if a.errors else "UNVERIFIED")).inc()
        return verdict

    def _cached_fast(self, key: str) -> Verdict | None:
        """The cached verdict of ``key`` when its digest is already known, without I/O."""
        try:
            ref = parse_reference(key)
        except StellaError:
            return None
        digest = ref.digest
        if digest is None:
            hit = self._digests.get(str(ref))  # a dict read is atomic; expiry checked below
            if hit is None or hit[1] <= time.monotonic():
                return None
            digest = hit[0]
        cached = self.cache.get(self._cache_key(ref.name, digest))
        if cached is None:
            return None
        metrics.CACHE_HIT.inc()
        return CachedVerdict(image=key, digest=digest, raw=cached)

    def invalidate(self, digest: str) -> None:
        """Forget the cached verdicts of one digest in every repository (after an import adds
        attestations to it): a new generation for the digest makes the old keys unreachable."""
        ttl = max(self.config.cache.ttl_seconds, self.config.cache.negative_ttl_seconds)
        if ttl > 0:
            self.cache.set(f"gen:{digest}", uuid.uuid4().hex.encode(), ttl)

    def _cache_key(self, repository: str, digest: str) -> str:
        """(trust, repository, digest, generation): discovery depends on the repository, so a
        verdict computed for a copy of the image elsewhere is never served for this one."""
        gen = self.cache.get(f"gen:{digest}") or b"0"
        return f"verdict:v1:{self.config.trust.fingerprint}:{repository}@{digest}:{gen.decode()}"

    def _digest(self, ref: Reference) -> tuple[str, str | None]:
        """The manifest digest (and media type when known) the reference names now."""
        if ref.digest:
            return ref.digest, None
        name = str(ref)
        now = time.monotonic()
        with self._digests_lock:
            hit = self._digests.get(name)
            if hit and hit[1] > now:
                return hit[0], hit[2]
        desc = self.client.resolve(ref)
        media_type = getattr(desc, "media_type", None) or None
        ttl = self.config.cache.digest_ttl_seconds
        if ttl > 0:
            with self._digests_lock:
                if len(self._digests) > 10000:
                    self._digests = {k: v for k, v in self._digests.items() if v[1] > now}
                self._digests[name] = (desc.digest, now + ttl, media_type)
        return desc.digest, media_type


    def _verify_candidates(self, candidates: list[Any], digest: str) -> list[AttestationResult]:
        """The candidates verified as :func:`imagecheck.verify_candidates` does (kept for tests
        that verify candidates without a registry)."""
        from .imagecheck import verify_candidates

        return verify_candidates(candidates, digest, self.config.trust, verify=self._verify)


def _verdict_to_cache(v: Verdict) -> bytes:
    doc = v.to_json()
    doc.pop("image", None)
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class CachedVerdict(Verdict):
    """A verdict served from the cache. ``raw`` is its JSON as computed (without ``image``), so
    the Gatekeeper answer can splice the bytes instead of parsing and re-encoding them."""

    raw: bytes = b"{}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image}
        out.update(json.loads(self.raw))
        return out

    def value_bytes(self, key_json: bytes) -> bytes:
        """The verdict's JSON with ``image`` set, given the key already JSON-encoded."""
        return b'{"image":' + key_json + b"," + self.raw[1:] if len(self.raw) > 2 else b'{"image":' + key_json + b"}"


__all__ = ["Engine", "BatchResult", "DeadlineExceeded", "RegistryError", "make_registry_client"]
