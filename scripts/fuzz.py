#!/usr/bin/env python3
"""Long fuzzing runs (``make fuzz``) over the parsers that read untrusted input.

Two engines, over the targets of ``tests/hardening/fuzz_targets.py``:

- **atheris** (coverage-guided libFuzzer, when ``import atheris`` works): one child process per
  target, ``-max_total_time`` seconds each, byte-level inputs seeded from a small corpus of
  valid documents; a crash or a hang (``-timeout``) stops that target and leaves the input in
  ``.tools/fuzz/`` (``$STELLAOPS_FUZZ_DIR``);
- **hypothesis** (always): the structured property tests of ``tests/hardening/test_fuzz.py``
  with a large example budget (``STELLAOPS_FUZZ_EXAMPLES``).

Known, reported bugs (the xfail tests) are skipped so a run looks for new ones; ``--strict``
treats them as crashes. Exit status: 0 when no new crash was found.

    scripts/fuzz.py                                  # both engines, 60 s per atheris target
    scripts/fuzz.py --engine atheris --seconds 600 --target envelope --target statement
    scripts/fuzz.py --engine hypothesis --examples 50000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ARTIFACTS = Path(os.environ.get("STELLAOPS_FUZZ_DIR", ROOT / ".tools" / "fuzz"))  # .tools/ is git-ignored


def _seeds() -> dict[str, list[bytes]]:
    """Valid inputs to start from (the fuzzer mutates these)."""
    import base64
    import json

    digest = "sha256:" + "a" * 64
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "app", "digest": {"sha256": "a" * 64}}],
                            "predicateType": "stellaops.io/predicates/scan-result@v1", "predicate": {"findings": []}}).encode()  # fmt: skip
    envelope = json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(statement).decode(),
                           "signatures": [{"keyid": "", "sig": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()}]}).encode()  # fmt: skip
    bundle = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {"publicKey": {"hint": ""}},
                         "dsseEnvelope": json.loads(envelope)}).encode()  # fmt: skip
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                           "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": digest},
                           "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "size": 10, "digest": digest}],
                           "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 10, "digest": digest}}).encode()  # fmt: skip
    request = json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest",
                          "request": {"keys": ["registry.example.com/app:v1", "localhost:5000/a@" + digest]}}).encode()  # fmt: skip
    config = b"registries:\n  allow: ['*.example.com']\n  allowPrivate: false\nserver:\n  deadlineSeconds: 1.5\nlimits: {referrers: 10}\n"
    return {
        "reference": [b"registry.example.com:5000/team/app:v1.0.0@" + digest.encode(), b"[::1]:5000/a", b"ubuntu"],
        "envelope": [envelope],
        "statement": [statement],
        "manifest": [manifest],
        "provider_request": [request],
        "cosign_download": [bundle + b"\n" + envelope + b"\n", b"[" + envelope + b"," + bundle + b"]"],
        "config": [config],
        "www_authenticate": [b'Bearer realm="https://auth.example.com/token",service="registry",scope="repository:a:pull"'],
        "link_header": [b'</v2/a/referrers/sha256:aa?n=10&last=x>; rel="next"'],
    }


def run_atheris_child(name: str, seconds: int, strict: bool, max_len: int) -> None:
    """Runs inside the child process: instrument, then fuzz one target until time is up."""
    import atheris

    # coverage feedback from our code (and the YAML parser the config target drives) only:
    # instrumenting every dependency costs minutes per target and adds nothing
    with atheris.instrument_imports(include=["stellaops", "yaml"]):
        import stellaops.config  # noqa: F401 - instrumented for coverage
        import stellaops.discovery  # noqa: F401
        import stellaops.dsse  # noqa: F401
        import stellaops.gatekeeper  # noqa: F401
        import stellaops.importer  # noqa: F401
        import stellaops.reference  # noqa: F401
        import stellaops.registry  # noqa: F401
        import stellaops.registry_auth  # noqa: F401
    from tests.hardening import fuzz_targets

    target, allowed = fuzz_targets.TARGETS[name]
    skipped: dict[str, int] = {}

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except allowed:
            pass
        except Exception as exc:  # noqa: BLE001 - classify, then re-raise new findings
            bug = fuzz_targets.known_bug(exc)
            if bug and not strict:
                skipped[bug] = skipped.get(bug, 0) + 1
                return
            raise

    corpus = ARTIFACTS / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(_seeds().get(name, [])):
        (corpus / f"seed-{i}").write_bytes(seed)
    # -timeout: one input taking seconds is a finding (super-linear parsing holds a worker)
    args = [sys.argv[0], f"-max_total_time={seconds}", "-timeout=5", f"-max_len={max_len}", "-rss_limit_mb=2048",
            f"-artifact_prefix={ARTIFACTS}/{name}-", str(corpus)]  # fmt: skip
    atheris.Setup(args, one_input)
    try:
        atheris.Fuzz()
    finally:
        if skipped:
            print(f"fuzz {name}: skipped known bugs {skipped}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis", "both"], default="both")
    parser.add_argument("--target", action="append", help="atheris target (repeatable; default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="atheris time per target")
    parser.add_argument("--examples", type=int, default=20000, help="hypothesis examples per property")
    parser.add_argument("--strict", action="store_true", help="treat known (reported) bugs as crashes")
    parser.add_argument("--max-len", type=int, default=65536, help="atheris: longest input (large enough to expose super-linear parsing)")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_one:
        run_atheris_child(args.run_one, args.seconds, args.strict, args.max_len)
        return 0

    from tests.hardening.fuzz_targets import TARGETS

    try:
        import atheris  # noqa: F401

        have_atheris = True
    except ImportError:
        have_atheris = False
    failures: list[str] = []
    engines = {"auto": ["atheris" if have_atheris else "hypothesis"], "both": ["atheris", "hypothesis"]}.get(args.engine, [args.engine])
    if "atheris" in engines and not have_atheris:
        print("atheris is not installed (pip install atheris): using hypothesis only", file=sys.stderr)
        engines = [e for e in engines if e != "atheris"] or ["hypothesis"]
    ARTIFACTS.mkdir(exist_ok=True)
    if "atheris" in engines:
        for name in args.target or sorted(TARGETS):
            if name not in TARGETS:
                parser.error(f"unknown target {name!r}; known: {', '.join(sorted(TARGETS))}")
            print(f"== atheris: {name} ({args.seconds}s)", flush=True)
            cmd = [sys.executable, __file__, "--run-one", name, "--seconds", str(args.seconds), "--max-len", str(args.max_len)]
            cmd += ["--strict"] if args.strict else []
            rc = subprocess.run(cmd, cwd=ROOT, timeout=args.seconds + 120).returncode
            if rc != 0:
                failures.append(f"atheris:{name} (exit {rc}; input in {ARTIFACTS})")
    if "hypothesis" in engines:
        print(f"== hypothesis: tests/hardening/test_fuzz.py, {args.examples} examples per property", flush=True)
        env = {**os.environ, "STELLAOPS_FUZZ_EXAMPLES": str(args.examples), "STELLAOPS_FUZZ_TIMEOUT": "0"}
        rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/hardening/test_fuzz.py"], cwd=ROOT, env=env).returncode
        if rc != 0:
            failures.append("hypothesis (see the pytest output)")
    if failures:
        print("fuzz: NEW FINDINGS: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("fuzz: no new findings", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
