"""``stella attest oci-list`` and ``stella attest download``: what is attached to an image, as
``cosign tree`` and ``cosign download attestation`` show it (``docs/discovery.md``)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

import click

from .common import PREDICATE_TYPE, config_option, image_argument, output_option, verbose_option

if TYPE_CHECKING:
    from ..candidate import Candidate
    from ..registry import RegistryClient

def make_cli_client(config_path: str | None, config: Any = None) -> RegistryClient:
    """The registry client of the CLI (loopback and private registries reachable, like docker
    and cosign on a workstation): see :func:`stellaops.clients.make_registry_client`. The
    configuration is ``config`` when given (already loaded), else :func:`.common.load_cli_config`."""
    from ..clients import make_registry_client
    from .common import load_cli_config

    client: RegistryClient = make_registry_client(config if config is not None else load_cli_config(config_path), for_cli=True)
    return client


def resolve_predicate_type(name: str) -> str:
    from ..predicates import resolve_predicate_type as resolve

    return resolve(name)


def _envelope_doc(c: Candidate) -> dict[str, Any] | None:
    try:
        doc = json.loads(c.data)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if c.kind == "bundle":
        env = doc.get("dsseEnvelope")
        return env if isinstance(env, dict) else None
    return doc


def statement_predicate_type(c: Candidate) -> str:
    """The predicate type of the (unverified) statement, or "" when it cannot be read."""
    env = _envelope_doc(c)
    if env is None:
        return ""
    try:
        payload = base64.b64decode(env.get("payload", ""), validate=True)
        st = json.loads(payload)
        pt = st.get("predicateType", "") if isinstance(st, dict) else ""
        return pt if isinstance(pt, str) else ""
    except (ValueError, TypeError):
        return ""


def _entry(c: Candidate) -> dict[str, Any]:
    layer_digest = "sha256:" + hashlib.sha256(c.data).hexdigest()
    name, _, rest = c.location.partition("@")
    manifest_digest = rest.split("#")[0] if c.source != "cosign-tag" and rest else ""
    pt = statement_predicate_type(c)
    return {
        "source": c.source,
        "kind": c.kind,
        "artifactType": c.artifact_type,
        "predicateType": pt
        or c.annotations.get("dev.sigstore.bundle.predicateType", c.annotations.get("predicateType", "")),
        "predicateTypeFrom": "statement (unverified)" if pt else "annotation (unverified)",
        "digest": layer_digest,
        "manifestDigest": manifest_digest,
        "attachedTo": c.attached_to,
        "location": c.location,
        "created": c.created,
        "annotations": dict(sorted(c.annotations.items())),
    }


@click.command("oci-list")
@image_argument("The image (tag or digest)")
@click.option(
    "--imported", is_flag=True,
    help="Also list attestations imported into the configured store (stella attest import), as the provider sees them.",
)
@output_option
@config_option
@verbose_option
def oci_list(image: str, imported: bool, output: str, config_path: str | None, verbose: bool) -> None:
    """List every attestation attached to IMAGE, from every place it can live.

    Looks at the OCI 1.1 referrers API (or the sha256-<digest> referrers tag on registries
    without it), sigstore bundle referrers, cosign's legacy sha256-<digest>.att tag, and for a
    multi-arch index also each platform manifest. Nothing is verified here: predicate types
    are read from the unsigned data (use `stella attest verify` to verify).

    \b
    Examples:
      stella attest oci-list registry.example.com/app:v1.0.0
      stella attest oci-list registry.example.com/app:v1.0.0 --output json
      stella attest oci-list --image registry.example.com/app:v1.0.0 --imported
      cosign tree registry.example.com/app:v1.0.0      # the same view, from cosign
    """
    from ..discovery import discover_all
    from ..reference import parse_reference
    from .common import emit_json

    ref = parse_reference(image)
    from .common import load_cli_config

    store = None
    config = load_cli_config(config_path)
    if imported:
        from ..store import open_store

        store = open_store(config.store.dsn or None, rows_per_tenant_digest=config.limits.store_rows_per_tenant_digest)
    try:
        with make_cli_client(config_path, config) as client:
            digest = client.resolve(ref).digest
            found = discover_all(client, ref, digest, store=store)
    finally:
        if store is not None:
            store.close()
    entries = [_entry(c) for c in found.candidates]
    if output == "json":
        emit_json(
            {
                "image": str(ref),
                "digest": digest,
                "platformDigests": found.targets[1:],
                "attestations": entries,
                "skipped": [p.to_json() for p in found.problems],
                "unrelatedReferrers": found.skipped_unrelated,
            }
        )
        return
    click.echo(f"📦 Supply Chain Security Related artifacts for an image: {image}")
    if not entries:
        click.echo(f"No attestations found for image {image},\n start creating one with simply running$ "
                   f"stella attest attach --image {image} --attestation FILE")
    # Group like cosign tree: legacy tag sections first, then one section per referrer manifest.
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for e in entries:
        on_platform = "" if e["attachedTo"] == digest else f" (platform manifest {e['attachedTo']})"
        if e["source"] == "cosign-tag":
            key = (0, f"💾 Attestations for an image tag: {e['location'].rsplit('@', 1)[0]}{on_platform}")
        elif e["source"] == "imported":
            key = (2, f"🗄  Imported attestations (store){on_platform}")
        else:
            label = e["annotations"].get("dev.sigstore.bundle.predicateType") or e["predicateType"] or e["artifactType"]
            via = "OCI referrer" if e["source"] in ("bundle", "referrers") else "OCI referrers tag"
            key = (1, f"🔗 {label} artifacts via {via}: {e['location'].split('#')[0]}{on_platform}")
        groups.setdefault(key, []).append(e)
    for (_, header), items in sorted(groups.items(), key=lambda kv: kv[0]):
        click.echo(f"└── {header}")
        for i, e in enumerate(items):
            branch = "└──" if i == len(items) - 1 else "├──"
            click.echo(f"   {branch} 🍒 {e['digest']}")
    for p in found.problems:
        click.echo(f"⚠  skipped {p.location}: {p.reason}: {p.message}", err=True)


def _legacy_line(c: Candidate) -> str:
    """A DSSE envelope as cosign download prints it: payloadType, payload, signatures[{keyid, sig}]."""
    doc = _envelope_doc(c) or {}
    raw_sigs = doc.get("signatures")
    sigs = [
        {"keyid": s.get("keyid", "") if isinstance(s, dict) else "", "sig": s.get("sig", "") if isinstance(s, dict) else ""}
        for s in (raw_sigs if isinstance(raw_sigs, list) else [])
    ]
    return json.dumps(
        {"payloadType": doc.get("payloadType", ""), "payload": doc.get("payload", ""), "signatures": sigs},
        separators=(",", ":"),
    )


def _bundle_line(c: Candidate) -> str:
    try:
        return json.dumps(json.loads(c.data), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return c.data.decode("utf-8", errors="replace").strip()


@click.command("download")
@click.argument("image", metavar="REF")
@click.option(
    "--predicate-type", "predicate_type", metavar="TYPE", type=PREDICATE_TYPE,
    help="Only attestations of this predicate type (a URI or one of cosign's aliases).",
)
@config_option
@verbose_option
def download(image: str, predicate_type: str | None, config_path: str | None, verbose: bool) -> None:
    """Print the attestations attached to REF, one JSON document per line, as
    `cosign download attestation` does: whole sigstore bundles from referrers first, then the
    DSSE envelopes of cosign's .att tag (then plain DSSE referrers, which cosign does not read).

    The output is what `stella attest import` and the import API accept.

    \b
    Examples:
      stella attest download registry.example.com/app:v1.0.0 > attestation.json
      stella attest download --predicate-type stellaops.io/predicates/scan-result@v1 \\
          registry.example.com/app:v1.0.0
      stella attest import --envelope attestation.json --image registry.example.com/app:v1.0.0
    """
    from ..discovery import discover_all
    from ..errors import DiscoveryError
    from ..reference import parse_reference

    ref = parse_reference(image)
    wanted = resolve_predicate_type(predicate_type) if predicate_type else None
    with make_cli_client(config_path) as client:
        digest = client.resolve(ref).digest
        found = discover_all(client, ref, digest, platforms=False, signature_bundles=True)
    order = {"bundle": 0, "cosign-tag": 1, "referrers": 2, "referrers-tag": 2}
    cands = sorted(
        (c for c in found.candidates if c.attached_to == digest and c.source in order),
        key=lambda c: order[c.source],
    )
    lines = []
    for c in cands:
        if wanted is not None and statement_predicate_type(c) != wanted:
            continue
        lines.append(_bundle_line(c) if c.kind == "bundle" else _legacy_line(c))
    if wanted is not None and not lines:
        raise DiscoveryError(
            f"no attestations with predicate type '{wanted}' found",
            hint=f"list what is attached with: stella attest oci-list {image}",
        )
    for line in lines:
        click.echo(line)
