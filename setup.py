"""Build hook: ships the Rego library, the OPA bundles and the Gatekeeper templates in the wheel.

Everything else is declared in pyproject.toml. At build time (``pip wheel .``, ``python -m
build``), after the Python files are copied, this adds to ``stellaops/`` in the build tree:

- ``share/rego/``: ``rego/lib``, ``rego/transport``, ``rego/policies``, ``rego/bundles/pipeline``
  and ``rego/bundles/seed`` (OPA bundle directories, ``opa eval --bundle``) and
  ``rego/build/capabilities.json``, Rego tests and test data left out;
- ``share/gatekeeper/``: ``deploy/gatekeeper`` (ConstraintTemplates, samples, provider manifests);
- ``_build_info.json``: version, git commit and tree state, build date (``stella version``).

They are read from the rego/ and deploy/ trees as they are at build time (never copied into
provider/). ``stella rego path`` prints where an installation has them. An editable install
(``pip install -e .``) reads them from the checkout instead.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

HERE = Path(__file__).resolve().parent
# (source under HERE, destination under stellaops/share)
SHARED_TREES = (
    ("rego/lib", "rego/lib"),
    ("rego/transport", "rego/transport"),
    ("rego/policies", "rego/policies"),
    ("rego/bundles/pipeline", "rego/bundles/pipeline"),
    ("rego/bundles/seed", "rego/bundles/seed"),
    ("deploy/gatekeeper", "gatekeeper"),
)
SHARED_FILES = (("rego/build/capabilities.json", "rego/build/capabilities.json"),)


def _wanted(path: Path) -> bool:
    """Rego tests and the test helper are not part of what a user runs."""
    return not (path.name.endswith("_test.rego") or path.name == "testing.rego" or "__pycache__" in path.parts)


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def build_info(version: str) -> dict[str, str]:
    """$STELLAOPS_GIT_COMMIT / $STELLAOPS_GIT_TREE_STATE when set (a build from an exported
    tree), else git; $SOURCE_DATE_EPOCH (reproducible builds) else now, as the build date."""
    from_git = _git("rev-parse", "HEAD")
    commit = os.environ.get("STELLAOPS_GIT_COMMIT") or from_git or "unknown"
    state = os.environ.get("STELLAOPS_GIT_TREE_STATE") or (
        ("dirty" if _git("status", "--porcelain", "--untracked-files=no") else "clean") if from_git else "unknown"
    )
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch and epoch.isdigit() else datetime.datetime.now(datetime.UTC)
    return {"version": version, "gitCommit": commit, "gitTreeState": state, "buildDate": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


class build_py(_build_py):  # noqa: N801 - setuptools' command name
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads rego/ and deploy/ from the checkout
        package = Path(self.build_lib) / "stellaops"
        share = package / "share"
        if share.exists():
            shutil.rmtree(share)
        missing = []
        for src, dest in SHARED_TREES:
            root = HERE / src
            if not root.is_dir():
                missing.append(src)
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and _wanted(path):
                    target = share / dest / path.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
        for src, dest in SHARED_FILES:
            if (HERE / src).is_file():
                (share / dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(HERE / src, share / dest)
            else:
                missing.append(src)
        if missing:
            print(
                f"stellaops build: WARNING: {', '.join(missing)} not found next to setup.py; the wheel ships "
                "without them (`stella rego path` will say so). Build from a full checkout or sdist.",
                file=sys.stderr,
            )
        (package / "_build_info.json").write_text(json.dumps(build_info(self.distribution.get_version()), indent=2) + "\n")


setup(cmdclass={"build_py": build_py})
