"""Helpers shared by the ``stella`` commands (kept import-light)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..errors import KeyLoadError

config_option = click.option(
    "--config", "config_path", metavar="FILE", help="stellaops.yaml (default: $STELLAOPS_CONFIG, then ./stellaops.yaml)."
)
output_option = click.option(
    "--output", "-o", "output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
verbose_option = click.option("--verbose", "-v", is_flag=True, help="Show details (tracebacks) on errors.")


def read_password(prompt: str = "Enter password for private key") -> bytes:
    """COSIGN_PASSWORD (empty allowed), else a prompt on a terminal, as cosign does."""
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, default="", show_default=False).encode()
    raise KeyLoadError(
        "the private key is encrypted and no password was given",
        hint="set COSIGN_PASSWORD (it may be empty) or run on a terminal to be prompted",
    )


def load_signing_key(path: str) -> Any:
    from ..verify import keys

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path!r}: {exc.strerror}") from exc
    password = read_password() if b"ENCRYPTED" in data else None
    try:
        return keys.load_private_key(data, password)
    except KeyLoadError as exc:
        raise KeyLoadError(f"{path}: {exc.detail}", hint=exc.hint) from exc


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False))
