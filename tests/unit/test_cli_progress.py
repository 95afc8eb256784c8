"""Progress of multi-item ``stella`` commands: on stderr only, only on a terminal unless forced,
never changing stdout (``--output json``), with the right counts.

Through the real CLI: click's ``CliRunner`` (stderr is not a terminal there) and the installed
``stella`` in a subprocess whose stderr is a pseudo-terminal. ``attach`` and ``verify`` of
several attestations run against the real loopback registry (``ocireg``)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from stellaops.cli import cli
from tests.unit.test_import_parse import IMAGE_DIGEST, OTHER_DIGEST, bundle, cosign_output, envelope, statement

STELLA = str(Path(sys.executable).parent / "stella")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _download(n_ok: int) -> bytes:
    """What `cosign download attestation` prints: n distinct envelopes about IMAGE_DIGEST, a
    bundle, and one about another image (refused with --digest)."""
    docs = [envelope(statement(predicate={"buildType": f"b{i}", "builder": {"id": "b"}})) for i in range(n_ok)]
    return cosign_output(bundle(), *docs, envelope(statement([OTHER_DIGEST])))


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    (tmp_path / "att.json").write_bytes(_download(4))  # 6 documents: 5 for the image, 1 refused
    return tmp_path


def _config(base: Path, name: str) -> str:
    path = base / f"{name}.yaml"
    path.write_text(f"store:\n  dsn: sqlite:///{base}/{name}.db\n")
    return str(path)


def _import(files: Path, store: str, *extra: str, env: dict[str, str] | None = None) -> Result:
    args = ["attest", "import", "--envelope", str(files / "att.json"), "--digest", IMAGE_DIGEST, "--config", _config(files, store)]
    return CliRunner().invoke(cli, [*args, *extra], env={"STELLA_PROGRESS": None, **(env or {})})


def test_forced_progress_is_on_stderr_with_the_right_counts(files: Path) -> None:
    res = _import(files, "a", "--progress")
    assert res.exit_code == 1, res.output  # one document is about another image
    lines = [line for line in res.stderr.splitlines() if line.startswith("importing: ")]
    assert lines and lines[-1].startswith("importing: 6/6 line 6: error")
    assert all(re.fullmatch(r"importing: [1-6]/6 line [1-6]: (imported|duplicate|error)", line) for line in lines), lines
    assert "importing" not in res.stdout
    assert "5 imported, 0 already present, 1 refused" in res.stderr
    # again into the same store: every count is right, now as duplicates
    again = _import(files, "a", "--progress")
    assert "0 imported, 5 already present, 1 refused" in again.stderr
    assert again.stderr.splitlines()[0].startswith("importing: 1/6 line 1: duplicate")


def _twin_stores(files: Path) -> None:
    """Stores "a" and "b" holding the same rows (the ids are random per store): importing the
    file again into each must print byte-identical reports."""
    _import(files, "a")
    shutil.copy(files / "a.db", files / "b.db")


def test_json_output_is_identical_with_and_without_progress(files: Path) -> None:
    _twin_stores(files)
    with_progress = _import(files, "a", "--progress", "-o", "json")
    without = _import(files, "b", "--no-progress", "-o", "json")
    assert with_progress.exit_code == without.exit_code == 1
    assert with_progress.stdout == without.stdout
    doc = json.loads(with_progress.stdout)
    assert (doc["imported"], doc["duplicates"], doc["errors"], len(doc["results"])) == (0, 5, 1, 6)
    assert "importing: 6/6" in with_progress.stderr and "importing" not in without.stderr


def test_no_progress_when_stderr_is_not_a_terminal(files: Path) -> None:
    res = _import(files, "a")
    assert "importing" not in res.stderr
    # the one summary line a CI log gets
    assert res.stderr.splitlines()[-1].startswith("5 imported, 0 already present, 1 refused")


@pytest.mark.parametrize(("value", "shown"), [("1", True), ("always", True), ("0", False), ("auto", False), ("", False)])
def test_stella_progress_env_sets_the_default(files: Path, value: str, shown: bool) -> None:
    res = _import(files, "a", env={"STELLA_PROGRESS": value})
    assert ("importing: 6/6" in res.stderr) is shown
    # the flag wins over the environment
    flagged = _import(files, "b", "--no-progress" if shown else "--progress", env={"STELLA_PROGRESS": value})
    assert ("importing: 6/6" in flagged.stderr) is (not shown)


def test_bad_stella_progress_value_is_a_usage_error(files: Path) -> None:
    res = _import(files, "a", env={"STELLA_PROGRESS": "maybe"})
    assert res.exit_code == 2 and "STELLA_PROGRESS='maybe' is not one of 1, 0, auto" in res.output


# -- on a terminal: the installed `stella`, stderr on a pseudo-terminal, stdout a pipe ---------


def _run_on_tty(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if k not in ("STELLA_PROGRESS", "STELLAOPS_CONFIG")}
    full.update(env or {})
    master, slave = pty.openpty()
    proc = subprocess.Popen([STELLA, *args], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=full)
    os.close(slave)
    tty_out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            proc.kill()
            raise AssertionError("stella hung")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        tty_out += chunk
    os.close(master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=30), stdout, tty_out.decode(errors="replace")


def test_bar_on_a_terminal_by_default_and_stdout_untouched(files: Path) -> None:
    _twin_stores(files)
    base = ["attest", "import", "--envelope", str(files / "att.json"), "--digest", IMAGE_DIGEST, "-o", "json"]
    rc, stdout, tty = _run_on_tty([*base, "--config", _config(files, "a")])
    assert rc == 1
    screen = ANSI.sub("", tty).replace("\r", "\n")
    assert "importing [####################] 6/6" in screen, tty
    assert "\r" in tty  # redrawn in place
    _, plain, _ = _run_on_tty([*base, "--config", _config(files, "b"), "--no-progress"])
    assert stdout == plain and json.loads(stdout)["duplicates"] == 5
    rc, _, quiet = _run_on_tty([*base, "--config", _config(files, "c")], env={"STELLA_PROGRESS": "0"})
    assert rc == 1 and "importing" not in quiet


# -- attach and verify of several attestations, on the real loopback registry ----------------


def test_attach_and_verify_several_show_progress(ocireg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures.images import make_envelope, make_key, public_pem, push_test_image

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STELLAOPS_CONFIG", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    digest = push_test_image(ocireg, "progress/app", "v1")
    image = f"{ocireg}/progress/app:v1"
    key = make_key()
    (tmp_path / "cosign.pub").write_bytes(public_pem(key))
    docs = [make_envelope(key, f"{ocireg}/progress/app", digest, predicate={"buildType": f"b{i}", "builder": {"id": "x"}}) for i in range(3)]
    (tmp_path / "three.json").write_bytes(b"\n".join(docs) + b"\n")

    def stella(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={"STELLA_PROGRESS": None})

    attach = ["attest", "attach", "--image", image, "--attestation", "three.json", "--format", "bundle,legacy",
              "--created", "2026-11-24T10:00:00Z"]  # fmt: skip
    res = stella(*attach, "--progress", "-o", "json")
    assert res.exit_code == 0, res.output
    assert "attaching: 3/3 document 3 (bundle, legacy)" in res.stderr and "attaching" not in res.stdout
    assert len(json.loads(res.stdout)) == 6  # 3 documents x 2 forms
    again = stella(*attach)  # not a terminal: no progress, one summary line
    assert "attaching" not in again.stderr
    # every form is found already there: the bundle referrers and the legacy layers
    assert "3 attestations attached: 0 written, 6 already there" in again.stderr

    verify = ["attest", "verify", image, "--key", "cosign.pub", "--insecure-ignore-tlog", "--type", "slsaprovenance", "-o", "json"]
    shown, hidden = stella(*verify, "--progress"), stella(*verify)
    assert shown.exit_code == hidden.exit_code == 0, shown.output
    # the same verdict (attestations of equal rank come in discovery order, which varies)
    assert _sorted_verdict(shown.stdout) == _sorted_verdict(hidden.stdout)
    counts = re.findall(r"verifying: (\d+)/(\d+)", shown.stderr)
    assert counts and counts[-1][0] == counts[-1][1] and int(counts[-1][1]) >= 3  # each copy is verified once
    assert "verifying" not in hidden.stderr
    assert len(json.loads(shown.stdout)["attestations"]) == 3


def _sorted_verdict(out: str) -> dict[str, Any]:
    doc = json.loads(out)
    doc["attestations"].sort(key=lambda a: json.dumps(a, sort_keys=True))
    return doc
