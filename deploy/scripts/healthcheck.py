#!/usr/bin/env python3
"""Probe the provider from inside its own container: exit 0 when the endpoint answers 200.

Used by the image's ``HEALTHCHECK`` and by the Kubernetes liveness/readiness probes (``exec``).
Why not an ``httpGet`` probe: with mTLS on (``server.tls.clientCA``) the provider's TLS layer
requires a client certificate, and neither the kubelet nor Docker presents one. This probe
presents the pod's own serving certificate (issued by the StellaOps CA, with the clientAuth
usage), and the client-CA bundle the provider trusts holds Gatekeeper's CA *and* the StellaOps CA
(``deploy/scripts/make-certs.sh`` builds it). It talks only to the loopback address, to its own
process, so it does not verify the server certificate: there is no one else to authenticate.

Standard library only (it runs every few seconds: no Flask, no cryptography import).

    healthcheck.py [PATH]            PATH defaults to /healthz; /readyz for readiness

Environment (all optional; defaults match the image and deploy/kubernetes):
    STELLAOPS_SERVER__PORT            port (8443)
    STELLAOPS_PLAIN_HTTP=1            speak plain HTTP (local use only)
    STELLAOPS_HEALTHCHECK_CERT/_KEY   client certificate and key
                                      (/etc/stellaops/tls/tls.crt and tls.key when present)
    STELLAOPS_HEALTHCHECK_TIMEOUT     seconds (2)
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import sys

DEFAULT_CERT = "/etc/stellaops/tls/tls.crt"
DEFAULT_KEY = "/etc/stellaops/tls/tls.key"


def probe(path: str, env: "os._Environ[str] | dict[str, str]") -> tuple[bool, str]:
    """Return (healthy, one-line explanation)."""
    try:
        port = int(env.get("STELLAOPS_SERVER__PORT", "8443"))
        timeout = float(env.get("STELLAOPS_HEALTHCHECK_TIMEOUT", "2"))
    except ValueError as exc:
        return False, f"bad probe setting: {exc}"
    if not path.startswith("/"):
        return False, f"path must start with '/', got {path!r}"
    conn: http.client.HTTPConnection
    if env.get("STELLAOPS_PLAIN_HTTP") == "1":
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        scheme = "http"
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # Loopback to our own process: nothing to authenticate on the server side (see above).
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        cert = env.get("STELLAOPS_HEALTHCHECK_CERT", DEFAULT_CERT)
        key = env.get("STELLAOPS_HEALTHCHECK_KEY", DEFAULT_KEY)
        if os.path.exists(cert) and os.path.exists(key):
            try:
                ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                return False, f"cannot load client certificate {cert}: {exc}"
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
        scheme = "https"
    url = f"{scheme}://127.0.0.1:{port}{path}"
    try:
        conn.request("GET", path, headers={"User-Agent": "stellaops-healthcheck"})
        resp = conn.getresponse()
        body = resp.read(512).decode("utf-8", "replace").strip()
    except (OSError, ssl.SSLError, http.client.HTTPException, socket.timeout) as exc:
        return False, f"{url}: {exc}"
    finally:
        conn.close()
    if resp.status != 200:
        return False, f"{url}: HTTP {resp.status} {body}"
    return True, f"{url}: {body}"


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    ok, message = probe(path, os.environ)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
