"""`opa eval` in a pipeline, end to end on real parts: a real registry (ocireg), attestations
attached by `stella` (key-signed, offline) and made with the offline test Sigstore (keyless,
logged in its Rekor), the provider under gunicorn (`stella serve --plain-http`), and the real
`opa` with the http.send transport: the seed guide's Rego v0 snippet from its bundle
(rego/bundles/seed) and the shipped policies from rego/bundles/pipeline. `--fail-defined` gives
CI its exit code: 0 when nothing is denied, 1 when something is (or on errors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.provider import ProviderProcess, free_port, start_provider
from tests.fixtures.sigstore import TestSigstore
from tests.integration._rego_world import SCAN, seed
from tests.fixtures.tools import tool

ROOT = Path(__file__).resolve().parents[2]
STELLA = str(Path(sys.executable).parent / "stella")
SEED = ROOT / "rego" / "bundles" / "seed"
PIPELINE = ROOT / "rego" / "bundles" / "pipeline"



@pytest.fixture(scope="module")
def world(ocireg: str, test_sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("rego-pipeline")
    images, config = seed(ocireg, test_sigstore, d, "pipeline")
    provider = start_provider(d / "provider", config)
    yield {"dir": d, "images": images, "provider": provider}
    provider.stop()


def pod(*images: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}}


def opa_eval(
    workdir: Path, bundles: list[Path], doc: dict[str, Any], query: str, *, url: str, data: dict[str, Any] | None = None, extra_env: dict[str, str] | None = None
) -> tuple[int, list[Any]]:
    """Run `opa eval --fail-defined` as a CI job would; returns (exit code, values of the query)."""
    (workdir / "input.json").write_text(json.dumps(doc))
    cmd = [tool("opa"), "eval", "--fail-defined", "--format", "json", "--input", str(workdir / "input.json")]
    for b in bundles:
        cmd += ["--bundle", str(b)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STELLAOPS_")}
    if data is not None:
        (workdir / "config.json").write_text(json.dumps(data))
        cmd += ["--data", str(workdir / "config.json")]
    else:
        env["STELLAOPS_PROVIDER_URL"] = url
    env.update(extra_env or {})
    proc = subprocess.run([*cmd, query], capture_output=True, check=False, text=True, timeout=60, env=env)
    result = json.loads(proc.stdout).get("result", []) if proc.stdout.strip() else []
    values = [r["bindings"]["x"] for r in result]
    return proc.returncode, values


def test_seed_snippet_allows_a_logged_verified_image(world: dict[str, Any], tmp_path: Path) -> None:
    rc, denied = opa_eval(tmp_path, [SEED, PIPELINE], pod(world["images"]["logged"]), "x := data.stellaops.attestation.deny[_]", url=world["provider"].url)
    assert (rc, denied) == (0, [])


def test_seed_snippet_denies_unsigned_images_and_follows_the_providers_tlog_requirement(world: dict[str, Any], tmp_path: Path) -> None:
    imgs = world["images"]
    # this provider runs with requireTlog: false, so the seed's verify_attestation accepts the
    # offline key signature (tlog.required false); the policies' explicit requireTlog still decides for them
    rc, denied = opa_eval(tmp_path, [SEED, PIPELINE], pod(imgs["logged"], imgs["unsigned"], imgs["offline"]), "x := data.stellaops.attestation.deny[_]", url=world["provider"].url)
    assert rc == 1
    assert denied == [f"Image {imgs['unsigned']} missing valid scan attestation"]


def test_seed_snippet_fails_closed_when_the_provider_is_down(world: dict[str, Any], tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    rc, denied = opa_eval(tmp_path, [SEED, PIPELINE], pod(world["images"]["logged"]), "x := data.stellaops.attestation.deny[_]", url=down)
    assert rc == 1 and denied == [f"Image {world['images']['logged']} missing valid scan attestation"]


def test_seed_snippet_fails_closed_when_the_provider_times_out(world: dict[str, Any], tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        doc = _review(pod(world["images"]["logged"]), {"predicateTypes": [SCAN]})
        rc, msgs = opa_eval(tmp_path, [PIPELINE], doc, "x := data.stellaopsrequireattestations.violation[_].msg", url=url, extra_env={"STELLAOPS_PROVIDER_TIMEOUT": "1s"})
        assert rc == 1 and len(msgs) == 1
        assert "could not verify image" in msgs[0] and "Timeout" in msgs[0], msgs
        rc, denied = opa_eval(tmp_path, [SEED, PIPELINE], pod(world["images"]["logged"]), "x := data.stellaops.attestation.deny[_]", url=url, extra_env={"STELLAOPS_PROVIDER_TIMEOUT": "1s"})
        assert rc == 1 and denied == [f"Image {world['images']['logged']} missing valid scan attestation"]


def _review(resource: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    return {"review": {"object": resource}, "parameters": parameters}


def test_policy_bundle_allows_offline_signatures_when_the_constraint_says_so(world: dict[str, Any], tmp_path: Path) -> None:
    imgs = world["images"]
    doc = _review(pod(imgs["offline"], imgs["logged"]), {"predicateTypes": [SCAN], "requireTlog": False})
    rc, msgs = opa_eval(tmp_path, [PIPELINE], doc, "x := data.stellaopsrequireattestations.violation[_].msg", url=world["provider"].url)
    assert (rc, msgs) == (0, [])


def test_policy_bundle_denies_with_a_message_naming_container_image_type(world: dict[str, Any], tmp_path: Path) -> None:
    imgs = world["images"]
    doc = _review(pod(imgs["unsigned"], imgs["offline"]), {"predicateTypes": [SCAN]})
    rc, msgs = opa_eval(tmp_path, [PIPELINE], doc, "x := data.stellaopsrequireattestations.violation[_].msg", url=world["provider"].url)
    assert rc == 1 and len(msgs) == 2
    unsigned = next(m for m in msgs if imgs["unsigned"] in m)
    assert unsigned.startswith(f"container <c0> image <{imgs['unsigned']}>: no attestation of type <{SCAN}> is attached")
    offline = next(m for m in msgs if imgs["offline"] in m)
    assert "no verified transparency-log entry" in offline and "requireTlog: false" in offline


def test_scan_thresholds_with_provider_url_from_data(world: dict[str, Any], tmp_path: Path) -> None:
    imgs = world["images"]
    params = {"maxCounts": {"critical": 0}, "requireTlog": False, "signers": {"authorities": ["release-key"]}}
    data = {"stellaops": {"config": {"provider_url": world["provider"].url, "timeout": "10s"}}}
    rc, msgs = opa_eval(tmp_path, [PIPELINE], _review(pod(imgs["offline"]), params), "x := data.stellaopsscanthresholds.violation[_].msg", url="", data=data)
    assert (rc, msgs) == (0, [])
    rc, msgs = opa_eval(tmp_path, [PIPELINE], _review(pod(imgs["critical"]), params), "x := data.stellaopsscanthresholds.violation[_].msg", url="", data=data)
    assert rc == 1 and len(msgs) == 1 and "finds critical 1 (max 0)" in msgs[0]


def test_policy_bundle_fails_closed_without_a_provider_url(world: dict[str, Any], tmp_path: Path) -> None:
    doc = _review(pod(world["images"]["logged"]), {"predicateTypes": [SCAN]})
    rc, msgs = opa_eval(tmp_path, [PIPELINE], doc, "x := data.stellaopsrequireattestations.violation[_].msg", url="", data={})
    assert rc == 1 and len(msgs) == 1 and "no provider URL is configured" in msgs[0]


def test_provider_process_is_the_real_one(world: dict[str, Any]) -> None:
    provider: ProviderProcess = world["provider"]
    status, _body = provider.get("/healthz")
    assert status == 200 and provider.proc is not None and provider.proc.poll() is None


# --- what docs/policies.md says about the seed's v0 policy (issue 16, issue 21 item 11) -----------

def _verdict(provider: ProviderProcess, image: str) -> dict[str, Any]:
    items = provider.verify(image)["response"]["items"]
    (item,) = [i for i in items if i["key"] == image]
    assert not item.get("error"), item
    return item["value"]


def test_seed_verify_attestation_admits_a_key_signed_unlogged_attestation_when_the_provider_does_not_require_the_log(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """docs/policies.md: with the provider's `requireTlog: false`, the seed's `verify_attestation`
    admits a key-signed attestation that has no transparency-log entry, because the verdict says
    `tlog.required: false`; it does not demand a log entry of its own."""
    offline = world["images"]["offline"]
    (att,) = [a for a in _verdict(world["provider"], offline)["attestations"] if a["predicateType"] == SCAN]
    assert att["verified"] is True and [s["kind"] for s in att["signers"]] == ["key"]
    assert att["tlog"]["verified"] is False and att["tlog"]["required"] is False  # unlogged, and not required
    rc, denied = opa_eval(tmp_path, [SEED, PIPELINE], pod(offline), "x := data.stellaops.attestation.deny[_]", url=world["provider"].url)
    assert (rc, denied) == (0, [])  # admitted
    # the shipped policies decide on the log themselves: requireTlog defaults to true there
    doc = _review(pod(offline), {"predicateTypes": [SCAN]})
    rc, msgs = opa_eval(tmp_path, [PIPELINE], doc, "x := data.stellaopsrequireattestations.violation[_].msg", url=world["provider"].url)
    assert rc == 1 and "no verified transparency-log entry" in msgs[0]


def test_seed_verify_attestation_denies_the_same_attestation_when_the_provider_requires_the_log(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """The same image and signature under a provider with `requireTlog: true`: denied by the seed."""
    config = (world["provider"].config_path.read_text().replace("requireTlog: false", "requireTlog: true")
              .replace("store.db", "store-tlog.db"))
    strict = start_provider(tmp_path / "strict", config)
    try:
        offline = world["images"]["offline"]
        (att,) = [a for a in _verdict(strict, offline)["attestations"] if a["predicateType"] == SCAN]
        assert att["tlog"]["verified"] is False and att["tlog"].get("required") is not False
        rc, denied = opa_eval(tmp_path, [SEED, PIPELINE], pod(offline), "x := data.stellaops.attestation.deny[_]", url=strict.url)
        assert (rc, denied) == (1, [f"Image {offline} missing valid scan attestation"])
    finally:
        strict.stop()


def test_seed_snippet_does_not_check_init_ephemeral_containers_templates_or_image_volumes(world: dict[str, Any], tmp_path: Path) -> None:
    """docs/policies.md: the seed's v0 policy reads Pods' `spec.containers` only. An unattested
    image as an initContainer, an ephemeralContainer, an image volume, or in a Deployment's pod
    template passes it; the shipped policies deny every one of them."""
    imgs = world["images"]
    good, bad = imgs["logged"], imgs["unsigned"]
    sneaky = pod(good)
    sneaky["spec"]["initContainers"] = [{"name": "init", "image": bad}]
    sneaky["spec"]["ephemeralContainers"] = [{"name": "debug", "image": bad}]
    sneaky["spec"]["volumes"] = [{"name": "models", "image": {"reference": bad}}]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
                  "spec": {"template": {"spec": {"containers": [{"name": "app", "image": bad}]}}}}
    for resource in (sneaky, deployment):
        rc, denied = opa_eval(tmp_path, [SEED, PIPELINE], resource, "x := data.stellaops.attestation.deny[_]", url=world["provider"].url)
        assert (rc, denied) == (0, []), resource["kind"]
    rc, msgs = opa_eval(tmp_path, [PIPELINE], _review(sneaky, {"predicateTypes": [SCAN]}),
                        "x := data.stellaopsrequireattestations.violation[_].msg", url=world["provider"].url)
    assert rc == 1
    assert sorted(m.split(">: ", 1)[0] + ">" for m in msgs) == [
        f"ephemeralContainer <debug> image <{bad}>", f"imageVolume <models> image <{bad}>", f"initContainer <init> image <{bad}>"]
    rc, msgs = opa_eval(tmp_path, [PIPELINE], _review(deployment, {"predicateTypes": [SCAN]}),
                        "x := data.stellaopsrequireattestations.violation[_].msg", url=world["provider"].url)
    assert rc == 1 and msgs[0].startswith(f"container <app> image <{bad}>")
