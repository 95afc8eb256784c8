"""The optional online Rekor lookup: find the log entry of an attestation that carries none.

Off unless ``attestation.tlogLookup.enabled`` (or the CLI's ``--rekor-url``), and never when the
trust roots are ``offline`` (air-gapped). It asks Rekor v1 the way cosign v3.1.3 does
(``pkg/cosign/tlog.go`` ``FindTlogEntry``, called from ``tlogValidateEntry`` in ``verify.go``): a
``POST /api/v1/log/entries/retrieve`` search with *proposed entries* built from the envelope
bytes and the signer's key or certificate — a ``dsse`` 0.0.1 and an ``intoto`` 0.0.1 entry, the
two kinds cosign uploads attestations as. Rekor canonicalises them and looks up their leaf hash,
so only an entry for exactly these bytes and this verifier can come back (no search index is
needed). What comes back is untrusted input: the caller verifies it exactly like an attached
entry (SET with the configured Rekor key, inclusion proof and checkpoint, binding to this
envelope and signer).

Limits: one HTTP request, bounded by ``timeout_seconds`` and by the provider's request deadline
(:func:`stellaops.registry.deadline_scope`), at most ``max_response_bytes`` read, no redirects, no
proxy variables, the registry client's connection guard (cloud metadata addresses refused).
Failures: connection errors, timeouts, 5xx and 429 → :class:`RekorUnreachable` (transient:
``systemError``, nothing cached); anything else that is not a 200 answer → no entry found. An
answer that is not strict JSON (or nests too deep) → ``TLOG_INVALID``/``LIMIT_EXCEEDED``.

Cache, in memory per (Rekor URL, envelope bytes, verifiers), bounded to ``CACHE_SIZE`` keys:
every answer for ``NOT_FOUND_TTL`` (a minute: "no entry", and entries that came back but turn
out unusable — forged, logged after the certificate expired — so neither is sent to Rekor on
every admission, yet one logged since is found soon); the entries the caller has verified
(:func:`remember`) for ``CACHE_TTL`` (a logged entry never changes). What is cached is still
verified on every use.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..dsse import strict_json
from ..errors import StellaError
from ..trust import TlogLookup
from .tlog import LogEntry, TlogInvalid, TlogMissing, parse_rekor_entry

SEARCH_PATH = "/api/v1/log/entries/retrieve"
MAX_ENTRIES = 16  # entries read from one answer; more is not an answer to our query
CACHE_SIZE = 1024
CACHE_TTL = 3600.0  # an entry that verified
NOT_FOUND_TTL = 60.0  # Rekor answered that it has no entry


class RekorUnreachable(StellaError):
    """Rekor could not be asked (transient: the next admission retries)."""

    reason = "TLOG_UNREACHABLE"


def check_rekor_url(url: str) -> str:
    """The configured Rekor URL, normalised (no trailing slash); raises ValueError with the cause."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not carry credentials, a query or a fragment")
    return url.rstrip("/")


def _pem(der: bytes) -> bytes:
    """PEM of a verifier (a certificate or an SPKI public key) as Rekor reads it."""
    try:
        return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    except ValueError:
        key = serialization.load_der_public_key(der)
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def proposed_entries(envelope_bytes: bytes, verifier_ders: list[bytes]) -> list[dict[str, Any]]:
    """cosign's proposed entries for an attestation (``proposedEntries`` with an empty
    signature): ``dsse`` 0.0.1 then ``intoto`` 0.0.1, for each verifier."""
    envelope = envelope_bytes.decode("utf-8")
    out: list[dict[str, Any]] = []
    for der in dict.fromkeys(verifier_ders):
        pem = base64.b64encode(_pem(der)).decode()
        out.append({"kind": "dsse", "apiVersion": "0.0.1", "spec": {"proposedContent": {"envelope": envelope, "verifiers": [pem]}}})
        out.append({"kind": "intoto", "apiVersion": "0.0.1", "spec": {"content": {"envelope": envelope}, "publicKey": pem}})
    return out


class _Cache:
    """(Rekor URL, envelope, verifiers) → the entries to try: () for "none", or one verified entry."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, tuple[LogEntry, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[LogEntry, ...] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] < time.monotonic():
                self._items.pop(key, None)
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: str, value: tuple[LogEntry, ...], ttl: float) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > CACHE_SIZE:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


CACHE = _Cache()
_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def _session(base_url: str) -> requests.Session:
    # The registry client's guarded adapter: the address check inside the connection (metadata
    # addresses always refused) and the deadline watchdog on the response head. Private names
    # of registry.py, reused rather than written twice.
    from ..registry import RegistryPolicy, _guarded_adapter

    with _sessions_lock:
        session = _sessions.get(base_url)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxy variables, no .netrc: only the configured URL
            adapter = _guarded_adapter(RegistryPolicy(allow_private=True), 4)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[base_url] = session
        return session


def _read(resp: requests.Response, limit: int, budget_end: float) -> bytes:
    from ..registry import _cut_connection

    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise TlogInvalid(f"Rekor's answer is {length} bytes, more than tlogLookup.maxResponseBytes ({limit})", reason="LIMIT_EXCEEDED")
    cut = threading.Event()
    watchdog = threading.Timer(max(budget_end - time.monotonic(), 0.0) + 0.05, _cut_connection, (resp, cut))
    watchdog.daemon = True
    watchdog.start()
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in resp.iter_content(65536):
            total += len(chunk)
            if total > limit:
                raise TlogInvalid(f"Rekor's answer is more than tlogLookup.maxResponseBytes ({limit})", reason="LIMIT_EXCEEDED")
            chunks.append(chunk)
            if time.monotonic() > budget_end:
                cut.set()
                break
    except (requests.RequestException, OSError, AttributeError, ValueError) as exc:
        raise RekorUnreachable(f"reading Rekor's answer failed: {type(exc).__name__}") from exc
    finally:
        watchdog.cancel()
    if cut.is_set():
        raise RekorUnreachable("Rekor's answer did not arrive within the lookup's time budget", hint=_HINT_SLOW)
    return b"".join(chunks)


_HINT_DOWN = "check that Rekor (trustRoots.sigstore.rekorUrl) is reachable from the provider; the key is retried on the next admission"
_HINT_SLOW = "raise attestation.tlogLookup.timeoutSeconds (within server.deadlineSeconds), or attach the log entry to the attestation"


def _cache_key(settings: TlogLookup, envelope_bytes: bytes, verifier_ders: list[bytes]) -> str:
    return hashlib.sha256(
        b"\0".join([settings.rekor_url.encode(), hashlib.sha256(envelope_bytes).digest(), *sorted(set(verifier_ders))])
    ).hexdigest()


def search(settings: TlogLookup, envelope_bytes: bytes, verifier_ders: list[bytes]) -> list[LogEntry]:
    """The entries Rekor has for these envelope bytes and verifiers (parsed, *unverified*).

    Raises :class:`RekorUnreachable` when Rekor cannot answer in time; returns ``[]`` when it
    answers that it has none. Entries that are malformed or whose UUID is not their leaf hash are
    dropped (as cosign does). The caller verifies what comes back and hands the entry that
    verified to :func:`remember`."""
    from ..registry import _AddressRefused, remaining_time

    if not verifier_ders:
        return []
    key = _cache_key(settings, envelope_bytes, verifier_ders)
    hit = CACHE.get(key)
    if hit is not None:
        return list(hit)
    budget = settings.timeout_seconds
    left = remaining_time()
    if left is not None:
        budget = min(budget, left)
    if budget <= 0.01:
        raise RekorUnreachable("no time is left in the request deadline for the Rekor lookup", hint=_HINT_SLOW)
    raw = _post(settings, {"entries": proposed_entries(envelope_bytes, verifier_ders)}, budget, _AddressRefused)
    entries = [] if raw is None else _parse(raw)
    # every answer is kept briefly, "none" and "found" alike (the caller verifies what it is
    # given each time): an entry that turns out unusable does not cost a request per admission
    CACHE.put(key, tuple(entries), NOT_FOUND_TTL)
    return entries


def remember(settings: TlogLookup, envelope_bytes: bytes, verifier_ders: list[bytes], entries: list[LogEntry]) -> None:
    """Cache ``entries``, found by :func:`search` with these arguments, once they have verified."""
    CACHE.put(_cache_key(settings, envelope_bytes, verifier_ders), tuple(entries), CACHE_TTL)


def _post(settings: TlogLookup, query: dict[str, Any], budget: float, refused: type[Exception]) -> bytes | None:
    from ..registry import deadline_scope

    url = settings.rekor_url + SEARCH_PATH
    end = time.monotonic() + budget
    with deadline_scope(end):  # bounds the response head (the guarded adapter's watchdog)
        try:
            resp = _session(settings.rekor_url).post(
                url,
                json=query,
                timeout=(budget, budget),
                allow_redirects=False,
                stream=True,
                headers={"Accept": "application/json", "User-Agent": "stellaops-attest/0.1"},
            )
        except refused as exc:
            raise TlogMissing(f"the Rekor URL {settings.rekor_url} is refused: {exc}") from exc
        except requests.Timeout as exc:
            raise RekorUnreachable(f"Rekor at {settings.rekor_url} did not answer within {budget:.2f}s", hint=_HINT_SLOW) from exc
        except (requests.RequestException, OSError, AttributeError) as exc:
            raise RekorUnreachable(f"Rekor at {settings.rekor_url} cannot be reached: {type(exc).__name__}", hint=_HINT_DOWN) from exc
        with resp:
            if resp.status_code >= 500 or resp.status_code == 429:
                raise RekorUnreachable(f"Rekor at {settings.rekor_url} answered HTTP {resp.status_code} to the entry search", hint=_HINT_DOWN)
            if resp.status_code != 200:
                # 400: Rekor could not build an entry from the proposal (e.g. a kind it does not
                # serve); 3xx/404: not a Rekor v1 API at that URL. Either way: no entry found.
                return None
            return _read(resp, settings.max_response_bytes, end)


def _parse(raw: bytes) -> list[LogEntry]:
    # strict: duplicate keys refused, and a bounded depth (a deeply nested answer would otherwise
    # raise RecursionError out of the verifier)
    doc = strict_json(raw, what="Rekor's answer to the entry search", error=TlogInvalid)
    if not isinstance(doc, list):
        return []
    out: list[LogEntry] = []
    seen: set[str] = set()
    for item in doc[:MAX_ENTRIES]:
        if not isinstance(item, dict):
            continue
        for uuid, value in list(item.items())[:MAX_ENTRIES]:
            if uuid in seen:
                continue
            seen.add(uuid)
            try:
                out.append(parse_rekor_entry(uuid, value))
            except StellaError:
                continue  # a malformed entry or one whose UUID is not its leaf hash: dropped
    return out
