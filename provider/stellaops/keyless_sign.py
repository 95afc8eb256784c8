"""Keyless signing (cosign ``attest --identity-token``) through sigstore-python.

An OIDC identity token is exchanged at Fulcio for a short-lived certificate of a fresh ECDSA
P-256 key; sigstore-python checks the certificate's embedded SCT against the CT log keys of the
trusted root, signs the in-toto Statement as a DSSE envelope, enters it in Rekor (``dsse``
v0.0.1) and returns a sigstore bundle v0.3 holding the certificate, the envelope and the Rekor
entry with its inclusion proof. That bundle is what ``stella attest attach`` pushes and what
cosign v3 and the provider verify.

Everything here is sigstore-python's (``SigningContext``, ``FulcioClient``, ``RekorClient``,
``TimestampAuthorityClient``, ``IdentityToken``); this module only chooses the endpoints and the
trust material from the configuration and turns sigstore's exceptions into one clear
:class:`~stellaops.errors.StellaError` each. The token is secret: it is never put into a message,
a log record or an exception text here (sigstore's own debug logging does not print it either).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

from .errors import StellaError

# Network calls to Fulcio, Rekor and a TSA: sigstore-python's sessions have no timeout at all,
# so a silent server would hang the command. (connect, read) seconds.
HTTP_TIMEOUT = (10.0, 60.0)
TOKEN_ENV = "SIGSTORE_ID_TOKEN"  # cosign reads the same variable


class KeylessSignError(StellaError):
    """Keyless signing failed; ``reason`` says at which step."""

    reason = "REQUEST_INVALID"


@dataclass(frozen=True)
class KeylessEndpoints:
    """Where to sign: Fulcio and Rekor base URLs, and optional RFC 3161 TSAs."""

    fulcio_url: str
    rekor_url: str
    timestamp_urls: tuple[str, ...] = ()


def read_token(value: str | None) -> str:
    """The identity token from ``--identity-token`` (the token, or a file holding it, as cosign
    accepts) or ``$SIGSTORE_ID_TOKEN``. Never echoes the token."""
    raw = value if value else os.environ.get(TOKEN_ENV, "")
    source = "--identity-token" if value else f"${TOKEN_ENV}"
    if raw and os.path.isfile(raw):
        try:
            with open(raw, encoding="utf-8") as fh:
                raw = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeylessSignError(f"cannot read the identity token file given to {source}: {exc.__class__.__name__}") from None
        source = f"the file given to {source}"
    token = raw.strip()
    if not token:
        raise KeylessSignError(f"{source} is empty", hint="pass an OIDC ID token (a JWT) issued for the audience 'sigstore'")
    if token.count(".") != 2 or any(c.isspace() for c in token):
        raise KeylessSignError(
            f"{source} is not a JWT (three base64url parts separated by dots)",
            hint="pass the raw OIDC ID token, or the path of a file that holds it",
        )
    return token


def identity_token(token: str) -> Any:
    """sigstore-python's :class:`IdentityToken`, with its checks (``aud`` = ``sigstore``,
    ``exp``/``iat``/``nbf``, required claims) turned into a clear error without the token."""
    import jwt
    from sigstore.oidc import IdentityError, IdentityToken

    try:
        return IdentityToken(token)
    except IdentityError as exc:
        cause = exc.__cause__
        hint = "get a fresh token issued for the audience 'sigstore'"
        if isinstance(cause, jwt.ExpiredSignatureError) or "validity period" in str(exc):
            what = "it has expired (exp) or is not valid yet (nbf)"
            hint = "get a fresh token: OIDC ID tokens live minutes"
        elif isinstance(cause, jwt.InvalidAudienceError):
            what = "its audience (aud) is not 'sigstore'"
            hint = "request the token for the audience 'sigstore' (as cosign does)"
        elif isinstance(cause, jwt.MissingRequiredClaimError):
            what = f"it lacks the {cause.claim!r} claim"
        elif cause is not None:  # PyJWT's messages name the failed claim, never the token
            what = f"{exc}: {cause}"
        else:
            what = str(exc)
        raise KeylessSignError(f"the identity token is not usable: {what}", hint=hint) from None


def trusted_root_document(trusted_root: bytes | None, roots: Any | None) -> bytes:
    """The ``trusted_root.json`` to sign with: ``--trusted-root`` when given, else the
    configuration's ``attestation.trustRoots`` (bundlePath and/or private-instance PEMs)."""
    if trusted_root:
        return trusted_root
    if roots is None:
        raise KeylessSignError(
            "keyless signing needs the Sigstore trust material (the CT log key checks Fulcio's SCT)",
            reason="CONFIG_INVALID",
            hint="pass --trusted-root trusted_root.json, or set attestation.trustRoots (bundlePath, or "
            "sigstore.trustedRootPem/ctlogPublicKey/rekorPublicKey) in the config",
        )
    from .verify import trustroot

    return trustroot.from_roots(roots).document


def _with_timeout(session: Any) -> None:
    """Give a sigstore-python ``requests`` session a default timeout (it sets none)."""
    from requests.adapters import HTTPAdapter

    class _TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = HTTP_TIMEOUT
            return super().send(request, **kwargs)

    for prefix in ("http://", "https://"):
        session.mount(prefix, _TimeoutAdapter())


def _http_error(exc: BaseException) -> tuple[int | None, str]:
    """The HTTP status and the service's own message from a ``requests.HTTPError`` among
    ``exc``'s causes.

    sigstore-python's Fulcio client tests ``if http_error.response:``, which is False for every
    4xx/5xx response, so Fulcio's JSON ``message`` never reaches its exception: read it here."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.HTTPError) and seen.response is not None:
            resp = seen.response
            text = resp.text[:2000]
            try:
                doc = json.loads(text)
                if isinstance(doc, dict) and isinstance(doc.get("message"), str):
                    text = doc["message"]
            except ValueError:
                pass
            return resp.status_code, f"HTTP {resp.status_code}: {text.strip()}"
        seen = seen.__cause__ or seen.__context__
    return None, str(exc) or exc.__class__.__name__


class _Collect(logging.Handler):
    """Keeps the warnings sigstore-python logs while signing (a failed TSA is only a warning there)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _secrets_of(token: str) -> list[str]:
    """The token and each of its JWT parts long enough to be recognisable."""
    return sorted({token, *(part for part in token.split(".") if len(part) >= 8)}, key=len, reverse=True)


def _redacted(exc: KeylessSignError, token: str) -> KeylessSignError:
    """``exc`` with the identity token cut out of its message and hint. A service's error body is
    quoted in the message, and one that echoes the request (a misconfigured proxy in front of
    Fulcio) would otherwise print the token, which travels in the Authorization header. When anything
    was cut, the cause chain (shown by ``--verbose``) is dropped too, as it may hold the same text."""
    secrets = _secrets_of(token)
    texts = [exc.detail, exc.hint]
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    if not any(secret in text for secret in secrets for text in texts):
        return exc
    detail, hint = exc.detail, exc.hint
    for secret in secrets:
        detail, hint = detail.replace(secret, "[identity token]"), hint.replace(secret, "[identity token]")
    clean = KeylessSignError(detail, reason=exc.reason, hint=hint)
    clean.__suppress_context__ = True
    return clean


def sign_statement(statement: bytes, token: str, endpoints: KeylessEndpoints, trusted_root_json: bytes) -> bytes:
    """Sign ``statement`` (in-toto Statement v1 JSON) keylessly; returns the bundle JSON (v0.3).

    Raises :class:`KeylessSignError` with the step that failed: the token, the trust material,
    Fulcio (refused / unreachable), the SCT, Rekor (refused / unreachable), or the TSA; never
    with the token in it."""
    try:
        return _sign_statement(statement, token, endpoints, trusted_root_json)
    except KeylessSignError as exc:
        clean = _redacted(exc, token)
        if clean is exc:
            raise
        raise clean from None


def _sign_statement(statement: bytes, token: str, endpoints: KeylessEndpoints, trusted_root_json: bytes) -> bytes:
    import requests
    from sigstore import dsse as sdsse
    from sigstore._internal.fulcio.client import FulcioClient, FulcioClientError
    from sigstore._internal.rekor import RekorClientError
    from sigstore._internal.rekor.client import RekorClient
    from sigstore._internal.timestamp import TimestampAuthorityClient
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.models import TrustedRoot
    from sigstore.oidc import ExpiredIdentity
    from sigstore.sign import SigningContext
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel

    ident = identity_token(token)
    try:
        stmt = sdsse.Statement(statement)
    except SigstoreError as exc:
        raise KeylessSignError(
            f"sigstore-python refuses the statement: {exc}", reason="MALFORMED_STATEMENT",
            hint="keyless signing takes in-toto Statement v1 (--statement-version v1)",
        ) from exc
    try:
        root = TrustedRoot(TrustedRootModel.from_json(trusted_root_json))
        root.ct_keyring(KeyringPurpose.SIGN)  # sigstore-python checks the SCT with these keys
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, sigstore's MetadataError and Error
        raise KeylessSignError(
            f"the trusted root cannot be used for signing: {exc}", reason="CONFIG_INVALID",
            hint="it must list the CT log key Fulcio submits to (ctlogs), as a trusted_root.json or trustRoots.sigstore.ctlogPublicKey",
        ) from exc

    fulcio = FulcioClient(endpoints.fulcio_url)
    _with_timeout(fulcio.session)
    rekor = RekorClient(endpoints.rekor_url.rstrip("/"))
    _with_timeout(rekor._session)  # created on first use, per thread; we sign on this thread
    tsas = []
    for url in endpoints.timestamp_urls:
        tsa = TimestampAuthorityClient(url)
        _with_timeout(tsa._session)  # thread-local like Rekor's
        tsas.append(tsa)
    context = SigningContext(fulcio=fulcio, rekor=rekor, trusted_root=root, tsa_clients=tsas)

    step = "Fulcio"
    tsa_warnings = _Collect()
    sign_logger = logging.getLogger("sigstore.sign")
    sign_logger.addHandler(tsa_warnings)  # sigstore-python only logs a warning when a TSA fails
    try:
        with context.signer(ident, cache=True) as signer:  # cache=True: the certificate is fetched here
            step = "Rekor"
            bundle = signer.sign_dsse(stmt)
    except ExpiredIdentity:
        raise KeylessSignError("the identity token has expired", hint="get a fresh token") from None
    except FulcioClientError as exc:
        status, detail = _http_error(exc)
        if status is not None and status >= 500:
            raise KeylessSignError(
                f"Fulcio at {endpoints.fulcio_url} failed to issue a certificate: {detail}",
                reason="SERVICE_UNREACHABLE",
                hint="Fulcio (or the CT log it submits to) is failing: see its log, retry later",
            ) from exc
        raise KeylessSignError(
            f"Fulcio at {endpoints.fulcio_url} refused the identity token: {detail}",
            reason="UNAUTHORIZED",
            hint="check the token's issuer, audience ('sigstore') and claims against Fulcio's OIDC configuration",
        ) from exc
    except RekorClientError as exc:
        status, _ = _http_error(exc)
        raise KeylessSignError(
            f"Rekor at {endpoints.rekor_url} refused the entry: {exc}",
            reason="SERVICE_UNREACHABLE" if status is not None and status >= 500 else "TLOG_INVALID",
            hint="check --rekor-url (a Rekor v1 server) and that it accepts dsse entries",
        ) from exc
    except SigstoreVerificationError as exc:
        raise KeylessSignError(
            f"the certificate Fulcio issued has no valid SCT from a trusted CT log: {exc}", reason="SCT_INVALID",
            hint="the trusted root's CT log key must be the key of the log Fulcio submits to",
        ) from exc
    except requests.RequestException as exc:
        url = endpoints.fulcio_url if step == "Fulcio" else endpoints.rekor_url
        raise KeylessSignError(
            f"{step} at {url} could not be reached: {exc.__class__.__name__}",
            reason="SERVICE_UNREACHABLE",
            hint=f"check --{step.lower()}-url and that the service is up",
        ) from exc
    except SigstoreError as exc:
        raise KeylessSignError(f"keyless signing failed at {step}: {exc}", reason="INTERNAL_ERROR") from exc
    finally:
        sign_logger.removeHandler(tsa_warnings)
    tvd = bundle._inner.verification_material.timestamp_verification_data
    got = len(tvd.rfc3161_timestamps) if tvd is not None else 0
    if got < len(tsas):
        why = "; ".join(tsa_warnings.messages) or "no reason given"
        raise KeylessSignError(
            f"the timestamp authority did not timestamp the signature ({got} of {len(tsas)} answered): {why}",
            reason="SERVICE_UNREACHABLE",
            hint="check --timestamp-server-url (an RFC 3161 TSA such as sigstore's timestamp-server)",
        )
    return bundle.to_json().encode()


# public-good Sigstore, cosign's defaults when the configuration trusts public-good Sigstore
PUBLIC_GOOD_FULCIO = "https://fulcio.sigstore.dev"
PUBLIC_GOOD_REKOR = "https://rekor.sigstore.dev"


# the one-line reason when the endpoints are missing because an unnamed ./stellaops.yaml was not used
UNNAMED_NOT_USED = (
    "./stellaops.yaml is not named (--config/$STELLAOPS_CONFIG), so its attestation section was not used for "
    "the signing endpoints: a file found only in the working directory (a CI checkout) never decides where the "
    "identity token is sent"
)


def resolve_endpoints(
    fulcio_url: str | None,
    rekor_url: str | None,
    roots: Any | None,
    timestamp_urls: tuple[str, ...] = (),
    *,
    unnamed_ignored: bool = False,
) -> KeylessEndpoints:
    """Flags first, then ``attestation.trustRoots.sigstore.fulcioUrl``/``rekorUrl`` of the
    configuration (a named one: the CLI never passes the roots of an unnamed ``./stellaops.yaml``,
    threat T-A13), then public-good Sigstore when the configuration trusts it (as cosign's
    defaults). Nothing found: refused before any connection. ``unnamed_ignored`` (an unnamed
    ``./stellaops.yaml`` had an attestation section, left out) puts that reason into the error."""
    public_good = bool(roots is not None and getattr(roots, "public_good", False))
    fulcio = fulcio_url or (roots.fulcio_url if roots is not None else "") or (PUBLIC_GOOD_FULCIO if public_good else "")
    rekor = rekor_url or (roots.rekor_url if roots is not None else "") or (PUBLIC_GOOD_REKOR if public_good else "")
    for name, url in (("--fulcio-url", fulcio), ("--rekor-url", rekor)):
        key = "fulcioUrl" if name == "--fulcio-url" else "rekorUrl"
        if not url:
            if unnamed_ignored:
                raise KeylessSignError(
                    f"keyless signing needs {name}: {UNNAMED_NOT_USED}",
                    hint=f"pass {name} URL, or name the configuration that sets attestation.trustRoots.sigstore.{key} "
                    "(--config FILE; --config ./stellaops.yaml only if you trust that file)",
                )
            raise KeylessSignError(
                f"keyless signing needs {name}",
                hint=f"pass {name} URL or set attestation.trustRoots.sigstore.{key} in a configuration named by --config or $STELLAOPS_CONFIG",
            )
        if not url.startswith(("https://", "http://")):
            raise KeylessSignError(f"{name} {url!r} is not an http(s) URL")
    return KeylessEndpoints(fulcio_url=fulcio.rstrip("/"), rekor_url=rekor.rstrip("/"), timestamp_urls=timestamp_urls)


def sign_from_cli(
    statement: bytes,
    *,
    token_arg: str | None,
    fulcio_url: str | None,
    rekor_url: str | None,
    trusted_root_path: str | None,
    config: Any,
    timestamp_urls: tuple[str, ...] = (),
) -> bytes:
    """``stella attest sign --identity-token``: endpoints and trust material from the flags or
    ``config`` (as :func:`stellaops.cli.common.load_cli_config` loaded it: a named file whole, an
    unnamed ``./stellaops.yaml`` without its ``attestation`` section), then :func:`sign_statement`.
    Returns the bundle JSON."""
    token = read_token(token_arg)
    with warnings.catch_warnings():
        # Fulcio's ephemeral CA names its country "USA"; cryptography warns once per parse of
        # such a (harmless) attribute, which would put noise before our one error line.
        warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
        return _sign_from_cli(statement, token, fulcio_url, rekor_url, trusted_root_path, config, timestamp_urls)


def _sign_from_cli(
    statement: bytes,
    token: str,
    fulcio_url: str | None,
    rekor_url: str | None,
    trusted_root_path: str | None,
    config: Any,
    timestamp_urls: tuple[str, ...],
) -> bytes:
    roots = config.trust.sigstore
    unnamed_ignored = any(key.startswith("attestation") for key in getattr(config, "ignored", ()))
    endpoints = resolve_endpoints(fulcio_url, rekor_url, roots, timestamp_urls, unnamed_ignored=unnamed_ignored)
    trusted = b""
    if trusted_root_path:
        try:
            with open(trusted_root_path, "rb") as fh:
                trusted = fh.read()
        except OSError as exc:
            raise KeylessSignError(f"cannot read --trusted-root {trusted_root_path!r}: {exc.strerror}") from None
    return sign_statement(statement, token, endpoints, trusted_root_document(trusted, roots))
