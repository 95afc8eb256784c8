"""The provider's gunicorn worker: gthread, with TLS handshakes done in the event loop.

gunicorn's ``gthread`` worker hands every accepted connection to its thread pool, and the pool
thread performs the TLS handshake on a blocking socket. A client that opens TCP and never
finishes (or trickles) its handshake therefore holds a thread, before any client certificate is
checked; a sustained flood of such clients holds all of them and Gatekeeper's calls time out.

:class:`TLSHandshakeWorker` keeps gthread's thread pool, keep-alive handling, request logging and
graceful shutdown, and changes only what happens between ``accept()`` and the pool:

1. the accepted socket is wrapped non-blocking (``do_handshake_on_connect=False``) with the
   worker's current SSL context (``gunicorn_conf.ssl_context``: the one the certificate watcher
   swaps on rotation, so new connections use the new certificates and client CA);
2. ``do_handshake()`` is stepped from the worker's selector: ``SSLWantReadError`` /
   ``SSLWantWriteError`` re-register the socket for that event, any other error refuses the
   client (under mTLS: no certificate, or one from another CA) and closes it at once;
3. once the handshake is complete (client certificate verified by OpenSSL when
   ``server.tls.clientCA`` is set) the connection waits, still in the selector, for the first
   bytes of its request, and only then goes to a pool thread;
4. every connection has one deadline for 2 and 3 together
   (``STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS``, default 1 s) and at most
   ``STELLAOPS_MAX_HANDSHAKES`` (default 256) connections per worker may be in that phase; a new
   connection beyond the cap evicts the oldest, after the expired ones are dropped.

A pool thread thus only ever sees a connection that completed its handshake and has bytes to
read. Graceful closes (after a ``Connection: close`` answer) also happen in the loop: gthread
drains the peer there with a blocking read of up to 2 s, so peers that never close would stall
every handshake; here the drain is one more selector entry with the same 2 s / 64 KiB limits. The first request on it is still read with a per-read timeout of the same length (a slow
reader cannot hold the thread), later keep-alive requests as gthread reads them. Without TLS
(``stella serve --plain-http``) connections go to the pool as in gthread.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import struct
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gsock
from gunicorn.workers.gthread import TConn, ThreadWorker

from stellaops.errors import ConfigError


def _positive_env(name: str, default: str, kind: type[float | int]) -> Any:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"${name} is {raw!r}, expected a positive {kind.__name__}", hint=f"unset it to use {default}")
    return value


HANDSHAKE_TIMEOUT = _positive_env("STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS", "1.0", float)
MAX_HANDSHAKES = _positive_env("STELLAOPS_MAX_HANDSHAKES", "256", int)
ACCEPT_BATCH = 16  # connections accepted per wake-up, so a flood does not outpace the loop

LINGER_SECONDS = 2.0  # gunicorn's graceful close: drain the peer this long at most …
LINGER_BYTES = 65536  # … and this much
_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close with RST, keep nothing queued


class LingeringConn(TConn):
    """A connection whose graceful close (FIN, then drain what the peer still sends) happens in
    the worker's loop: gthread drains on the loop thread with a blocking read of up to 2 s, so
    one peer that never closes would stall every other connection, handshakes included."""

    linger: Any = None  # the worker's _linger, set when the worker creates the connection

    def close(self, graceful: bool = False) -> None:
        if graceful and self.linger is not None:
            self.linger(self.sock)
        else:
            super().close(graceful)


class HandshakenConn(LingeringConn):
    """A connection whose TLS handshake the worker's loop already completed."""

    def init(self) -> None:
        if self.initialized:
            return
        self.initialized = True
        # The first request must arrive at a steady pace (the pool thread set the socket
        # blocking just before this); later keep-alive requests are read as gthread reads them.
        self.sock.settimeout(HANDSHAKE_TIMEOUT)
        self.parser = http.get_parser(self.cfg, self.sock, self.client)


class _Pending:
    """A connection between accept() and the pool: handshaking, then waiting for its request."""

    __slots__ = ("client", "deadline", "events", "handshaken", "server", "sock")

    def __init__(self, sock: ssl.SSLSocket, client: Any, server: Any, deadline: float) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.deadline = deadline
        self.events = 0  # what the selector watches for; 0 when not registered
        self.handshaken = False


class _Lingering:
    """A closed connection whose peer is being drained (see :class:`LingeringConn`)."""

    __slots__ = ("deadline", "drained", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.drained = 0


class TLSHandshakeWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with TLS handshakes in the selector loop (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Insertion order is deadline order (every entry gets the same timeout when accepted),
        # so the oldest entry is also the first to expire.
        self.pending_tls: dict[_Pending, None] = {}
        self.lingering: dict[_Lingering, None] = {}  # the same, for graceful closes
        self.max_handshakes = max(1, min(MAX_HANDSHAKES, self.worker_connections // 2))
        self._handshakes_metric: Any = None

    def init_process(self) -> None:
        # prometheus_client must be imported after the fork (PROMETHEUS_MULTIPROC_DIR is set by
        # gunicorn_conf.on_starting): importing it in the arbiter would fix its value class there.
        from prometheus_client import Counter

        self._handshakes_metric = Counter(
            "stellaops_tls_handshakes_total",
            "TLS connections by how their handshake ended (completed, refused, expired, evicted, reset).",
            ["outcome"],
        )
        super().init_process()

    # ------------------------------------------------------------------ accept

    def accept(self, listener: socket.socket) -> None:
        if not self.cfg.is_ssl:
            self._accept_plain(listener)
            return
        for _ in range(ACCEPT_BATCH):
            try:
                raw, client = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE) and self.pending_tls:
                    self.log.warning("out of file descriptors: dropping the oldest TLS handshake")
                    self._drop(next(iter(self.pending_tls)), "evicted")
                    continue
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK, errno.EMFILE, errno.ENFILE):
                    raise
                return
            self.nr_conns += 1
            self._start(raw, client, listener.getsockname())

    def _accept_plain(self, listener: socket.socket) -> None:
        """gthread's accept, with a connection that closes in the loop (:class:`LingeringConn`)."""
        try:
            raw, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK, errno.EMFILE, errno.ENFILE):
                raise
            return
        self.nr_conns += 1
        conn = LingeringConn(self.cfg, raw, client, listener.getsockname())
        conn.linger = self._linger
        self.enqueue_req(conn)

    def _start(self, raw: socket.socket, client: Any, server: Any) -> None:
        now = time.monotonic()
        self._expire(now)
        while len(self.pending_tls) >= self.max_handshakes:
            self._drop(next(iter(self.pending_tls)), "evicted")
        try:
            raw.setblocking(False)
            tls = gsock.ssl_context(self.cfg).wrap_socket(
                raw, server_side=True, do_handshake_on_connect=False, suppress_ragged_eofs=self.cfg.suppress_ragged_eofs
            )
        except (OSError, ValueError):
            self.nr_conns -= 1
            _close(raw, abort=True)
            return
        entry = _Pending(tls, client, server, now + HANDSHAKE_TIMEOUT)
        self.pending_tls[entry] = None
        self._step(entry)

    # ------------------------------------------------------------------ handshake

    def _step(self, entry: _Pending, _fileobj: Any = None) -> None:
        if entry.handshaken:
            self._hand_over(entry)
            return
        try:
            entry.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(entry, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(entry, selectors.EVENT_WRITE)
            return
        except ssl.SSLEOFError:
            self._drop(entry, "reset")  # the client went away mid-handshake
            return
        except ssl.SSLError as exc:
            # OpenSSL has already queued its alert (e.g. certificate required / unknown CA)
            self.log.debug("TLS handshake from %s refused: %s", entry.client, exc)
            self._drop(entry, "refused")
            return
        except OSError as exc:
            self.log.debug("TLS handshake from %s failed: %s", entry.client, exc)
            self._drop(entry, "reset")
            return
        entry.handshaken = True
        self._count("completed")
        if entry.sock.pending():  # request bytes already decrypted during the handshake
            self._hand_over(entry)
        else:
            self._watch(entry, selectors.EVENT_READ)

    def _hand_over(self, entry: _Pending) -> None:
        """The handshake is done and request bytes are waiting: give the connection to the pool."""
        self._unwatch(entry)
        del self.pending_tls[entry]
        conn = HandshakenConn(self.cfg, entry.sock, entry.client, entry.server)
        conn.linger = self._linger
        conn.data_ready = True
        self.enqueue_req(conn)

    def _watch(self, entry: _Pending, events: int) -> None:
        if entry.events == events:
            return
        callback = partial(self._step, entry)
        if entry.events:
            self.poller.modify(entry.sock, events, callback)
        else:
            self.poller.register(entry.sock, events, callback)
        entry.events = events

    def _unwatch(self, entry: _Pending) -> None:
        if entry.events:
            try:
                self.poller.unregister(entry.sock)
            except (KeyError, ValueError, OSError):
                pass
            entry.events = 0

    def _drop(self, entry: _Pending, outcome: str) -> None:
        self._unwatch(entry)
        self.pending_tls.pop(entry, None)
        self.nr_conns -= 1
        self._count(outcome)
        # A refused client gets the alert OpenSSL queued, then FIN; a silent or evicted one RST.
        _close(entry.sock, abort=outcome != "refused")

    def _expire(self, now: float) -> None:
        while self.pending_tls:
            oldest = next(iter(self.pending_tls))
            if oldest.deadline > now:
                return
            self._drop(oldest, "expired")

    # ------------------------------------------------------------------ graceful close

    def _linger(self, sock: socket.socket) -> None:
        """Half-close (the response is complete), then drain the peer from the selector until it
        closes, LINGER_SECONDS pass or LINGER_BYTES arrive (gunicorn's limits), then close."""
        try:
            sock.shutdown(socket.SHUT_WR)  # on a TLS socket this also drops the TLS layer, as gunicorn does
            sock.setblocking(False)
            entry = _Lingering(sock, time.monotonic() + LINGER_SECONDS)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._drain, entry))
        except (OSError, ValueError, KeyError):
            _close(sock, abort=False)
            return
        self.lingering[entry] = None

    def _drain(self, entry: _Lingering, _fileobj: Any = None) -> None:
        try:
            data = entry.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        entry.drained += len(data)
        if not data or entry.drained >= LINGER_BYTES:
            self._end_linger(entry)

    def _end_linger(self, entry: _Lingering) -> None:
        self.lingering.pop(entry, None)
        try:
            self.poller.unregister(entry.sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            entry.sock.close()
        except OSError:
            pass

    def _count(self, outcome: str) -> None:
        if self._handshakes_metric is not None:
            self._handshakes_metric.labels(outcome).inc()

    # ------------------------------------------------------------------ loop hooks

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        now = time.monotonic()
        for table in (self.pending_tls, self.lingering):  # wake up for the next deadline
            if table:
                timeout = min(timeout, max(0.0, next(iter(table)).deadline - now))
        super().wait_for_and_dispatch_events(timeout)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        self._expire(now)
        while self.lingering and next(iter(self.lingering)).deadline <= now:
            self._end_linger(next(iter(self.lingering)))

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:  # the worker is exiting: nothing in handshake will be served
            for entry in list(self.pending_tls):
                self._drop(entry, "evicted")
            for done in list(self.lingering):
                self._end_linger(done)


def _close(sock: socket.socket, *, abort: bool) -> None:
    """Close without gunicorn's graceful drain, which would stall the loop on a silent peer."""
    try:
        if abort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
