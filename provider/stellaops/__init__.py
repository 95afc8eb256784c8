"""StellaOps Attest: verify signed supply-chain attestations attached to OCI images.

The public API is small; everything else is internal and may change. The names below are
resolved on first use (PEP 562), so ``stella --help`` and other light CLI paths do not pay
for importing the verdict model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from .errors import StellaError
    from .verdict import AttestationResult, Signer, Verdict

__all__ = ["StellaError", "Verdict", "AttestationResult", "Signer"]
__version__ = "0.1.0"

_LAZY = {"StellaError": "errors", "Verdict": "verdict", "AttestationResult": "verdict", "Signer": "verdict"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stellaops' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
