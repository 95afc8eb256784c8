"""The seed guide's OPA snippet runs as written (Rego v0, only `import data.lib.stellaops`
added) from its bundle, next to the Rego v1 library, with opa v1.17.1: here with http.send
replaced by the provider stub fed with recorded verdicts (test_rego_pipeline.py runs it against
the real provider). The provider URL is a loopback port, in case a mock ever failed to apply."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.tools import tool

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rego" / "bundles" / "seed"
PIPELINE = ROOT / "rego" / "bundles" / "pipeline"
TESTDATA = ROOT / "rego" / "testdata"
HOST = "registry.example.com/app"


def deny(tmp_path: Path, *images: str, mock: str = "data.stub.http_send") -> tuple[int, list[str]]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}}
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    query = f'msg := data.stellaops.attestation.deny[_] with http.send as {mock} with data.stellaops.config.provider_url as "http://127.0.0.1:9"'
    proc = subprocess.run(
        [tool("opa"), "eval", "--fail-defined", "--format", "json", "--bundle", str(SEED), "--bundle", str(PIPELINE), "--data", str(TESTDATA), "--input", str(tmp_path / "pod.json"), query],
        capture_output=True, check=False, text=True, timeout=60,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, sorted(r["bindings"]["msg"] for r in json.loads(proc.stdout).get("result", []))


def test_seed_file_is_rego_v0_as_written_and_marked_so() -> None:
    text = (SEED / "policy.rego").read_text()
    assert "deny[msg] {" in text and "has_valid_attestation(image, predicate_type) {" in text
    assert text.splitlines()[:3] == ["package stellaops.attestation", "", "import data.lib.stellaops"]
    manifest = json.loads((SEED / ".manifest").read_text())
    assert manifest["rego_version"] == 1 and manifest["file_rego_versions"] == {"/policy.rego": 0}
    assert manifest["roots"] == ["stellaops/attestation"]


@pytest.mark.parametrize(
    ("image", "denied"),
    [
        (f"{HOST}:recorded-logged", False),  # recorded: keyless, logged in Rekor
        (f"{HOST}:v1.0.0", False),  # synthetic: key-signed and logged
        (f"{HOST}:recorded-offline", False),  # recorded: verified, not logged, provider did not require a log
        (f"{HOST}:recorded-unsigned", True),
        (f"{HOST}:tampered", True),
        (f"{HOST}@sha256:nothex", True),  # per-key error
        (f"{HOST}:unreachable", True),  # left out, named in systemError
    ],
)
def test_seed_snippet_decides_on_recorded_verdicts(tmp_path: Path, image: str, denied: bool) -> None:
    rc, msgs = deny(tmp_path, image)
    assert (rc, msgs) == ((1, [f"Image {image} missing valid scan attestation"]) if denied else (0, []))


def test_seed_snippet_fails_closed_without_an_answer(tmp_path: Path) -> None:
    (tmp_path / "broken.rego").write_text('package broken\n\nrefused(_) := {"status_code": 0, "error": {"message": "connection refused"}}\n')
    # The mock is one more module, loaded next to the bundles.
    pod = {"kind": "Pod", "spec": {"containers": [{"name": "a", "image": f"{HOST}:recorded-logged"}]}}
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    proc = subprocess.run(
        [tool("opa"), "eval", "--fail-defined", "--format", "json", "--bundle", str(SEED), "--bundle", str(PIPELINE), "--data", str(tmp_path / "broken.rego"),
         "--input", str(tmp_path / "pod.json"),
         'msg := data.stellaops.attestation.deny[_] with http.send as data.broken.refused with data.stellaops.config.provider_url as "http://127.0.0.1:9"'],
        capture_output=True, check=False, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert [r["bindings"]["msg"] for r in json.loads(proc.stdout)["result"]] == [f"Image {HOST}:recorded-logged missing valid scan attestation"]
