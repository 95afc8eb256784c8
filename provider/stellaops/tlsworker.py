"""The provider's gunicorn worker: gthread, with TLS handshakes and request heads read in the event loop.

gunicorn's ``gthread`` worker hands every accepted connection to its thread pool, and the pool
thread performs the TLS handshake and reads the request on a blocking socket. A client that
opens TCP and never finishes (or trickles) its handshake or its request therefore holds a
thread; a handful of such clients hold all of them and Gatekeeper's calls time out.

:class:`TLSHandshakeWorker` keeps gthread's thread pool, keep-alive handling, request logging and
graceful shutdown, and changes only what happens before a connection reaches the pool:

1. the accepted socket is made non-blocking and, under TLS, wrapped
   (``do_handshake_on_connect=False``) with the worker's current SSL context
   (``gunicorn_conf.ssl_context``: the one the certificate watcher swaps on rotation);
2. ``do_handshake()`` is stepped from the worker's selector: ``SSLWantReadError`` /
   ``SSLWantWriteError`` re-register the socket for that event, any other error refuses the
   client (under mTLS: no certificate, or one from another CA) and closes it at once;
3. the request head (request line and headers, up to the empty line) is then read from the
   selector with non-blocking reads into a buffer (draining what TLS already decrypted), and so
   is the body when it has a ``Content-Length`` and fits the buffer (:data:`BUFFER_BYTES`, 64 KiB,
   head included; no ``Expect``/``Transfer-Encoding``);
4. only then does the connection go to a pool thread, whose gunicorn parser reads the buffered
   bytes first (:class:`_DeadlineReader`); anything it still has to read from the socket (a
   larger or chunked body) must arrive within :data:`POOL_READ_SECONDS` (5 s, gunicorn's own
   worker data timeout) of the thread starting on the request, bounded before each ``recv``,
   and every send of the answer within :data:`SEND_SECONDS` (a client that does not read is cut);
5. a kept-alive connection goes back to the selector after its response, as in gthread, and
   when it becomes readable again step 3 and 4 repeat for its next request;
6. steps 2 and 3 have one absolute deadline, ``STELLAOPS_HANDSHAKE_TIMEOUT_SECONDS`` (default
   1 s): from ``accept()`` for the first request, from the moment the idle kept-alive connection
   became readable for each later one (idle time is gthread's keep-alive timeout, in the
   selector). Past it the connection is reset (outcome ``expired`` in the handshake, else
   ``head_timeout``). At most ``STELLAOPS_MAX_HANDSHAKES`` (default 256) connections per
   worker may be in these steps: beyond, after the expired ones are dropped, a new connection
   evicts the oldest one of the peer address that has the most (so a flood from one address
   evicts its own connections, not Gatekeeper's; a flood spread over more addresses than
   Gatekeeper has pods, or from behind the same SNAT address as Gatekeeper, still can).

A pool thread thus only ever sees a connection that completed its handshake and sent its whole
request head (up to the loop's 64 KiB buffer; gunicorn's own limits bound larger heads), and
holds it at most :data:`POOL_READ_SECONDS` for reads and :data:`SEND_SECONDS` per send. Graceful closes (after a
``Connection: close`` answer) also happen in the loop: gthread drains the peer there with a
blocking read of up to 2 s, so peers that never close would stall every handshake; here the
drain is one more selector entry with the same 2 s / 64 KiB limits, at most
``STELLAOPS_MAX_HANDSHAKES`` of them (the oldest is reset beyond). When ``accept()`` fails with
EMFILE/ENFILE the oldest pending connection or drain is dropped; with none to drop the worker
stops polling its listener for :data:`EMFILE_PAUSE_SECONDS` instead of spinning on it. Without
TLS (``stella serve --plain-http``) the same steps run, minus the handshake.

After an answer, bytes of the next request that TLS already decrypted are moved to the
parser's buffer (:meth:`TLSHandshakeWorker.finish_request`): they do not make the socket
readable, so gthread would park such a connection unanswered. Residual: a client may choose a
body the loop does not buffer, or not read its answer, and hold a thread up to 5 s that way.
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
from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT, TConn, ThreadWorker

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
BUFFER_BYTES = 65536  # request head (+ small body) buffered in the loop before the pool reads on
POOL_READ_SECONDS = DEFAULT_WORKER_DATA_TIMEOUT  # reads left to the pool thread, from when it starts on the request
SEND_SECONDS = DEFAULT_WORKER_DATA_TIMEOUT  # each blocking send of a response: a client that does not read is cut
# accept(2) passes these network errors of the new connection through; retry, as the man page says
_ACCEPT_RETRY = frozenset(
    getattr(errno, name)
    for name in ("EAGAIN", "EWOULDBLOCK", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN",
                 "ENONET", "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "EPERM")
    if hasattr(errno, name)
)
# out of a kernel resource: pause accepting briefly, like EMFILE with nothing to drop
_ACCEPT_PAUSE = frozenset({errno.ENOBUFS, errno.ENOMEM})
EMFILE_PAUSE_SECONDS = 0.1  # out of descriptors with nothing to drop: stop polling the listener

LINGER_SECONDS = 2.0  # gunicorn's graceful close: drain the peer this long at most …
LINGER_BYTES = 65536  # … and this much
_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close with RST, keep nothing queued


class ResponseDeadlineError(ConnectionResetError):
    """A response could not be sent within :data:`SEND_SECONDS` (the client does not read).
    ECONNRESET on purpose, as :class:`RequestDeadlineError`: a client gone, not a server fault."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, f"response not taken by the client within {SEND_SECONDS:g} s; closing")


class RequestDeadlineError(ConnectionResetError):
    """The client did not send its request within the pool's read deadline.

    A ``ConnectionResetError`` (ECONNRESET) on purpose: gthread then treats it as a client gone
    (debug log, connection closed) and werkzeug as a client disconnect, not as a server fault."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, f"request not received within {POOL_READ_SECONDS:g} s of its head; closing")


class _DeadlineReader:
    """What the gunicorn parser reads from: the socket, with every ``recv`` bounded by the
    time left before ``deadline`` (monotonic), so a slow body cannot hold a pool thread."""

    __slots__ = ("deadline", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestDeadlineError()
        sock = self.sock
        prior = sock.gettimeout()
        sock.settimeout(remaining if prior is None else min(prior, remaining))
        try:
            return sock.recv(size)
        except TimeoutError as exc:
            raise RequestDeadlineError() from exc
        finally:
            sock.settimeout(prior)

    def gettimeout(self) -> float | None:  # gunicorn's finish_body bounds its drain with these
        return self.sock.gettimeout()

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)


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


class BufferedConn(LingeringConn):
    """A connection whose request head the worker's loop buffers before each hand-over (TLS
    handshake, if any, already done there); its parser reads through a :class:`_DeadlineReader`."""

    def __init__(self, cfg: Any, sock: Any, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.reader = _DeadlineReader(sock)
        self.head_ready = False  # set by the loop for one hand-over to the pool
        self.data_ready = True  # never gthread's "wait for data" in the pool

    def init(self) -> None:
        """Called by gthread in the pool thread before each request, right after it made the
        socket blocking: bound every send (a client that pipelines requests and never reads
        the answers would hold the thread for ever) and start this request's read deadline now,
        not at hand-over (a request queued behind busy threads keeps its full time)."""
        self.initialized = True  # the parser is made by the loop at the first hand-over
        self.sock.settimeout(SEND_SECONDS)
        self.reader.deadline = time.monotonic() + POOL_READ_SECONDS


class _Pending:
    """A connection in the loop before the pool: handshaking, then buffering its request head."""

    __slots__ = ("buf", "closed", "conn", "deadline", "events", "handshaken", "need", "scanned", "source")

    def __init__(self, conn: BufferedConn, deadline: float, *, handshaken: bool) -> None:
        self.conn = conn
        self.source = conn.client[0] if isinstance(conn.client, tuple) else conn.client  # the peer's IP
        self.deadline = deadline
        self.events = 0  # what the selector watches for; 0 when not registered
        self.handshaken = handshaken
        self.closed = False  # dropped or handed over: a stale selector callback must do nothing
        self.buf = bytearray()
        self.scanned = 0  # the head's end is searched from here (no rescans of a trickled head)
        self.need = -1  # bytes to buffer before the hand-over, once the head's end is known


class _Lingering:
    """A closed connection whose peer is being drained (see :class:`LingeringConn`)."""

    __slots__ = ("closed", "deadline", "drained", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.drained = 0
        self.closed = False


def _head_end(buf: bytearray, start: int) -> int:
    """Offset just past the empty line ending the request head, or -1 if not there yet. Only
    decides when to hand over: gunicorn's parser still parses (and rejects) the head."""
    ends = [i + n for i, n in ((buf.find(b"\n\r\n", start), 3), (buf.find(b"\n\n", start), 2)) if i >= 0]
    return min(ends) if ends else -1


def _small_body(head: bytes) -> int:
    """The body length to buffer in the loop as well: its ``Content-Length`` when that is the only
    framing header and the body fits :data:`BUFFER_BYTES` with the head, else 0 (the pool reads
    it, under its deadline). A wrong guess only moves work to the pool, never changes parsing."""
    low = head.lower()
    at = low.find(b"\ncontent-length:")
    if at < 0 or low.find(b"\ncontent-length:", at + 1) >= 0:
        return 0
    if b"\ntransfer-encoding:" in low or b"\nexpect:" in low:  # chunked, or waits for "100 Continue"
        return 0
    value = head[at + 16 : head.find(b"\n", at + 1)].strip()
    if not value.isdigit() or len(value) > 7:
        return 0
    length = int(value)
    return length if length <= BUFFER_BYTES - len(head) else 0


class TLSHandshakeWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with TLS handshakes and request heads read in the selector loop (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Insertion order is deadline order (every entry gets the same timeout when it enters),
        # so the oldest entry is also the first to expire.
        self.pending_tls: dict[_Pending, None] = {}
        self.lingering: dict[_Lingering, None] = {}  # the same, for graceful closes
        self.max_handshakes = max(1, min(MAX_HANDSHAKES, self.worker_connections // 2))
        self.by_source: dict[Any, dict[_Pending, None]] = {}  # pending_tls by peer IP, same order
        self._handshakes_metric: Any = None
        self._accept_paused_until = 0.0
        self._emfile_logged = 0.0

    def init_process(self) -> None:
        # prometheus_client must be imported after the fork (PROMETHEUS_MULTIPROC_DIR is set by
        # gunicorn_conf.on_starting): importing it in the arbiter would fix its value class there.
        from prometheus_client import Counter

        self._handshakes_metric = Counter(
            "stellaops_tls_handshakes_total",
            "Connections by how the phase before the thread pool ended (completed, refused, expired, "
            "evicted, reset, head_timeout, linger_evicted).",
            ["outcome"],
        )
        super().init_process()

    # ------------------------------------------------------------------ accept

    def accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                raw, client = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    if self._free_a_descriptor():
                        continue
                    self._pause_accepting()
                    return
                if exc.errno in _ACCEPT_PAUSE:
                    self._pause_accepting()
                    return
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                if exc.errno in _ACCEPT_RETRY:
                    continue  # that connection failed; the next may be fine
                raise
            self.nr_conns += 1
            self._start(raw, client, listener.getsockname())

    def _free_a_descriptor(self) -> bool:
        if self.pending_tls:
            self.log.warning("out of file descriptors: evicting a connection before the pool")
            self._evict_one()
            return True
        if self.lingering:
            self.log.warning("out of file descriptors: resetting the oldest graceful close")
            self._end_linger(next(iter(self.lingering)), evicted=True)
            return True
        return False

    def _pause_accepting(self) -> None:
        """Out of descriptors and nothing of ours to free: the listener stays readable, so stop
        polling it briefly instead of spinning (:meth:`set_accept_enabled` keeps it off)."""
        now = time.monotonic()
        if now - self._emfile_logged > 10:
            self._emfile_logged = now
            self.log.warning("out of file descriptors: not accepting for %.1f s", EMFILE_PAUSE_SECONDS)
        self._accept_paused_until = now + EMFILE_PAUSE_SECONDS
        self.set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and time.monotonic() < self._accept_paused_until:
            enabled = False
        super().set_accept_enabled(enabled)

    def _start(self, raw: socket.socket, client: Any, server: Any) -> None:
        now = time.monotonic()
        self._make_room(now)
        try:
            raw.setblocking(False)
            sock: Any = raw
            if self.cfg.is_ssl:
                sock = gsock.ssl_context(self.cfg).wrap_socket(
                    raw, server_side=True, do_handshake_on_connect=False, suppress_ragged_eofs=self.cfg.suppress_ragged_eofs
                )
        except (OSError, ValueError):
            self.nr_conns -= 1
            _close(raw, abort=True)
            return
        conn = BufferedConn(self.cfg, sock, client, server)
        conn.linger = self._linger
        entry = _Pending(conn, now + HANDSHAKE_TIMEOUT, handshaken=not self.cfg.is_ssl)
        self._add(entry)
        self._step(entry)

    def _make_room(self, now: float) -> None:
        """Drop the expired entries, then, at the cap, evict (see :meth:`_evict_one`)."""
        self._expire(now)
        while len(self.pending_tls) >= self.max_handshakes:
            self._evict_one()

    def _evict_one(self) -> None:
        """Drop the oldest connection of the peer address with the most of them: a flood from
        one address evicts its own connections, not the few of Gatekeeper's pods (the oldest of
        all would soon be Gatekeeper's under a flood fast enough to reach the cap)."""
        source = max(self.by_source, key=lambda s: len(self.by_source[s]))
        self._drop(next(iter(self.by_source[source])), "evicted")

    def _add(self, entry: _Pending) -> None:
        self.pending_tls[entry] = None
        self.by_source.setdefault(entry.source, {})[entry] = None

    def _remove(self, entry: _Pending) -> None:
        self.pending_tls.pop(entry, None)
        mine = self.by_source.get(entry.source)
        if mine is not None:
            mine.pop(entry, None)
            if not mine:
                del self.by_source[entry.source]

    # ------------------------------------------------------------------ pool hand-over

    def handle_request(self, req: Any, conn: Any) -> Any:
        try:
            return super().handle_request(req, conn)
        except TimeoutError as exc:  # a send timed out (SEND_SECONDS): the client does not read
            raise ResponseDeadlineError() from exc

    def finish_request(self, conn: Any, fs: Any) -> None:
        """Before gthread decides where a kept-alive connection goes: bytes of the next request
        that TLS already decrypted (``pending()``) do not make the socket readable, so the
        selector would never fire for them. Move them to the parser's buffer, which gthread
        checks and then hands the connection straight back (:meth:`enqueue_req`)."""
        if isinstance(conn, BufferedConn) and isinstance(conn.sock, ssl.SSLSocket) and conn.parser is not None:
            try:
                unreader = conn.parser.unreader
                if not fs.cancelled() and fs.result() is True and not unreader.buf.getvalue() and conn.sock.pending():
                    unreader.unread(conn.sock.recv(conn.sock.pending()))
            except Exception:  # noqa: BLE001 - gthread's own handling below sees the same failure
                pass
        super().finish_request(conn, fs)

    def enqueue_req(self, conn: Any) -> None:
        """gthread calls this for a kept-alive connection that became readable, or one with
        pipelined bytes already read: its next request head is buffered in the loop first."""
        if isinstance(conn, BufferedConn) and not conn.head_ready:
            self._await_head(conn)
            return
        if isinstance(conn, BufferedConn):
            conn.head_ready = False  # for this request only
        super().enqueue_req(conn)

    def _await_head(self, conn: BufferedConn) -> None:
        now = time.monotonic()
        self._make_room(now)
        if conn.sock.gettimeout() != 0.0:  # pipelined: straight from the pool thread
            conn.sock.setblocking(False)
        entry = _Pending(conn, now + HANDSHAKE_TIMEOUT, handshaken=True)
        if conn.parser is not None:
            entry.buf += conn.parser.unreader.take_buffered()  # pipelined behind the last request
        self._add(entry)
        if entry.buf and self._complete(entry):
            self._hand_over(entry)
        else:
            self._step(entry)

    def _hand_over(self, entry: _Pending) -> None:
        """The head (and a small body) is buffered: give the connection to the pool."""
        self._unwatch(entry)
        entry.closed = True
        self._remove(entry)
        conn = entry.conn
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.reader, conn.client)
        conn.parser.unreader.unread(bytes(entry.buf))
        conn.head_ready = True
        self.enqueue_req(conn)

    # ------------------------------------------------------------------ handshake and head

    def _step(self, entry: _Pending, _fileobj: Any = None) -> None:
        if entry.closed:  # a stale event: dropped earlier in the same select() batch
            return
        if not entry.handshaken:
            try:
                entry.conn.sock.do_handshake()
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
                self.log.debug("TLS handshake from %s refused: %s", entry.conn.client, exc)
                self._drop(entry, "refused")
                return
            except OSError as exc:
                self.log.debug("TLS handshake from %s failed: %s", entry.conn.client, exc)
                self._drop(entry, "reset")
                return
            entry.handshaken = True
            self._count("completed")
        self._read_head(entry)

    def _read_head(self, entry: _Pending) -> None:
        """Read what is there (TLS: until nothing is left decrypted either), without blocking."""
        sock = entry.conn.sock
        while True:
            try:
                data = sock.recv(BUFFER_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError):
                self._watch(entry, selectors.EVENT_READ)
                return
            except ssl.SSLWantWriteError:
                self._watch(entry, selectors.EVENT_WRITE)
                return
            except OSError:  # ssl.SSLError included
                self._drop(entry, "reset")
                return
            if not data:  # the client closed; before any request byte that is an ordinary end
                self._drop(entry, "reset" if entry.buf else None, abort=False)
                return
            entry.buf += data
            if self._complete(entry) or len(entry.buf) >= BUFFER_BYTES:
                self._hand_over(entry)  # past the buffer: the parser rejects or reads on, bounded
                return

    @staticmethod
    def _complete(entry: _Pending) -> bool:
        if entry.need < 0:
            end = _head_end(entry.buf, entry.scanned)
            if end < 0:
                entry.scanned = max(0, len(entry.buf) - 2)
                return False
            entry.need = end + _small_body(bytes(entry.buf[:end]))
        return len(entry.buf) >= entry.need

    def _watch(self, entry: _Pending, events: int) -> None:
        if entry.events == events:
            return
        callback = partial(self._step, entry)
        if entry.events:
            self.poller.modify(entry.conn.sock, events, callback)
        else:
            self.poller.register(entry.conn.sock, events, callback)
        entry.events = events

    def _unwatch(self, entry: _Pending) -> None:
        if entry.events:
            try:
                self.poller.unregister(entry.conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            entry.events = 0

    def _drop(self, entry: _Pending, outcome: str | None, *, abort: bool = True) -> None:
        """Close a connection before the pool, once (stale callbacks and evictions may race)."""
        if entry.closed:
            return
        entry.closed = True
        self._unwatch(entry)
        self._remove(entry)
        self.nr_conns -= 1
        if outcome is not None:
            self._count(outcome)
        # A refused client gets the alert OpenSSL queued, then FIN; a silent or evicted one RST.
        _close(entry.conn.sock, abort=abort and outcome != "refused")

    def _expire(self, now: float) -> None:
        while self.pending_tls:
            oldest = next(iter(self.pending_tls))
            if oldest.deadline > now:
                return
            self._drop(oldest, "head_timeout" if oldest.handshaken else "expired")

    # ------------------------------------------------------------------ graceful close

    def _linger(self, sock: socket.socket) -> None:
        """Half-close (the response is complete), then drain the peer from the selector until it
        closes, LINGER_SECONDS pass or LINGER_BYTES arrive (gunicorn's limits), then close. At
        most ``max_handshakes`` drains at once: beyond that the oldest is reset."""
        while len(self.lingering) >= self.max_handshakes:
            self._end_linger(next(iter(self.lingering)), evicted=True)
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
        if entry.closed:
            return
        try:
            data = entry.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        entry.drained += len(data)
        if not data or entry.drained >= LINGER_BYTES:
            self._end_linger(entry)

    def _end_linger(self, entry: _Lingering, *, evicted: bool = False) -> None:
        if entry.closed:
            return
        entry.closed = True
        self.lingering.pop(entry, None)
        try:
            self.poller.unregister(entry.sock)
        except (KeyError, ValueError, OSError):
            pass
        if evicted:
            self._count("linger_evicted")
        _close(entry.sock, abort=evicted)

    def _count(self, outcome: str) -> None:
        if self._handshakes_metric is not None:
            self._handshakes_metric.labels(outcome).inc()

    # ------------------------------------------------------------------ loop hooks

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        now = time.monotonic()
        for table in (self.pending_tls, self.lingering):  # wake up for the next deadline
            if table:
                timeout = min(timeout, max(0.0, next(iter(table)).deadline - now))
        if self._accept_paused_until > now:  # and to poll the listener again
            timeout = min(timeout, self._accept_paused_until - now)
        super().wait_for_and_dispatch_events(timeout)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        self._expire(now)
        if not self.alive:  # stopping: a client still in its handshake has no request to finish
            for entry in [e for e in self.pending_tls if not e.handshaken]:
                self._drop(entry, "evicted")
        while self.lingering and next(iter(self.lingering)).deadline <= now:
            self._end_linger(next(iter(self.lingering)))

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:  # the worker is exiting: nothing before the pool will be served
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
