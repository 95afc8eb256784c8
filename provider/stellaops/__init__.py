"""StellaOps Attest: verify signed supply-chain attestations attached to OCI images.

The public API is small; everything else is internal and may change.
"""

from .errors import StellaError
from .verdict import AttestationResult, Signer, Verdict

__all__ = ["StellaError", "Verdict", "AttestationResult", "Signer"]
__version__ = "0.1.0"
