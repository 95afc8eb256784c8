"""Issue 21 item 4: every third-party module the package imports is a declared dependency
(runtime, or the optional extra that names it), and the version command tells the truth."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "provider" / "stellaops"
# Imports guarded for an optional extra: module -> the extra that must declare its distribution.
OPTIONAL = {"psycopg": "postgres", "psycopg_pool": "postgres", "redis": "redis"}


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(reqs: list[str]) -> set[str]:
    return {_canon(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in reqs}


def imported_top_level_modules() -> set[str]:
    out: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                out.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    return {m for m in out if m not in stdlib and m != "stellaops"}


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    extras = {k: _requirement_names(v) for k, v in project["optional-dependencies"].items()}
    dists = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(imported_top_level_modules()):
        names = {_canon(d) for d in dists.get(module, [])}
        assert names, f"{module} is imported but no installed distribution provides it"
        declared = extras[OPTIONAL[module]] if module in OPTIONAL else runtime
        if not names & declared:
            missing.append(f"{module} (from {sorted(names)})" + (f" in extra {OPTIONAL[module]}" if module in OPTIONAL else ""))
    assert not missing, "imported but not declared in pyproject.toml: " + ", ".join(missing)


def test_the_check_sees_the_imports_it_must() -> None:
    # the scan is not vacuous: it finds the modules issue 21 named as undeclared
    assert {"urllib3", "tuf", "rfc3161_client", "sigstore_models", "jwt", "werkzeug"} <= imported_top_level_modules()


def _stella(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stellaops.cli", *args], capture_output=True, text=True, timeout=60, check=False)


def test_version_names_the_checkout_commit() -> None:
    proc = _stella("version", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == importlib.metadata.version("stellaops-attest")
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if git.returncode == 0:  # a checkout (editable install): the commit is read from git
        assert doc["gitCommit"] == git.stdout.strip()
        assert doc["gitTreeState"] in ("clean", "dirty")
    assert set(doc) >= {"version", "gitCommit", "gitTreeState", "buildDate", "python", "platform"}
    text = _stella("version")
    assert text.returncode == 0 and f"GitVersion:    {doc['version']}" in text.stdout
    assert f"GitCommit:     {doc['gitCommit']}" in text.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    proc = _stella("completion", shell)
    assert proc.returncode == 0, proc.stderr
    assert "_STELLA_COMPLETE" in proc.stdout
    assert {"bash": "complete -o nosort -F", "zsh": "#compdef stella", "fish": "complete --no-files --command stella"}[shell] in proc.stdout


def test_completion_unknown_shell_is_a_usage_error() -> None:
    proc = _stella("completion", "powershell")
    assert proc.returncode == 2 and "powershell" in proc.stderr


def test_completion_completes_commands() -> None:
    import os

    env = {**os.environ, "_STELLA_COMPLETE": "bash_complete", "COMP_WORDS": "stella attest oci", "COMP_CWORD": "2"}
    proc = subprocess.run([sys.executable, "-m", "stellaops.cli"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "plain,oci-list" in proc.stdout.splitlines(), proc.stdout + proc.stderr


def test_rego_path_points_at_the_shipped_bundles() -> None:
    for what, marker in (("pipeline", ".manifest"), ("seed", "policy.rego"), ("library", "stellaops.rego"),
                         ("templates", "requiresbom/template.yaml"), ("capabilities", "")):
        proc = _stella("rego", "path", what)
        assert proc.returncode == 0, proc.stderr
        path = Path(proc.stdout.strip())
        assert path.exists(), (what, path)
        if marker:
            assert (path / marker).is_file(), (what, path)


def test_package_version_is_the_distribution_version() -> None:
    import stellaops

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert stellaops.__version__ == project["version"]
