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

Slow sources: fetches run on one daemon refresher thread per source, never on the caller's
thread. A mirror fetch has one overall deadline (``fetch_timeout_seconds``) for all its
metadata and its target, enforced by shutting its sockets (a mirror trickling a byte at a time
never trips urllib3's per-recv timeout), and a size limit per file. Callers holding usable
material never wait; callers without it wait for the refresher at most their request deadline.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import parse

from ..errors import ConfigError, StellaError
from ..trust import TufMirror

_log = logging.getLogger(__name__)

TRUSTED_ROOT_TARGET = "trusted_root.json"
SOCKET_TIMEOUT = 10  # seconds, per connect and between bytes (each also capped by the time left)
FETCH_TIMEOUT_SECONDS = 10.0  # default overall deadline of one refresh (tuf.fetchTimeoutSeconds)
WAIT_SLACK_SECONDS = 5.0  # outside a request, how much longer than a fetch a caller waits for one
# Outside a request, a caller waits for a mirror fetch as long as the fetch may take (its overall
# deadline, fetchTimeoutSeconds, plus WAIT_SLACK_SECONDS); the provider's start-up prefetch runs
# under a deadline of its own (app.PREFETCH_SECONDS). Public-good Sigstore's fetch has no overall
# deadline (sigstore-python's client), so a caller outside a request waits at most this long for
# it; the fetch itself goes on in the background.
MAX_WAIT_SECONDS = 20.0
RETRY_SECONDS = 30.0  # after a failed refresh, serve the last good material this long before asking again
USER_AGENT = "stellaops-attest"
# Size limits per file (python-tuf's UpdaterConfig; its defaults, stated here so they are ours).
METADATA_MAX_BYTES = {
    "root_max_length": 512_000,
    "timestamp_max_length": 16_384,
    "snapshot_max_length": 2_000_000,
    "targets_max_length": 5_000_000,
}
TARGET_MAX_BYTES = 1 << 20  # trusted_root.json: a few KiB in practice


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


class _DeadlineFetcher:
    """python-tuf's urllib3 fetcher under one deadline for a whole refresh.

    urllib3's timeouts are per connect and per recv, so a mirror (or anyone on the path of an
    http:// mirror) sending a byte every few seconds stretches a download without limit. This
    fetcher is made for one refresh: every socket it opens is recorded (a connection class
    registered in the pool managers of python-tuf's fetcher), and a timer shuts them all when
    ``deadline`` passes, which ends any blocked recv at once. Each recv and connect also gets at
    most the time left. ``cut`` tells the caller that whatever came back was cut by us."""

    def __init__(self, deadline: float, user_agent: str) -> None:
        from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

        self.deadline = deadline
        self.cut = threading.Event()
        self._sockets: list[socket.socket] = []
        self._guard = threading.Lock()
        self._managers: list[Any] = []
        outer = self

        class Fetcher(Urllib3Fetcher):
            def _fetch(self, url: str) -> Iterator[bytes]:
                left = outer.deadline - time.monotonic()
                if left <= 0 or outer.cut.is_set():
                    outer.cut.set()
                    raise _DeadlinePassed(f"the fetch deadline passed before {url}")
                self.socket_timeout = min(SOCKET_TIMEOUT, left)  # type: ignore[assignment]
                return outer._checked(super()._fetch(url))

        self.fetcher = Fetcher(socket_timeout=SOCKET_TIMEOUT, app_user_agent=user_agent)
        # python-tuf picks a pool manager per proxy setting (HTTP(S)_PROXY, NO_PROXY); ours record
        # the sockets they open. (tuf 7.0.1: Urllib3Fetcher._proxy_env.get_pool_manager)
        env = self.fetcher._proxy_env
        pick = env.get_pool_manager

        def tracked(scheme: str | None, host: str | None) -> Any:
            manager = pick(scheme, host)
            if manager not in self._managers:
                manager.pool_classes_by_scheme = self._pool_classes()
                manager.key_fn_by_scheme = dict(manager.key_fn_by_scheme)
                self._managers.append(manager)
            return manager

        env.get_pool_manager = tracked  # type: ignore[method-assign]
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._cut_all)
        self._timer.daemon = True
        self._timer.start()

    def _pool_classes(self) -> dict[str, Any]:
        from urllib3.connection import HTTPConnection, HTTPSConnection
        from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

        track = self._track

        class Conn(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                return track(super()._new_conn())

        class TLSConn(HTTPSConnection):
            def _new_conn(self) -> socket.socket:  # before the TLS handshake: a slow handshake is cut too
                return track(super()._new_conn())

        class Pool(HTTPConnectionPool):
            ConnectionCls = Conn

        class TLSPool(HTTPSConnectionPool):
            ConnectionCls = TLSConn

        return {"http": Pool, "https": TLSPool}

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._guard:
            self._sockets.append(sock)
            if self.cut.is_set():
                _shut(sock)
        return sock

    def _cut_all(self) -> None:
        with self._guard:
            self.cut.set()
            for sock in self._sockets:
                _shut(sock)

    def _checked(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        # a shut socket reads as a clean end: a body that ends after the cut is never complete
        for chunk in chunks:
            if self.cut.is_set():
                raise _DeadlinePassed("the fetch deadline passed during a download")
            yield chunk
        if self.cut.is_set():
            raise _DeadlinePassed("the fetch deadline passed during a download")

    def close(self) -> None:
        self._timer.cancel()
        for manager in self._managers:
            manager.clear()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _updater_config() -> Any:
    from tuf.ngclient import UpdaterConfig

    return UpdaterConfig(app_user_agent=USER_AGENT, **METADATA_MAX_BYTES)


def fetch_from_mirror(mirror: TufMirror) -> bytes:
    """Run the TUF client workflow against ``mirror`` and return the verified ``trusted_root.json``.

    The whole run (every metadata file and the target) ends within ``mirror.fetch_timeout_seconds``
    (:class:`TufUnavailable` when it does not); each file is bounded in size
    (:data:`METADATA_MAX_BYTES`, :data:`TARGET_MAX_BYTES`)."""
    timeout = mirror.fetch_timeout_seconds
    fetcher = _DeadlineFetcher(time.monotonic() + timeout, USER_AGENT)
    where = f"TUF mirror {mirror.url.rstrip('/')}"
    try:
        document = _fetch_verified(mirror, fetcher.fetcher)
    except Exception as exc:
        if fetcher.cut.is_set():  # whatever broke, it broke because we cut it: not a verdict on the mirror
            raise _too_slow(where, timeout) from exc
        raise
    finally:
        fetcher.close()
    if fetcher.cut.is_set():
        raise _too_slow(where, timeout)
    return document


def _too_slow(where: str, timeout: float) -> TufUnavailable:
    return TufUnavailable(
        f"{where} did not deliver its metadata and trusted_root.json within the {timeout:g} s fetch deadline",
        hint="check the mirror's latency (and anything between us and it), or raise tuf.fetchTimeoutSeconds",
    )


def _fetch_verified(mirror: TufMirror, fetcher: Any) -> bytes:
    import urllib3
    from tuf.api import exceptions
    from tuf.ngclient import Updater

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
            fetcher=fetcher,
            config=_updater_config(),
            bootstrap=mirror.root_json,
        )
        updater.refresh()
        info = updater.get_targetinfo(TRUSTED_ROOT_TARGET)
        if info is None:
            raise TufVerificationError(
                f"{where}: the repository's targets metadata lists no {TRUSTED_ROOT_TARGET}",
                hint="the mirror must publish Sigstore's trusted_root.json as a TUF target",
            )
        if info.length > TARGET_MAX_BYTES:
            raise TufVerificationError(
                f"{where}: its signed targets metadata gives {TRUSTED_ROOT_TARGET} a length of {info.length} bytes, "
                f"more than the {TARGET_MAX_BYTES} allowed",
                hint="a Sigstore trusted_root.json is a few kilobytes; the mirror publishes something else",
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
    except exceptions.DownloadLengthMismatchError as exc:
        raise TufUnavailable(
            f"{where} sent a file longer than allowed: {exc}",
            hint="the mirror (or something between us and it) serves oversized files; nothing from it is used",
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


class _DeadlinePassed(Exception):
    """Raised inside a download that our fetch deadline cut (reported as :class:`TufUnavailable`)."""


@dataclass
class _Held:
    document: bytes
    fetched_at: float  # last successful fetch


@dataclass
class _Source:
    """One TUF source (a mirror and its root, or public-good Sigstore) and its refresher thread."""

    key: str
    fetch: Callable[[], bytes]
    validate: Callable[[bytes], object] | None
    refresh_seconds: float
    max_stale_seconds: float
    clock: Callable[[], float]
    held: _Held | None = None
    failed_at: float | None = None  # last failed attempt since the last success
    error: StellaError | None = None  # its error
    attempts: int = 0  # finished attempts: waiters watch it change
    running: bool = False  # an attempt is in flight
    wanted: bool = False  # a caller without usable material asked for one now
    stopped: bool = False
    thread: threading.Thread | None = None


_SOURCES: dict[str, _Source] = {}
_COND = threading.Condition()  # guards _SOURCES and every _Source; never held during I/O


def trusted_root_document(
    key: str,
    fetch: Callable[[], bytes],
    *,
    refresh_seconds: float,
    max_stale_seconds: float,
    validate: Callable[[bytes], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wait_seconds: float = FETCH_TIMEOUT_SECONDS + WAIT_SLACK_SECONDS,
) -> bytes:
    """The current ``trusted_root.json`` of the TUF source ``key`` under the refresh policy above.

    Never fetches on the caller's thread: ``fetch`` (then ``validate``, which raises to refuse a
    document) runs on the source's refresher thread. While the held material is within
    ``max_stale_seconds`` it is returned at once (and a due refresh is started in the
    background). Without usable material the caller waits for the refresher's next attempt, at
    most the time left in its request deadline (:func:`stellaops.registry.remaining_time`) or,
    outside a request (CLI, start-up), ``wait_seconds``; then :class:`TufUnavailable`."""
    from ..registry import remaining_time

    with _COND:
        src = _source(key, fetch, validate, refresh_seconds, max_stale_seconds, clock)
        held, now = src.held, clock()
        if held is not None and now - held.fetched_at < max_stale_seconds:
            if now - held.fetched_at >= refresh_seconds:
                _COND.notify_all()  # the refresher sees that a refresh is due (unless one failed just now)
            return held.document
        # no usable material: ask for an attempt now and wait for the next one to finish
        seen = src.attempts
        if not src.running:  # else the attempt in flight is the one to wait for
            src.wanted = True
            _COND.notify_all()
        left = remaining_time()
        budget = wait_seconds if left is None else min(left, wait_seconds)
        end = time.monotonic() + budget
        while src.attempts == seen and not src.stopped:
            wait = end - time.monotonic()
            if wait <= 0:
                raise TufUnavailable(
                    f"no Sigstore trust material from {key} yet: fetching it has not finished within "
                    f"{'the request deadline' if left is not None and left <= wait_seconds else f'{wait_seconds:g} s'}",
                    hint="the fetch goes on in the background and the next request uses its result; check the "
                    "mirror's latency (tuf.fetchTimeoutSeconds bounds each fetch)",
                )
            _COND.wait(wait)
        held = src.held
        if held is not None and clock() - held.fetched_at < max_stale_seconds:
            return held.document
        raise _unusable(src, max_stale_seconds, clock)


def _unusable(src: _Source, max_stale_seconds: float, clock: Callable[[], float]) -> StellaError:
    """A fresh copy of the last attempt's error (raised in many threads at once), with the age of
    the last good material when there is some."""
    exc = src.error or TufUnavailable(f"the refresh of Sigstore trust material from {src.key} was stopped")
    detail = exc.detail
    if src.held is not None:
        age = clock() - src.held.fetched_at
        detail += f"; the last good material is {age:.0f} s old, more than the {max_stale_seconds:.0f} s allowed"
    return type(exc)(detail, reason=exc.reason, hint=exc.hint)


def _source(
    key: str,
    fetch: Callable[[], bytes],
    validate: Callable[[bytes], object] | None,
    refresh_seconds: float,
    max_stale_seconds: float,
    clock: Callable[[], float],
) -> _Source:
    """The source ``key`` (held under ``_COND``) with the caller's settings, its refresher running."""
    src = _SOURCES.get(key)
    if src is None:
        src = _SOURCES[key] = _Source(key, fetch, validate, refresh_seconds, max_stale_seconds, clock)
    else:
        src.fetch, src.validate, src.clock = fetch, validate, clock
        src.refresh_seconds, src.max_stale_seconds = refresh_seconds, max_stale_seconds
    if src.thread is None or not src.thread.is_alive():  # first use, or a forked worker
        src.running = False
        src.thread = threading.Thread(target=_refresher, args=(src,), name="stellaops-tuf-refresh", daemon=True)
        src.thread.start()
    return src


def _due_in(src: _Source) -> float:
    """Seconds (on ``src.clock``) until the next attempt is due; <= 0: now."""
    if src.wanted:
        return 0.0
    now = src.clock()
    retry_in = -1.0 if src.failed_at is None else src.failed_at + RETRY_SECONDS - now
    if src.held is None:
        return retry_in
    return max(src.held.fetched_at + src.refresh_seconds - now, retry_in)


def _refresher(src: _Source) -> None:
    """The refresher thread of one source: fetch when due or asked, until :func:`forget`."""
    while True:
        with _COND:
            while not src.stopped and (due := _due_in(src)) > 0:
                _COND.wait(min(due, 60.0))  # woken early by callers; the cap covers a clock that jumps
            if src.stopped:
                return
            src.running, src.wanted = True, False
            fetch, validate = src.fetch, src.validate
        error: StellaError | None = None
        try:
            document = fetch()
            if validate is not None:
                validate(document)
        except StellaError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - the refresher must survive anything; fail closed
            _log.exception("refreshing Sigstore trust material from %s failed", src.key)
            error = TufUnavailable(f"refreshing Sigstore trust material from {src.key} failed: {type(exc).__name__}: {exc}")
        with _COND:
            src.running = False
            src.attempts += 1
            now = src.clock()
            if error is None:
                src.held, src.failed_at, src.error = _Held(document=document, fetched_at=now), None, None
            else:
                src.failed_at, src.error = now, error
                if src.held is not None and now - src.held.fetched_at < src.max_stale_seconds:
                    _log.warning(
                        "refreshing Sigstore trust material from %s failed (%s); using the material fetched %.0f s "
                        "ago (at most %.0f s)", src.key, error, now - src.held.fetched_at, src.max_stale_seconds,
                    )  # fmt: skip
            _COND.notify_all()


def mirror_document(mirror: TufMirror, validate: Callable[[bytes], object] | None = None) -> bytes:
    return trusted_root_document(
        f"mirror {mirror.url.rstrip('/')} root sha256:{hashlib.sha256(mirror.root_json).hexdigest()}",
        lambda: fetch_from_mirror(mirror),
        refresh_seconds=mirror.refresh_seconds,
        max_stale_seconds=mirror.max_stale_seconds,
        validate=validate,
        wait_seconds=mirror.fetch_timeout_seconds + WAIT_SLACK_SECONDS,
    )


PUBLIC_GOOD_REFRESH_SECONDS = 3600.0
PUBLIC_GOOD_MAX_STALE_SECONDS = 86400.0
PUBLIC_GOOD_WAIT_SECONDS = MAX_WAIT_SECONDS  # outside a request; sigstore-python's client has no overall deadline


def public_good_document(*, offline: bool, validate: Callable[[bytes], object] | None = None) -> bytes:
    return trusted_root_document(
        f"public-good Sigstore{' (offline)' if offline else ''}",
        lambda: fetch_public_good(offline=offline),
        refresh_seconds=PUBLIC_GOOD_REFRESH_SECONDS,
        max_stale_seconds=PUBLIC_GOOD_MAX_STALE_SECONDS,
        validate=validate,
        wait_seconds=PUBLIC_GOOD_WAIT_SECONDS,
    )


def forget() -> None:
    """Drop all held material and stop the refresher threads (tests; a configuration reload).
    A refresher in the middle of a fetch ends when that fetch does (its fetch deadline)."""
    with _COND:
        for src in _SOURCES.values():
            src.stopped = True
        _SOURCES.clear()
        _COND.notify_all()


def _after_fork_in_child() -> None:
    # Only the forking thread survives a fork, and _COND may have been held by a refresher then.
    global _COND
    _COND = threading.Condition()
    for src in _SOURCES.values():
        src.thread, src.running = None, False


os.register_at_fork(after_in_child=_after_fork_in_child)
