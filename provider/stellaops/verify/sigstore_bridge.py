"""sigstore-python (4.x) as an independent verifier of certificate-signed sigstore bundles.

Our own checks (``keyless.py``, ``tlog.py``) give the precise reason codes; this runs
sigstore-python's ``Verifier.verify_dsse`` over the same bundle and trust root as a second gate,
and turns its exceptions (some of which are not sigstore errors) into our reasons.
"""

from __future__ import annotations

from ..errors import VerificationError
from .trustroot import TrustedRootMaterial

_MAP = (
    ("SCT", "SCT_INVALID"),
    ("certificate chain", "CERTIFICATE_INVALID"),
    ("signing cert", "CERTIFICATE_INVALID"),
    ("usage", "CERTIFICATE_INVALID"),
    ("log entry", "TLOG_INVALID"),
    ("inclusion", "TLOG_INVALID"),
    ("checkpoint", "TLOG_INVALID"),
    ("SET", "TLOG_INVALID"),
    ("verified time", "TLOG_MISSING"),
    ("signature", "SIGNATURE_INVALID"),
)


def _reason(message: str) -> str:
    return next((reason for needle, reason in _MAP if needle.lower() in message.lower()), "SIGNATURE_INVALID")


def verify_bundle(bundle_json: bytes, root: TrustedRootMaterial) -> None:
    """Raise :class:`VerificationError` with a mapped reason when sigstore-python refuses."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier, policy
    from sigstore_models.trustroot import v1 as trustroot_v1

    try:
        trusted = TrustedRoot(trustroot_v1.TrustedRoot.from_json(root.document))
        bundle = Bundle.from_json(bundle_json)
        Verifier(trusted_root=trusted).verify_dsse(bundle, policy.UnsafeNoOp())
    except SigstoreError as exc:
        message = str(exc) or type(exc).__name__
        raise VerificationError(f"sigstore-python refused the bundle: {message}", reason=_reason(message)) from exc
    except Exception as exc:  # noqa: BLE001 - sigstore lets pydantic/cryptography/ValueError escape
        message = f"{type(exc).__name__}: {exc}"
        raise VerificationError(f"sigstore-python could not verify the bundle: {message}", reason=_reason(message)) from exc
