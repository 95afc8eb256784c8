"""What ``stella version`` prints (as ``cosign version``): version, git commit and tree state,
build date, Python and platform.

A wheel carries ``stellaops/_build_info.json``, written by setup.py at build time. A checkout
(editable install) has none: the commit and tree state are then read from git, and the build
date is ``unknown`` (as cosign's development builds say).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

DISTRIBUTION = "stellaops-attest"
UNKNOWN = "unknown"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        from . import __version__

        return __version__


def _git(checkout: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def checkout_root() -> Path | None:
    """The source checkout this package runs from (provider/stellaops in a git work tree), or None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / ".git").exists() and (root / "provider" / "stellaops").is_dir() else None


def build_info(*, tree_state: bool = True) -> dict[str, str]:
    """Everything ``stella version`` prints; ``tree_state=False`` skips the ``git status`` of a
    checkout (the provider's build_info metric needs only the commit)."""
    info: dict[str, str] = {"version": version(), "gitCommit": UNKNOWN, "gitTreeState": UNKNOWN, "buildDate": UNKNOWN}
    try:
        stamped = json.loads(resources.files("stellaops").joinpath("_build_info.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError, ValueError):
        stamped = None
    if isinstance(stamped, dict):
        info.update({k: str(v) for k, v in stamped.items() if k in ("gitCommit", "gitTreeState", "buildDate")})
    else:
        root = checkout_root()
        commit = _git(root, "rev-parse", "HEAD") if root else ""
        if root and commit:
            info["gitCommit"] = commit
            if tree_state:
                info["gitTreeState"] = "dirty" if _git(root, "status", "--porcelain", "--untracked-files=no") else "clean"
    info["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    info["platform"] = f"{sys.platform}/{platform.machine()}"
    return info
