"""Clients that attack the provider's TLS port, and Gatekeeper-style calls with a hard deadline.

:class:`Flood` keeps ``size`` connections open to the provider that never complete a TLS
handshake — some send the first byte of a handshake record and stall, some trickle a real
ClientHello one byte at a time (so each read on the server makes progress), some send nothing —
and re-opens each one the server drops, until stopped. :func:`gatekeeper_call` is one admission
call as Gatekeeper makes it: a fresh TCP connection, TLS 1.3 with its client certificate, a
ProviderRequest, and the whole exchange aborted when ``deadline`` seconds have passed.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Self

from tests.fixtures.provider import ProviderProcess, TLSFiles

PROVIDER_REQUEST = json.dumps(
    {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": []}}
).encode()


def client_hello() -> bytes:
    """The bytes of a real TLS 1.3 ClientHello (what a client sends first)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def gatekeeper_context(tls: TLSFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # what Gatekeeper's client insists on
    ctx.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    return ctx


def gatekeeper_call(port: int, ctx: ssl.SSLContext | None, deadline: float) -> tuple[bool, str]:
    """One call on a fresh connection (plain HTTP when ``ctx`` is None); the socket is shut when
    ``deadline`` s have passed, as Gatekeeper's client gives up. Returns (answered with a
    ProviderResponse, what happened)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    timer = threading.Timer(deadline, _abort, args=(raw,))
    timer.start()
    started = time.monotonic()
    try:
        raw.settimeout(deadline)
        raw.connect(("127.0.0.1", port))
        with ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw as s:
            head = (
                "POST /gatekeeper/v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(PROVIDER_REQUEST)}\r\nConnection: close\r\n\r\n"
            )
            s.sendall(head.encode() + PROVIDER_REQUEST)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except (OSError, ssl.SSLError) as exc:
        return False, f"{type(exc).__name__}: {exc} after {time.monotonic() - started:.2f}s"
    finally:
        timer.cancel()
        raw.close()
    body = data.partition(b"\r\n\r\n")[2]
    ok = data.startswith(b"HTTP/1.1 200") and b'"ProviderResponse"' in body and b'"systemError":""' in body.replace(b" ", b"")
    return ok, data[:60].decode(errors="replace")


def _abort(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def handshake_metric(p: ProviderProcess, outcome: str) -> float:
    """``stellaops_tls_handshakes_total{outcome=…}`` summed over the provider's workers."""
    status, data = p.get("/metrics")
    assert status == 200, data[:200]
    m = re.search(rf'^stellaops_tls_handshakes_total\{{outcome="{outcome}"\}} (\S+)$', data.decode(), re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def dropped(s: socket.socket) -> bool:
    """True when the server closed or reset this (non-blocking) socket."""
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@dataclass
class Flood:
    """``size`` never-finishing TLS connections to ``port``, each re-opened when dropped."""

    port: int
    size: int = 300
    opened: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time, connections open after a refill)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _hello: bytes = field(default_factory=client_hello)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="tls-flood", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def open_between(self, start: float, end: float) -> list[int]:
        return [n for t, n in self.samples if start <= t <= end]

    def _open(self, kind: int) -> tuple[socket.socket, int, int] | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            if kind == 0:
                s.sendall(b"\x16")  # the first byte of a handshake record, then nothing
            elif kind == 1:
                s.sendall(self._hello[:1])  # a ClientHello, trickled (below)
            s.setblocking(False)
        except OSError:
            return None
        self.opened += 1
        return s, kind, 1

    def _run(self) -> None:
        conns: list[tuple[socket.socket, int, int]] = []
        kinds = 0
        while not self._stop.is_set():
            while len(conns) < self.size and not self._stop.is_set():
                c = self._open(kinds % 3)  # half-open, trickling, silent in turn
                kinds += 1
                if c is None:
                    break
                conns.append(c)
            self.samples.append((time.monotonic(), len(conns)))  # held after each refill
            alive = []
            for s, kind, sent in conns:
                if dropped(s):
                    s.close()
                    continue
                if kind == 1 and sent < len(self._hello) - 1:  # never the last byte
                    try:
                        s.send(self._hello[sent : sent + 1])
                        sent += 1
                    except OSError:
                        pass
                alive.append((s, kind, sent))
            conns = alive
            time.sleep(0.05)
        for s, _, _ in conns:
            s.close()


@dataclass
class Trickle:
    """Sends ``piece`` (nothing if empty) on each socket every ``gap`` s until stopped, recording
    which sockets the server cut (a send failed, or the server closed or reset it)."""

    socks: list[socket.socket]
    piece: bytes = b"X"
    gap: float = 0.2
    cut: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def wait_all_cut(self, within: float) -> bool:
        end = time.monotonic() + within
        while time.monotonic() < end and len(self.cut) < len(self.socks):
            time.sleep(0.05)
        return len(self.cut) == len(self.socks)

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, s in enumerate(self.socks):
                if i in self.cut:
                    continue
                try:
                    if self.piece:
                        s.settimeout(0.5)
                        s.sendall(self.piece)
                    s.setblocking(False)
                    gone = s.recv(4096) == b""  # an error answer first: look again next round
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    gone = False
                except OSError:  # ssl.SSLError included
                    gone = True
                if gone:
                    self.cut.add(i)
            time.sleep(self.gap)
