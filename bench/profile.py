#!/usr/bin/env python3
"""Profiles behind the findings in docs/benchmarks.md (bounded, loopback only, ~1 minute).

  warm   py-spy (``--gil``: only the thread holding the GIL, i.e. Python CPU) on one gunicorn
         worker of the production-config provider while wrk sends warm 10-key requests
  cold   pyinstrument over the engine in-process (same config, caches off): one image, one
         attestation, by digest
  untyped  pyinstrument over the engine in-process: 1,000 referrers the listing does not type
  large  pyinstrument over the engine in-process: one 10 MB SBOM attestation

Writes bench/results/profile_<name>.txt. Needs py-spy and pyinstrument in the venv
(``.venv/bin/pip install py-spy pyinstrument``). Usage: bench/profile.py [warm,cold,untyped,large]
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.lib.client import request_body
from bench.lib.env import BenchEnv, sbom_predicate

RESULTS = HERE / "results"
WRK_SCRIPT = HERE / "wrk" / "verify.lua"


def aggregate(raw: Path, top: int = 40) -> str:
    """py-spy raw (collapsed) stacks → the frames with the most samples, self and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    out = [f"samples: {total} (GIL holder only)", "", "self time:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top * 2)
            if not any(s in f for s in ("click/", "arbiter.py", "Thread._bootstrap", "Thread.run"))]
    return "\n".join(out) + "\n"


def warm(env: BenchEnv) -> str:
    pyspy = Path(sys.executable).parent / "py-spy"
    if not pyspy.exists():
        return "py-spy is not installed in the venv\n"
    p = env.start_provider("main")
    keys = []
    for i in range(10):
        img = env.push_image(f"bench/profile-{i}")
        env.attest(img, sbom_predicate(1024))
        keys.append(img.by_tag)
    body = env.work / "body.json"
    body.write_bytes(request_body(keys))
    wrk_env = {**os.environ, "STELLA_BENCH_BODY": str(body)}
    url = f"http://127.0.0.1:{p.port}"
    subprocess.run(["wrk", "-t1", "-c16", "-d4s", "-s", str(WRK_SCRIPT), url], env=wrk_env, capture_output=True, timeout=60)
    workers = Path(f"/proc/{p.proc.pid}/task/{p.proc.pid}/children").read_text().split()  # type: ignore[union-attr]
    load = subprocess.Popen(["wrk", "-t1", "-c16", "-d14s", "-s", str(WRK_SCRIPT), url], env=wrk_env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1)
    raw = env.work / "warm.raw"
    subprocess.run([str(pyspy), "record", "-p", workers[0], "-d", "10", "-r", "250", "--gil", "--nonblocking",
                    "--format", "raw", "-o", str(raw)], capture_output=True, timeout=60)
    out, _ = load.communicate(timeout=60)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH-JSON")), "")
    return f"warm 10-key requests, wrk -t1 -c16, py-spy --gil on worker {workers[0]}\nwrk: {line}\n\n" + aggregate(raw)


def _engine(env: BenchEnv) -> object:
    from stellaops.config import load_config
    from stellaops.engine import Engine

    d = env.work / "inproc"
    d.mkdir(exist_ok=True)
    (d / "stellaops.yaml").write_text(env.config_text("inproc", nocache=True, deadline=30))
    return Engine(load_config(str(d / "stellaops.yaml")))


def _pyinstrument(fn: object, runs: int) -> str:
    from pyinstrument import Profiler

    fn()  # type: ignore[operator]
    prof = Profiler(interval=0.0002)
    prof.start()
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()  # type: ignore[operator]
    elapsed = time.perf_counter() - t0
    prof.stop()
    return f"{runs} runs, {elapsed / runs * 1000:.2f} ms each (under the profiler)\n\n" + prof.output_text(unicode=False, color=False)


def cold(env: BenchEnv) -> str:
    img = env.push_image("bench/profile-cold")
    env.attest(img, sbom_predicate(1024))
    engine = _engine(env)
    return "cold verify, in-process engine, caches off, one image by digest (bundle referrer + .att layer)\n" + _pyinstrument(
        lambda: engine.verify_key(img.by_digest), 50)  # type: ignore[attr-defined]


def untyped(env: BenchEnv) -> str:
    img = env.push_image("bench/profile-untyped")
    env.attest(img, sbom_predicate(1024), formats=("bundle",))
    env.push_unrelated_referrers(img, 999, typed=False)
    engine = _engine(env)
    return "cold verify, in-process engine, 1,000 referrers the listing does not type\n" + _pyinstrument(
        lambda: engine.verify_key(img.by_digest), 3)  # type: ignore[attr-defined]


def large(env: BenchEnv) -> str:
    img = env.push_image("bench/profile-large")
    env.attest(img, sbom_predicate(10_000_000))
    engine = _engine(env)
    return "cold verify, in-process engine, one 10 MB SBOM attestation (bundle referrer + .att layer)\n" + _pyinstrument(
        lambda: engine.verify_key(img.by_digest), 2)  # type: ignore[attr-defined]


def main() -> int:
    wanted = (sys.argv[1] if len(sys.argv) > 1 else "warm,cold,untyped,large").split(",")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None and "warm" in wanted:
        print("wrk is not installed", file=sys.stderr)
        return 2
    env = BenchEnv.create()
    try:
        for name in wanted:
            text = {"warm": warm, "cold": cold, "untyped": untyped, "large": large}[name](env)
            (RESULTS / f"profile_{name}.txt").write_text(text)
            print(f"wrote bench/results/profile_{name}.txt")
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
