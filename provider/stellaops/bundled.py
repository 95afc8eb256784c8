"""Where an installation keeps the Rego library, the OPA bundles and the Gatekeeper templates.

A wheel ships them under ``stellaops/share/`` (setup.py copies them from ``rego/`` and
``deploy/gatekeeper/`` at build time); an editable install reads them from the checkout.
``stella rego path WHAT`` prints these paths, e.g. for ``opa eval --bundle "$(stella rego path
pipeline)"``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import StellaError

# name -> (path under share/, path in the checkout)
LOCATIONS: dict[str, tuple[str, str]] = {
    "pipeline": ("rego/bundles/pipeline", "rego/bundles/pipeline"),
    "seed": ("rego/bundles/seed", "rego/bundles/seed"),
    "library": ("rego/lib/stellaops", "rego/lib/stellaops"),
    "transport": ("rego/transport", "rego/transport"),
    "policies": ("rego/policies", "rego/policies"),
    "capabilities": ("rego/build/capabilities.json", "rego/build/capabilities.json"),
    "templates": ("gatekeeper", "deploy/gatekeeper"),
    "rego": ("rego", "rego"),
}


class NotShipped(StellaError):
    """This installation was built without the Rego files (a wheel built without rego/)."""

    reason = "CONFIG_INVALID"


def shared_path(what: str) -> Path:
    """The installed path of ``what`` (a key of :data:`LOCATIONS`); raises :class:`NotShipped`."""
    if what not in LOCATIONS:
        raise ValueError(f"unknown shared item {what!r}")
    in_share, in_checkout = LOCATIONS[what]
    package = Path(__file__).resolve().parent
    candidates = [package / "share" / in_share, package.parents[1] / in_checkout]
    for path in candidates:
        if path.exists():
            return path
    raise NotShipped(
        f"this installation has no {what} ({in_share}): the wheel was built without rego/ and deploy/gatekeeper/",
        hint="build the wheel from a full checkout or the sdist (pip wheel .), which ship them",
    )
