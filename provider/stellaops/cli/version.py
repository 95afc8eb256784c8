"""``stella version`` (as ``cosign version``) and ``stella completion bash|zsh|fish`` (click's
shell completion, as ``cosign completion``)."""

from __future__ import annotations

import json

import click

SHELLS = ("bash", "zsh", "fish")


@click.command("version")
@click.option("--output", "-o", "output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="The same as -o json (cosign's flag).")
def version(output: str, as_json: bool) -> None:
    """Print the version, git commit and tree state, build date, Python and platform.

    \b
    Examples:
      stella version
      stella version -o json | jq -r .gitCommit
    """
    from ..buildinfo import build_info

    info = build_info()
    if as_json or output == "json":
        click.echo(json.dumps(info, indent=2))
        return
    click.echo("stella: StellaOps Attest, verify signed supply-chain attestations (cosign-compatible).\n")
    for label, key in (("GitVersion", "version"), ("GitCommit", "gitCommit"), ("GitTreeState", "gitTreeState"),
                       ("BuildDate", "buildDate"), ("Python", "python"), ("Platform", "platform")):
        click.echo(f"{label + ':':<15}{info[key]}")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    Examples:
      source <(stella completion bash)                      # this bash session
      stella completion bash > /etc/bash_completion.d/stella
      stella completion zsh > "${fpath[1]}/_stella"
      stella completion fish > ~/.config/fish/completions/stella.fish
    """
    from click.shell_completion import get_completion_class

    from . import cli

    cls = get_completion_class(shell)
    assert cls is not None  # the choice lists only shells click supports
    click.echo(cls(cli, {}, "stella", "_STELLA_COMPLETE").source())
