"""sigstore-python (4.x) as an independent verifier of certificate-signed sigstore bundles.

Our own checks (``keyless.py``, ``tlog.py``) give the precise reason codes; this runs
sigstore-python's ``Verifier.verify_dsse`` over the same bundle and trust root as a second gate,
and turns its exceptions (some of which are not sigstore errors) into our reasons.
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import StellaError, VerificationError
from ..trust import KeylessAuthority
from .trustroot import TrustedRootMaterial

_MAP = (
    ("identity policy", "IDENTITY_MISMATCH"),
    ("SCT", "SCT_INVALID"),
    ("certificate chain", "CERTIFICATE_INVALID"),
    ("signing cert", "CERTIFICATE_INVALID"),
    ("usage", "CERTIFICATE_INVALID"),
    ("log entry", "TLOG_INVALID"),
    ("timestamp", "TLOG_INVALID"),
    ("inclusion", "TLOG_INVALID"),
    ("checkpoint", "TLOG_INVALID"),
    ("SET", "TLOG_INVALID"),
    ("verified time", "TLOG_MISSING"),
    ("signature", "SIGNATURE_INVALID"),
)


def _reason(message: str) -> str:
    return next((reason for needle, reason in _MAP if needle.lower() in message.lower()), "SIGNATURE_INVALID")


@functools.lru_cache(maxsize=8)
def _verifier(document: bytes):  # type: ignore[no-untyped-def]
    """One sigstore-python Verifier per trust root document (parsing it costs milliseconds)."""
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot import v1 as trustroot_v1

    return Verifier(trusted_root=TrustedRoot(trustroot_v1.TrustedRoot.from_json(document)))


class _AuthorityPolicy:
    """A sigstore-python policy backed by our matcher: some keyless authority must match the
    certificate (RE2 whole-value regexps, v1 and v2 issuer extensions; sigstore's own policies
    match exact strings only and read the v1 issuer alone)."""

    def __init__(self, authorities: tuple[KeylessAuthority, ...]) -> None:
        self._authorities = authorities

    def verify(self, cert: Any) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        from . import keyless

        try:
            identity = keyless.identity_of(cert)
        except StellaError as exc:
            raise SigstoreVerificationError(f"signing certificate: {exc.detail}") from exc
        if not any(keyless.match_authority(identity, a) for a in self._authorities):
            raise SigstoreVerificationError("identity policy: " + keyless.describe_mismatch(identity, self._authorities))


def verify_bundle(bundle_json: bytes, root: TrustedRootMaterial, authorities: tuple[KeylessAuthority, ...]) -> None:
    """Raise :class:`VerificationError` with a mapped reason when sigstore-python refuses."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(bundle_json)
        _verifier(root.document).verify_dsse(bundle, _AuthorityPolicy(authorities))
    except SigstoreError as exc:
        message = str(exc) or type(exc).__name__
        raise VerificationError(f"sigstore-python refused the bundle: {message}", reason=_reason(message)) from exc
    except Exception as exc:  # noqa: BLE001 - sigstore lets pydantic/cryptography/ValueError escape
        message = f"{type(exc).__name__}: {exc}"
        raise VerificationError(f"sigstore-python could not verify the bundle: {message}", reason=_reason(message)) from exc
