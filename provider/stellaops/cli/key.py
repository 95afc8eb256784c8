"""``stella key generate``: an ECDSA P-256 key pair in cosign's formats (``cosign.key`` encrypted
with scrypt + nacl/secretbox, ``cosign.pub`` PEM SPKI), usable by cosign and by us."""

from __future__ import annotations

import os
import sys

import click

from ..errors import KeyLoadError, RequestError


def _password() -> bytes:
    """COSIGN_PASSWORD (empty allowed), else a confirmed prompt on a terminal, as cosign does."""
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    if not sys.stdin.isatty():
        raise KeyLoadError(
            "no password for the new private key",
            hint="set COSIGN_PASSWORD (it may be empty) or run on a terminal to be prompted",
        )
    first = click.prompt("Enter password for private key", hide_input=True, default="", show_default=False)
    second = click.prompt("Enter password for private key again", hide_input=True, default="", show_default=False)
    if first != second:
        raise KeyLoadError("the passwords do not match")
    return first.encode()


@click.group()
def key() -> None:
    """Manage signing keys (cosign-compatible files)."""


@key.command()
@click.option("--output-key-prefix", "prefix", default="cosign", show_default=True, help="Write PREFIX.key and PREFIX.pub.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def generate(prefix: str, force: bool) -> None:
    """Generate an ECDSA P-256 key pair as cosign generate-key-pair does.

    \b
    Example:
      COSIGN_PASSWORD=... stella key generate            # writes cosign.key and cosign.pub
    """
    from ..verify import keys

    key_path, pub_path = f"{prefix}.key", f"{prefix}.pub"
    for path in (key_path, pub_path):
        if os.path.exists(path) and not force:
            raise RequestError(f"{path} already exists; not overwriting it", hint="remove it, pick --output-key-prefix, or pass --force")
    private_pem, public_pem = keys.generate_key_pair(_password())
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
        with open(pub_path, "wb") as fh:
            fh.write(public_pem)
    except OSError as exc:
        raise RequestError(f"cannot write the key pair: {exc}") from exc
    click.echo(f"Private key written to {key_path}", err=True)
    click.echo(f"Public key written to {pub_path}", err=True)
