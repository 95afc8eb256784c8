"""``stella config check``: validate a configuration and print what it would trust."""

from __future__ import annotations

import json

import click


@click.group()
def config() -> None:
    """Inspect the configuration (stellaops.yaml)."""


@config.command("check")
@click.argument("file", required=False)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(file: str | None, output: str) -> None:
    """Validate FILE (default: $STELLAOPS_CONFIG, ./stellaops.yaml) and print what it trusts.

    Exits 2 with the file and key path of the first problem when the configuration is invalid.
    """
    from ..config import describe, load_config

    desc = describe(load_config(file))
    if output == "json":
        click.echo(json.dumps(desc, indent=2))
        return
    click.echo(f"configuration: {desc['source']} (valid)")
    click.echo(f"trust fingerprint: {desc['trustFingerprint']}")
    if not desc["authorities"]:
        click.echo("authorities: none — every attestation will be reported unverified")
    for a in desc["authorities"]:
        if a["kind"] == "key":
            click.echo(f"  authority {a['name']}: key {a['keyId']} ({a['path']})")
        else:
            click.echo(f"  authority {a['name']}: keyless issuer={a['issuer']} subject={a['subject']}")
    click.echo(f"transparency log required: {'yes' if desc['requireTlog'] else 'no (like --insecure-ignore-tlog)'}")
    if desc.get("keylessTimestampWithoutTlog"):
        click.echo("keyless signers: a verified RFC 3161 timestamp may replace the log entry (keylessTimestampWithoutTlog)")
    if desc["sigstore"]:
        s = desc["sigstore"]
        where = "public-good Sigstore via TUF" if s["publicGood"] else (s["trustedRoot"] or "private instance PEM files")
        click.echo(f"sigstore trust roots: {where}{' (offline)' if s['offline'] else ''}")
    r = desc["registries"]
    click.echo(f"registries allowed: {', '.join(r['allow'])}; private addresses {'allowed' if r['allowPrivate'] else 'refused'}")
    srv = desc["server"]
    click.echo(f"server: {'mTLS' if srv['mtls'] else 'TLS' if srv['tls'] else 'no TLS (use --plain-http locally)'}; deadline {srv['deadlineSeconds']}s")
    click.echo(f"store: {desc['store']}; cache: {desc['cache']['backend']}")
