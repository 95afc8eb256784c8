"""Keyless signing without the services: token handling, flags, trust material, and the rule
that the token never appears in anything the command prints (tests/integration/test_keyless_sign.py
runs the real Fulcio/CT/Rekor)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from stellaops import keyless_sign as ks

from tests.fixtures.sigstore import TestSigstore

STELLA = str(Path(sys.executable).with_name("stella"))
DIGEST = "sha256:" + "ab" * 32
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(**over: object) -> str:
    now = int(time.time())
    claims = {"iss": "http://127.0.0.1:1", "sub": "a@b.test", "email": "a@b.test", "email_verified": True, "aud": "sigstore", "iat": now, "exp": now + 600}
    claims.update(over)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, _KEY, algorithm="RS256", headers={"kid": "k"})


def stella(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("STELLAOPS_CONFIG", "SIGSTORE_ID_TOKEN")}
    (tmp / "p.json").write_text('{"a": 1}')
    cmd = [STELLA, "attest", "sign", "--predicate", str(tmp / "p.json"), "--type", "https://example.com/t/v1",
           "--image", f"127.0.0.1:1/app@{DIGEST}", *args]  # fmt: skip
    return subprocess.run(cmd, check=False, env={**base, **(env or {})}, cwd=tmp, capture_output=True, text=True, timeout=60)


def test_read_token_from_argument_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = token()
    assert ks.read_token(t) == t
    (tmp_path / "tok").write_text(t + "\n")
    assert ks.read_token(str(tmp_path / "tok")) == t
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", t)
    assert ks.read_token(None) == t


@pytest.mark.parametrize("value", ["", "not-a-jwt-secret-value", "a.b", "a.b.c d"])
def test_read_token_refuses_non_jwt_without_echoing_it(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    with pytest.raises(ks.KeylessSignError) as err:
        ks.read_token(value)
    assert err.value.reason == "REQUEST_INVALID"
    if value:
        assert value not in str(err.value) + err.value.hint


@pytest.mark.parametrize(
    "claims,expected",
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "it has expired"),
        ({"aud": "other"}, "its audience (aud) is not 'sigstore'"),
        ({"sub": None}, "it lacks the 'sub' claim"),
    ],
)
def test_identity_token_claims_refused_clearly(claims: dict[str, object], expected: str) -> None:
    t = token(**claims)
    with pytest.raises(ks.KeylessSignError) as err:
        ks.identity_token(t)
    assert expected in err.value.detail
    assert t not in str(err.value)


def test_endpoints_from_flags_config_or_public_good() -> None:
    from stellaops.trust import SigstoreRoots

    private = SigstoreRoots(fulcio_url="https://fulcio.internal/", rekor_url="https://rekor.internal")
    e = ks.resolve_endpoints(None, None, private)
    assert (e.fulcio_url, e.rekor_url) == ("https://fulcio.internal", "https://rekor.internal")
    e = ks.resolve_endpoints("http://127.0.0.1:5555", None, private)
    assert e.fulcio_url == "http://127.0.0.1:5555"
    e = ks.resolve_endpoints(None, None, SigstoreRoots(public_good=True))
    assert (e.fulcio_url, e.rekor_url) == (ks.PUBLIC_GOOD_FULCIO, ks.PUBLIC_GOOD_REKOR)
    with pytest.raises(ks.KeylessSignError, match="needs --fulcio-url"):
        ks.resolve_endpoints(None, "https://rekor.internal", None)
    with pytest.raises(ks.KeylessSignError, match="not an http"):
        ks.resolve_endpoints("fulcio.internal", "https://rekor.internal", None)


def test_trusted_root_without_ct_log_is_refused(test_sigstore: TestSigstore) -> None:
    doc = json.loads(test_sigstore.trusted_root_json())
    doc["ctlogs"] = []
    from stellaops.dsse import make_statement

    statement = make_statement("app", DIGEST, "https://example.com/t/v1", {"a": 1})
    with pytest.raises(ks.KeylessSignError) as err:
        ks.sign_statement(statement, token(), ks.KeylessEndpoints("http://127.0.0.1:1", "http://127.0.0.1:1"), json.dumps(doc).encode())
    assert err.value.reason == "CONFIG_INVALID" and "CT log" in err.value.hint


def test_statement_v01_is_refused_by_sigstore_python(test_sigstore: TestSigstore) -> None:
    from stellaops.dsse import STATEMENT_V01, make_statement

    statement = make_statement("app", DIGEST, "https://example.com/t/v1", {"a": 1}, statement_type=STATEMENT_V01)
    with pytest.raises(ks.KeylessSignError) as err:
        ks.sign_statement(statement, token(), ks.KeylessEndpoints("http://127.0.0.1:1", "http://127.0.0.1:1"), test_sigstore.trusted_root_json())
    assert err.value.reason == "MALFORMED_STATEMENT"


def test_no_trust_material_is_a_config_error() -> None:
    with pytest.raises(ks.KeylessSignError) as err:
        ks.trusted_root_document(None, None)
    assert err.value.reason == "CONFIG_INVALID" and "--trusted-root" in err.value.hint


def test_cli_usage_errors(tmp_path: Path) -> None:
    t = token()
    (tmp_path / "k").write_text("x")
    both = stella(tmp_path, "--key", str(tmp_path / "k"), "--identity-token", t)
    assert both.returncode == 2 and "give either --key or --identity-token, not both" in both.stderr
    assert t not in both.stdout + both.stderr
    neither = stella(tmp_path)
    assert neither.returncode == 2 and "--identity-token TOKEN (or $SIGSTORE_ID_TOKEN)" in neither.stderr
    v01 = stella(tmp_path, "--identity-token", t, "--statement-version", "v0.1")
    assert v01.returncode == 2 and "Statement v1 only" in v01.stderr


def test_cli_never_prints_the_token(tmp_path: Path, test_sigstore: TestSigstore) -> None:
    """Expired token, and a good one against a dead Fulcio with --verbose (traceback on): the
    token is in neither stdout nor stderr; the env-var path is checked too."""
    from tests.fixtures.services import free_port

    (tmp_path / "root.json").write_bytes(test_sigstore.trusted_root_json())
    dead = f"http://127.0.0.1:{free_port()}"
    flags = ("--fulcio-url", dead, "--rekor-url", dead, "--trusted-root", str(tmp_path / "root.json"))
    expired = token(exp=int(time.time()) - 3600, iat=int(time.time()) - 4000)
    p = stella(tmp_path, "--identity-token", expired, *flags, "--verbose")
    assert p.returncode == 2 and "it has expired" in p.stderr
    assert expired not in p.stdout + p.stderr
    good = token()
    for args, env in (((("--identity-token", good)), None), ((), {"SIGSTORE_ID_TOKEN": good})):
        p = stella(tmp_path, *args, *flags, "--verbose", env=env)
        assert p.returncode == 3, p.stderr  # transient: Fulcio could not be reached
        assert f"Fulcio at {dead} could not be reached" in p.stderr and "Traceback" in p.stderr
        assert good not in p.stdout + p.stderr
        assert good.split(".")[1] not in p.stdout + p.stderr  # not even the claims part


def test_an_endpoint_echoing_the_request_does_not_leak_the_token(test_sigstore: TestSigstore) -> None:
    """A misconfigured proxy in front of Fulcio that answers 400 with the request it got, headers
    and body (the token travels in the Authorization header): the error quotes the answer, with
    the token cut out."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = str(self.headers).encode() + self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(400)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    t = token()
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "app", "digest": {"sha256": DIGEST[7:]}}],
                            "predicateType": "https://example.com/t/v1", "predicate": {}}).encode()  # fmt: skip
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ks.KeylessSignError) as err:
            ks.sign_statement(statement, t, ks.KeylessEndpoints(url, url), test_sigstore.trusted_root_json())
    finally:
        server.shutdown()
    text = f"{err.value} {err.value.hint}"
    assert "[identity token]" in text, text  # the echo was there, and was cut
    assert all(secret not in text for secret in (t, *t.split("."))), text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_endpoints_never_from_an_unnamed_working_directory_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """T-A13: an unnamed ./stellaops.yaml naming a Fulcio (or turning on public-good Sigstore) gives
    keyless signing no endpoint: refused with the reason; the same file named gives them."""
    from stellaops.config import load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "stellaops.yaml").write_text(
        "attestation:\n  trustRoots:\n    sigstore:\n      enabled: true\n"
        "      fulcioUrl: http://127.0.0.1:9/\n      rekorUrl: http://127.0.0.1:9/\n"
    )
    unnamed = load_config(None, env={}, unnamed_limits=True)
    assert unnamed.trust.sigstore is None
    assert unnamed.ignored == ("attestation.trustRoots",)
    with pytest.raises(ks.KeylessSignError) as err:
        ks.resolve_endpoints(None, None, unnamed.trust.sigstore, unnamed_ignored=True)
    assert "needs --fulcio-url" in err.value.detail and "./stellaops.yaml is not named" in err.value.detail
    assert "--config" in err.value.hint
    with pytest.raises(ks.KeylessSignError, match="needs --rekor-url"):
        ks.resolve_endpoints("http://127.0.0.1:5555", None, unnamed.trust.sigstore, unnamed_ignored=True)
    named = load_config("stellaops.yaml", env={}, unnamed_limits=True)
    assert named.ignored == ()
    e = ks.resolve_endpoints(None, None, named.trust.sigstore)
    assert (e.fulcio_url, e.rekor_url) == ("http://127.0.0.1:9", "http://127.0.0.1:9")
