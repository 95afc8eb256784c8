"""Sigstore trust material delivered by TUF: a custom mirror, or public-good Sigstore.

Two sources, one refresh policy:

- a **custom mirror** (``attestation.trustRoots.sigstore.tuf``, ``--tuf-mirror``/``--tuf-root``;
  what ``cosign initialize --mirror URL --root root.json`` sets up) is read with python-tuf's
  ``ngclient.Updater``: the given root metadata is the trust anchor, newer roots are followed when
  each is signed by its predecessor's keys, and the ``trusted_root.json`` target is downloaded only
  if the timestamp → snapshot → targets chain verifies and its length and hashes match. Metadata
  and targets are cached under ``cache_dir``.
- **public-good Sigstore** (no local material and no mirror) goes through sigstore-python's own
  TUF client (``ClientTrustConfig.production``), with the root it embeds and its cache.

Refresh (:func:`trusted_root_document`): fetched material is used for ``refresh_seconds``; then the
source is asked again. If that refresh fails, the last good material keeps being used until
``max_stale_seconds`` after it was fetched (retrying at most every :data:`RETRY_SECONDS`), and
then verification fails closed with :class:`TufUnavailable`. A repository that answers with
material that does not verify (bad signature, expired metadata, hash mismatch, rollback) is never
used: :class:`TufVerificationError`, and the last good material follows the same bounded rule.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib import parse

from ..errors import ConfigError, StellaError
from ..trust import TufMirror

_log = logging.getLogger(__name__)

TRUSTED_ROOT_TARGET = "trusted_root.json"
SOCKET_TIMEOUT = 10  # seconds, per connection and between bytes
RETRY_SECONDS = 30.0  # after a failed refresh, serve the last good material this long before asking again


class TufVerificationError(ConfigError):
    """The TUF repository answered, but its metadata or target does not verify against the trusted root."""


class TufUnavailable(StellaError):
    """The TUF repository could not be reached (transient: retry)."""

    # A TUF mirror is a remote store of trust material: unreachable or 5xx is transient, never a
    # definitive per-key verdict (DESIGN.md §2). verify_candidate re-raises it, so the provider
    # puts the key in systemError and caches nothing.
    reason = "TRUST_ROOT_UNAVAILABLE"


def default_cache_dir(url: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stellaops" / "tuf" / parse.quote(url.rstrip("/"), safe="")


def check_mirror_url(url: str, where: str = "TUF mirror") -> str:
    """An ``http(s)://host[:port][/path]`` base URL, without its trailing slash."""
    try:
        parts = parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{where} {url!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where} {url!r} must be an http(s) URL with a host",
            hint="the base URL of the TUF repository, e.g. https://tuf-repo-cdn.sigstore.dev (as cosign initialize --mirror)",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where} {url!r} must not carry a query, fragment or credentials")
    return url.rstrip("/")


def check_root_metadata(data: bytes, source: str) -> int:
    """Parse ``data`` as TUF root metadata signed by its own threshold of keys; return its version.

    A start-up check (the configuration names ``source``): the full verification happens when the
    repository is read."""
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata, Root

    hint = "pass the root.json of the TUF repository (as cosign initialize --root)"
    try:
        md = Metadata[Root].from_bytes(data)
    except Exception as exc:  # noqa: BLE001 - DeserializationError wraps whatever the JSON held
        raise ConfigError(f"{source}: not TUF root metadata: {type(exc).__name__}: {exc}", hint=hint) from exc
    if not isinstance(md.signed, Root):
        raise ConfigError(f"{source}: this is TUF {md.signed.type} metadata, not root metadata", hint=hint)
    try:
        md.verify_delegate(Root.type, md)
    except RepositoryError as exc:  # UnsignedMetadataError: not signed by its own keys
        raise ConfigError(f"{source}: TUF root metadata does not verify against its own keys: {exc}", hint=hint) from exc
    return int(md.signed.version)


def fetch_from_mirror(mirror: TufMirror) -> bytes:
    """Run the TUF client workflow against ``mirror`` and return the verified ``trusted_root.json``."""
    import urllib3
    from tuf.api import exceptions
    from tuf.ngclient import Updater, UpdaterConfig
    from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

    url = mirror.url.rstrip("/")
    cache = Path(mirror.cache_dir) if mirror.cache_dir else default_cache_dir(url)
    metadata_dir, targets_dir = cache / "metadata", cache / "targets"
    where = f"TUF mirror {url}"
    try:
        metadata_dir.mkdir(parents=True, exist_ok=True)
        targets_dir.mkdir(parents=True, exist_ok=True)
        updater = Updater(
            metadata_dir=str(metadata_dir),
            metadata_base_url=url,
            target_dir=str(targets_dir),
            target_base_url=parse.urljoin(f"{url}/", "targets/"),
            fetcher=Urllib3Fetcher(socket_timeout=SOCKET_TIMEOUT, app_user_agent="stellaops-attest"),
            config=UpdaterConfig(app_user_agent="stellaops-attest"),
            bootstrap=mirror.root_json,
        )
        updater.refresh()
        info = updater.get_targetinfo(TRUSTED_ROOT_TARGET)
        if info is None:
            raise TufVerificationError(
                f"{where}: the repository's targets metadata lists no {TRUSTED_ROOT_TARGET}",
                hint="the mirror must publish Sigstore's trusted_root.json as a TUF target",
            )
        path = updater.find_cached_target(info) or updater.download_target(info)
        return Path(path).read_bytes()
    except StellaError:
        raise
    except exceptions.ExpiredMetadataError as exc:
        raise TufVerificationError(
            f"{where}: {exc} (the repository's metadata has expired and must not be trusted)",
            hint="the mirror's operators must re-sign timestamp/snapshot metadata; nothing from it is used meanwhile",
        ) from exc
    except exceptions.LengthOrHashMismatchError as exc:
        raise TufVerificationError(
            f"{where}: {exc} (a file does not match the length or hashes its signed metadata gives)",
            hint="the mirror serves altered or inconsistent files; nothing from it is used",
        ) from exc
    except exceptions.UnsignedMetadataError as exc:
        raise TufVerificationError(
            f"{where}: {exc}: the repository's metadata is not signed by the keys of the trusted root "
            f"({mirror.root_source or 'the given root.json'})",
            hint="check that the root.json given (tuf.root / --tuf-root) belongs to this mirror",
        ) from exc
    except exceptions.RepositoryError as exc:
        raise TufVerificationError(f"{where}: the repository's metadata does not verify: {type(exc).__name__}: {exc}") from exc
    except exceptions.DownloadHTTPError as exc:
        if exc.status_code >= 500 or exc.status_code == 429:
            raise TufUnavailable(f"{where} answered HTTP {exc.status_code}", hint="retry later") from exc
        raise TufVerificationError(
            f"{where} answered HTTP {exc.status_code} for a file the TUF client needs",
            hint="check that the URL is the base of the TUF repository (where N.root.json and timestamp.json are)",
        ) from exc
    except (exceptions.DownloadError, urllib3.exceptions.HTTPError) as exc:
        raise TufUnavailable(
            f"{where} could not be reached: {type(exc).__name__}: {exc or exc.__cause__ or exc.__context__}",
            hint="check the URL and the network; verification needing Sigstore material fails until it answers",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"TUF cache directory {str(cache)!r} is not usable: {exc}", hint="set tuf.cacheDir to a writable directory") from exc


def fetch_public_good(*, offline: bool) -> bytes:
    """Public-good Sigstore's ``trusted_root.json`` through sigstore-python's TUF client
    (its embedded root; with ``offline`` only what it has cached or embeds, no network)."""
    from sigstore.models import ClientTrustConfig

    try:
        config = ClientTrustConfig.production(offline=offline)
        raw = config.trusted_root._inner.to_json()
    except Exception as exc:  # noqa: BLE001 - sigstore/TUF raise many types
        raise TufUnavailable(
            f"public-good Sigstore trust root could not be fetched through TUF: {type(exc).__name__}: {exc}",
            hint="check the network (tuf-repo-cdn.sigstore.dev), or configure bundlePath with a trusted_root.json",
        ) from exc
    return raw.encode() if isinstance(raw, str) else bytes(raw)


@dataclass
class _Held:
    document: bytes
    fetched_at: float  # last successful fetch
    failed_at: float | None = None  # last failed refresh since then


_HELD: dict[str, _Held] = {}
_FETCHING: dict[str, threading.Lock] = {}  # one fetch per source at a time
_LOCK = threading.Lock()  # guards the two dicts, never held during I/O


def trusted_root_document(
    key: str,
    fetch: Callable[[], bytes],
    *,
    refresh_seconds: float,
    max_stale_seconds: float,
    validate: Callable[[bytes], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """The current ``trusted_root.json`` of the TUF source ``key`` under the refresh policy above.

    ``validate`` checks a freshly fetched document (it raises to refuse it). While one caller
    refreshes, others get the held material if it is still within ``max_stale_seconds``, else
    wait for that refresh."""
    with _LOCK:
        held = _HELD.get(key)
        now = clock()
        if held is not None and now - held.fetched_at < refresh_seconds:
            return held.document
        usable = held is not None and now - held.fetched_at < max_stale_seconds
        failed_recently = held is not None and held.failed_at is not None and now - held.failed_at < RETRY_SECONDS
        if held is not None and usable and failed_recently:
            return held.document
        fetching = _FETCHING.setdefault(key, threading.Lock())
    if held is not None and usable:
        if not fetching.acquire(blocking=False):
            return held.document  # another caller is refreshing it
    else:
        fetching.acquire()
    try:
        with _LOCK:  # someone may have refreshed it while we waited
            latest = _HELD.get(key)
        if latest is not None and latest is not held and clock() - latest.fetched_at < refresh_seconds:
            return latest.document
        return _refresh(key, fetch, held, validate, max_stale_seconds, clock)
    finally:
        fetching.release()


def _refresh(
    key: str,
    fetch: Callable[[], bytes],
    held: _Held | None,
    validate: Callable[[bytes], object] | None,
    max_stale_seconds: float,
    clock: Callable[[], float],
) -> bytes:
    try:
        document = fetch()
        if validate is not None:
            validate(document)
    except StellaError as exc:
        if held is None:
            raise
        now = clock()
        held.failed_at = now
        age = now - held.fetched_at
        if age < max_stale_seconds:
            _log.warning(
                "refreshing Sigstore trust material from %s failed (%s); using the material fetched %.0f s ago "
                "(at most %.0f s)", key, exc, age, max_stale_seconds,
            )  # fmt: skip
            return held.document
        raise type(exc)(
            f"{exc.detail}; the last good material is {age:.0f} s old, more than the {max_stale_seconds:.0f} s allowed",
            reason=exc.reason,
            hint=exc.hint,
        ) from exc
    with _LOCK:
        _HELD[key] = _Held(document=document, fetched_at=clock())
    return document


def mirror_document(mirror: TufMirror, validate: Callable[[bytes], object] | None = None) -> bytes:
    return trusted_root_document(
        f"mirror {mirror.url.rstrip('/')} root sha256:{hashlib.sha256(mirror.root_json).hexdigest()}",
        lambda: fetch_from_mirror(mirror),
        refresh_seconds=mirror.refresh_seconds,
        max_stale_seconds=mirror.max_stale_seconds,
        validate=validate,
    )


PUBLIC_GOOD_REFRESH_SECONDS = 3600.0
PUBLIC_GOOD_MAX_STALE_SECONDS = 86400.0


def public_good_document(*, offline: bool, validate: Callable[[bytes], object] | None = None) -> bytes:
    return trusted_root_document(
        f"public-good Sigstore{' (offline)' if offline else ''}",
        lambda: fetch_public_good(offline=offline),
        refresh_seconds=PUBLIC_GOOD_REFRESH_SECONDS,
        max_stale_seconds=PUBLIC_GOOD_MAX_STALE_SECONDS,
        validate=validate,
    )


def forget() -> None:
    """Drop all held material (tests; a configuration reload)."""
    with _LOCK:
        _HELD.clear()
        _FETCHING.clear()
