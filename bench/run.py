#!/usr/bin/env python3
"""`make bench`: the provider side by side with cosign, on loopback, bounded (< 10 minutes).

Starts an ocireg registry (OCI 1.1 referrers API) and the provider under gunicorn with the
production defaults (plain HTTP on loopback; one TLS + mTLS run for the warm latency), seeds
images and attestations, then measures (every figure: median and p99 over repeated runs):

  physical   one ECDSA P-256 verify, one keyless bundle verify, one loopback registry round trip
  cold       first verify of an image (empty verdict cache) vs `cosign verify-attestation`
  cli        `stella --help` / `stella attest verify` vs `cosign verify-attestation` (hyperfine)
  warm       Gatekeeper request latency, 1 / 10 / 100 keys, keep-alive (plain and TLS)
  throughput keys/s under concurrent load from wrk (bench/wrk/verify.lua)
  referrers  cold verify with 1 / 10 / 100 / 1000 referrers, one of which is the attestation
  size       cold verify with a 1 KB … 10 MB SBOM predicate
  keys       latency vs keys per request, warm and cold
  memory     RSS of the gunicorn workers before and after a bounded soak

Results: bench/results/<section>.json, bench/results/*.png, and the table in docs/benchmarks.md.
Usage: bench/run.py [--quick] [--only SECTION,...] [--no-doc]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.lib import report
from bench.lib.client import Conn, check_response, request_body
from bench.lib.env import (
    SBOM_TYPE,
    BenchEnv,
    Image,
    cosign_path,
    cosign_verify_cmd,
    quiet_env,
    sbom_predicate,
)
from bench.lib.stats import summarize, summarize_values

RESULTS = HERE / "results"
WRK_SCRIPT = HERE / "wrk" / "verify.lua"
TOTAL_BUDGET_S = 9 * 60  # `make bench` must finish under 10 minutes
SECTIONS = ("physical", "cold", "cli", "warm", "throughput", "referrers", "size", "keys", "memory")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.t0 = time.monotonic()
        self.env = BenchEnv.create()
        self.results: dict[str, Any] = {}
        self.images: dict[str, list[Image]] = {}
        self.main: Any = None  # production-like provider
        self.nocache: Any = None  # same, verdict/digest caches off, long deadline: every request is cold
        self.log_lines: list[str] = []
        self.load_start = loadavg()[0]

    # -- utilities ----------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f}s] {msg}"
        print(line, flush=True)
        self.log_lines.append(line)

    def left(self) -> float:
        return TOTAL_BUDGET_S - (time.monotonic() - self.t0)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def timed_loop(self, fn: Callable[[], float], count: int, budget_s: float) -> list[float]:
        out: list[float] = []
        stop = time.monotonic() + min(budget_s, max(1.0, self.left() - 30))
        for _ in range(count):
            out.append(fn())
            if time.monotonic() > stop:
                break
        return out

    def cosign(self, image_ref: str, ptype: str = SBOM_TYPE) -> float:
        cmd = cosign_verify_cmd(self.env.pub_path, ptype, image_ref)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=quiet_env(), timeout=120)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"cosign verify-attestation {image_ref} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
        return elapsed

    def provider_once(self, conn: Conn, keys: list[str], *, want_verified: bool = True) -> float:
        elapsed, status, data = conn.post(request_body(keys))
        problem = check_response(status, data, keys, want_verified=want_verified)
        if problem:
            raise RuntimeError(f"provider answer for {keys[:2]}…: {problem}")
        return elapsed

    # -- seeding --------------------------------------------------------------------------------
    def seed(self) -> None:
        t = time.monotonic()
        one_kb = sbom_predicate(1024)
        groups = {"cold": self.n(20, 8), "restart": 3, "warm": 100, "coldkeys": 100, "soak": 20}
        for group, count in groups.items():
            imgs = []
            for i in range(count):
                img = self.env.push_image(f"bench/{group}-{i:03d}")
                self.env.attest(img, one_kb)
                imgs.append(img)
            self.images[group] = imgs
        # 1000 distinct warm keys: ten tags on each of the 100 warm images
        tags = []
        for img in self.images["warm"]:
            raw = self.env.client.get_manifest(img.registry, img.repo, img.digest).raw  # type: ignore[union-attr]
            for j in range(10):
                tag = f"t{j}"
                self.env.client.put_manifest(img.registry, img.repo, tag, raw, "application/vnd.oci.image.manifest.v1+json")  # type: ignore[union-attr]
                tags.append(Image(img.repo, tag, img.digest, img.registry))
        self.images["warmtags"] = tags
        # referrers: N referrers in all, exactly one of them the attestation (bundle referrer only)
        for typed in (True, False):
            group = "referrers" if typed else "referrers_untyped"
            self.images[group] = []
            for n in (1, 10, 100, 1000):
                img = self.env.push_image(f"bench/{group.replace('_', '-')}-{n:04d}")
                self.env.attest(img, one_kb, formats=("bundle",))
                if n > 1:
                    self.env.push_unrelated_referrers(img, n - 1, typed=typed)
                self.images[group].append(img)
        # attestation size: 1 KB … 10 MB SBOM predicate, attached as `stella attest attach` does
        self.images["size"] = []
        for size in self.sizes():
            img = self.env.push_image(f"bench/size-{size:08d}")
            self.env.attest(img, sbom_predicate(size))
            self.images["size"].append(img)
        self.say(f"seeded {sum(len(v) for v in self.images.values())} image references in {time.monotonic() - t:.1f}s")

    def sizes(self) -> list[int]:
        return [1_000, 10_000, 100_000, 1_000_000, 10_000_000]

    # -- sections ---------------------------------------------------------------------------------
    def sec_physical(self) -> dict[str, Any]:
        from bench.lib import physical

        img = self.images["cold"][0]
        out: dict[str, Any] = {
            "ecdsa_p256_verify": physical.ecdsa_p256(self.n(3000, 500)),
            "dsse_key_attestation": physical.dsse_key_candidate(self.n(1000, 200)),
            "loopback_registry": physical.loopback_registry(img.registry, img.repo, img.digest, self.n(2000, 300)),
        }
        try:
            out["sigstore_bundle"] = physical.sigstore_bundle(self.n(200, 40))
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            out["sigstore_bundle"] = {"error": f"{type(exc).__name__}: {exc}"}
        conn = Conn(self.main)
        out["provider_healthz"] = physical.provider_floor(conn, self.n(1000, 200))
        out["provider_zero_keys"] = physical.empty_request(conn, self.n(1000, 200))
        conn.close()
        return out

    def sec_cold(self) -> dict[str, Any]:
        """First request for each image on a warm process (empty verdict cache for that digest),
        interleaved with cosign on the same image."""
        conn = Conn(self.main)
        ours, theirs, ratios = [], [], []
        failures: list[str] = []
        for img in self.images["cold"]:
            if self.left() < 60:
                break
            try:
                a = self.provider_once(conn, [img.by_tag])
            except RuntimeError as exc:  # e.g. DEADLINE_EXCEEDED on a loaded machine: counted, not fatal
                failures.append(str(exc)[:300])
                continue
            b = self.cosign(img.by_tag)
            ours.append(a)
            theirs.append(b)
            ratios.append(a / b)
        conn.close()
        # the same through the cache-less provider, by digest (pure discovery + verification)
        nc = Conn(self.nocache)
        self.provider_once(nc, [self.images["cold"][0].by_digest])
        nocache = []
        for img in self.images["cold"]:
            nocache.append(self.provider_once(nc, [img.by_digest]))
        nc.close()
        # first request after a provider start (lazy imports, fresh registry connections)
        restart = []
        for img in self.images["restart"]:
            if self.left() < 90:
                break
            p = self.env.start_provider(f"restart-{img.repo.rsplit('-', 1)[1]}")
            c = Conn(p)
            restart.append(self.provider_once(c, [img.by_tag]))
            c.close()
            p.stop()
            self.env.providers.remove(p)
        stella = summarize(ours)
        cosign = summarize(theirs)
        return {
            "what": "cold verify of one image by tag (1 KiB SBOM attestation; bundle referrer + .att layer) vs cosign verify-attestation",
            "provider_first_request": stella,
            "provider_no_cache_by_digest": summarize(nocache),
            "provider_first_request_after_start": summarize(restart),
            "cosign_verify_attestation": cosign,
            "ratio_per_image": summarize_values([round(r, 4) for r in ratios], "ratio"),
            "ratio_of_medians": round(stella["median"] / cosign["median"], 3) if ours else None,
            "provider_failures": failures,
            "target": "≤ 0.5× cosign",
        }

    def sec_cli(self) -> dict[str, Any]:
        img = self.images["cold"][0]
        stella = str(Path(sys.executable).parent / "stella")
        cfg = self.env.work / "cli.yaml"
        cfg.write_text(
            "registries:\n  allowPrivate: true\n"
            f"store: {{dsn: 'sqlite:///{self.env.work / 'cli-store.db'}'}}\n"
        )
        verify_cmd = [stella, "attest", "verify", "--config", str(cfg), "--key", str(self.env.pub_path),
                      "--insecure-ignore-tlog", "--type", SBOM_TYPE, img.by_tag]
        cmds: dict[str, list[str]] = {
            "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
            "stella --help": [stella, "--help"],
            "cosign version": [cosign_path(), "version"],
            "cosign verify-attestation": cosign_verify_cmd(self.env.pub_path, SBOM_TYPE, img.by_tag),  # type: ignore[arg-type]
        }
        probe = subprocess.run(verify_cmd, capture_output=True, timeout=120)
        out: dict[str, Any] = {"commands": {}}
        if probe.returncode == 0:
            cmds["stella attest verify"] = verify_cmd
        else:
            out["stella_attest_verify_unavailable"] = (probe.stderr or probe.stdout).decode()[-400:]
        runs = self.n(20, 5)
        hyperfine = shutil.which("hyperfine")
        out["tool"] = "hyperfine" if hyperfine else "loop"
        for name, cmd in cmds.items():
            if self.left() < 60:
                break
            times: list[float] = []
            if hyperfine:
                export = self.env.work / "hf.json"
                subprocess.run(
                    [hyperfine, "-N", "--warmup", "2", "--runs", str(runs), "--export-json", str(export),
                     " ".join(_shell_quote(c) for c in cmd)],
                    capture_output=True, timeout=300, check=True, env=quiet_env(),
                )
                times = json.loads(export.read_text())["results"][0]["times"]
            else:
                for _ in range(runs):
                    t0 = time.perf_counter()
                    subprocess.run(cmd, capture_output=True, timeout=120, env=quiet_env())
                    times.append(time.perf_counter() - t0)
            out["commands"][name] = {"argv": " ".join(cmd).replace(str(self.env.work), "$WORK"), **summarize(times)}
        c = out["commands"]
        if "stella attest verify" in c and "cosign verify-attestation" in c:
            out["ratio_of_medians"] = round(c["stella attest verify"]["median"] / c["cosign verify-attestation"]["median"], 3)
        return out

    def warm_latency(self, provider: Any, keys: list[str], warmup: int, count: int) -> dict[str, Any]:
        conn = Conn(provider)
        # warm the worker behind this connection; a cold first batch may overrun the deadline
        # (transient systemError, nothing cached for the late keys): repeat until it answers whole
        problem, tries = "x", 0
        while problem and tries < 20:
            _, status, data = conn.post(request_body(keys))
            problem = check_response(status, data, keys)
            tries += 1
        if problem:
            raise RuntimeError(f"provider never answered {len(keys)} keys whole: {problem}")
        for _ in range(warmup):
            self.provider_once(conn, keys)
        samples = []
        body = request_body(keys)
        stop = time.monotonic() + 20
        for i in range(count):
            elapsed, status, data = conn.post(body)
            if i % 25 == 0:
                problem = check_response(status, data, keys)
                if problem:
                    raise RuntimeError(problem)
            elif status != 200:
                raise RuntimeError(f"HTTP {status}")
            samples.append(elapsed)
            if time.monotonic() > stop:
                break
        conn.close()
        return summarize(samples)

    def sec_warm(self) -> dict[str, Any]:
        out: dict[str, Any] = {"what": "warm Gatekeeper request (verdicts cached in the answering worker), one keep-alive connection"}
        warm = self.images["warm"]
        for k in (1, 10, 100):
            keys = [i.by_tag for i in warm[:k]]
            out[f"keys_{k}"] = self.warm_latency(self.main, keys, warmup=5, count=self.n(400, 100) if k < 100 else self.n(200, 50))
        if self.left() > 120:
            tls = self.env.start_provider("tls", tls=True)
            keys = [i.by_tag for i in warm[:10]]
            out["tls_mtls_keys_10"] = self.warm_latency(tls, keys, warmup=5, count=self.n(400, 100))
            out["tls_mtls_keys_1"] = self.warm_latency(tls, keys[:1], warmup=5, count=self.n(400, 100))
            tls.stop()
            self.env.providers.remove(tls)
        out["target"] = "10 keys: p99 ≤ 5 ms"
        return out

    def wrk(self, provider: Any, keys: list[str], seconds: int, connections: int, threads: int = 1) -> dict[str, Any]:
        body = self.env.work / f"body-{len(keys)}.json"
        body.write_bytes(request_body(keys))
        env = {**os.environ, "STELLA_BENCH_BODY": str(body)}
        cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s",
               "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{provider.port}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result: {proc.stdout[-500:]} {proc.stderr[-500:]}")
        doc = json.loads(line[len("BENCH-JSON "):])
        secs = doc["duration_us"] / 1e6
        doc["requests_per_s"] = round(doc["requests"] / secs, 1)
        doc["keys_per_s"] = round(doc["requests"] * len(keys) / secs, 1)
        return doc

    def sec_throughput(self) -> dict[str, Any]:
        out: dict[str, Any] = {"what": "warm keys/s under concurrent load: wrk (separate process, 1 thread, 16 connections) → 2 gunicorn workers × 8 threads"}
        warm = self.images["warm"]
        secs = self.n(5, 2)
        runs = self.n(3, 1)
        # warm both workers (the verdict cache is per process): load with many connections
        # reaches each of them; every warm image in 10-key bodies, then the 100-key body
        for j in range(0, len(warm), 10):
            self.wrk(self.main, [i.by_tag for i in warm[j:j + 10]], 1, 16)
        self.wrk(self.main, [i.by_tag for i in warm], 3, 16)
        for k in (1, 10, 100):
            keys = [i.by_tag for i in warm[:k]]
            per_run = [self.wrk(self.main, keys, secs, 16) for _ in range(runs) if self.left() > 60]
            bad = sum(r["non200"] + r["system_error"] + sum(r["errors"].values()) for r in per_run)
            out[f"keys_{k}"] = {
                "keys_per_s": summarize_values([r["keys_per_s"] for r in per_run], "keys/s"),
                "requests_per_s": summarize_values([r["requests_per_s"] for r in per_run], "req/s"),
                "latency_p99_ms": summarize_values([r["latency_us"]["p99"] / 1000 for r in per_run], "ms"),
                "failed_or_system_error": bad,
                "runs": per_run,
            }
        out["target"] = "≥ 5,000 keys/s warm"
        return out

    def sec_referrers(self) -> dict[str, Any]:
        out = self.referrers_curve("referrers")
        out["what"] = ("cold verify (cache-less provider, by digest) with N referrers, one of which is the attestation; the "
                       "others are other tools' artifacts whose type the referrers listing reports (as spec-compliant registries do)")
        untyped = self.referrers_curve("referrers_untyped")
        untyped["what"] = ("the same, but the other artifacts are OCI 1.1 artifacts (empty config + artifactType) that ocireg "
                           "(go-containerregistry v0.21.7) lists as application/vnd.oci.empty.v1+json: the type is unknown "
                           "until each manifest is fetched")
        out["untyped"] = untyped
        out["target"] = "1,000 non-matching referrers ≤ 2× the cost of one"
        return out

    def referrers_curve(self, group: str) -> dict[str, Any]:
        out: dict[str, Any] = {"points": []}
        conn = Conn(self.nocache)
        host, port = self.env.registry.rsplit(":", 1)
        for img in self.images[group]:
            if self.left() < 60:
                break
            n = int(img.repo.rsplit("-", 1)[1])
            self.provider_once(conn, [img.by_digest])
            ours = self.timed_loop(lambda img=img: self.provider_once(conn, [img.by_digest]), self.n(20, 5), 20)
            theirs = self.timed_loop(lambda img=img: self.cosign(img.by_digest), self.n(5, 2), 15)
            listing = self.timed_loop(lambda img=img: raw_get(host, int(port), f"/v2/{img.repo}/referrers/{img.digest}"), 20, 5)
            out["points"].append({"referrers": n, "provider": summarize(ours), "cosign": summarize(theirs),
                                  "registry_listing": summarize(listing)})
        conn.close()
        pts = out["points"]
        if len(pts) == 4:
            out["ratio_1000_vs_1"] = round(pts[-1]["provider"]["median"] / pts[0]["provider"]["median"], 3)
            out["cosign_ratio_1000_vs_1"] = round(pts[-1]["cosign"]["median"] / pts[0]["cosign"]["median"], 3)
        return out

    def sec_size(self) -> dict[str, Any]:
        out: dict[str, Any] = {"what": "cold verify (cache-less provider, deadline 30 s, by digest) of one SBOM attestation of the given predicate size, attached as bundle referrer + .att layer", "points": []}
        conn = Conn(self.nocache, timeout=60)
        for img, size in zip(self.images["size"], self.sizes()):
            if self.left() < 60:
                break
            big = size >= 1_000_000
            self.provider_once(conn, [img.by_digest])
            ours = self.timed_loop(lambda img=img: self.provider_once(conn, [img.by_digest]), self.n(5 if big else 15, 3), 20)
            theirs = self.timed_loop(lambda img=img: self.cosign(img.by_digest), self.n(3 if big else 5, 2), 20)
            out["points"].append({"predicate_bytes": size, "provider": summarize(ours), "cosign": summarize(theirs),
                                  "within_default_deadline_1_5s": max(ours) <= 1.5})
        conn.close()
        return out

    def sec_keys(self) -> dict[str, Any]:
        out: dict[str, Any] = {"what": "latency vs keys per request: warm (production provider) and cold (cache-less provider, distinct images, deadline 30 s)", "warm": [], "cold": []}
        tags = self.images["warmtags"]
        for k in (1, 10, 100, 1000):
            keys = [i.by_tag for i in tags[:k]]
            s = self.warm_latency(self.main, keys, warmup=3, count=self.n(100 if k < 1000 else 30, 20))
            out["warm"].append({"keys": k, **s, "per_key_us": round(s["median"] * 1000 / k, 2)})
        conn = Conn(self.nocache, timeout=60)
        imgs = self.images["coldkeys"]
        for k in (1, 10, 50, 100):
            keys = [i.by_digest for i in imgs[:k]]
            samples = self.timed_loop(lambda keys=keys: self.provider_once(conn, keys), self.n(8, 3), 25)
            s = summarize(samples)
            out["cold"].append({"keys": k, **s, "per_key_ms": round(s["median"] / k, 3), "within_default_deadline_1_5s": max(samples) <= 1.5})
        conn.close()
        return out

    def sec_memory(self) -> dict[str, Any]:
        """RSS of the cache-less provider's workers (every request runs the whole chain) over a soak."""
        soak = self.n(60, 15)
        keys = [i.by_digest for i in self.images["soak"][:10]]
        self.wrk(self.nocache, keys, self.n(10, 3), 8)  # warm-up: imports, pools, allocator arenas
        before = worker_rss(self.nocache.proc.pid)
        samples = [{"t": 0, "rss_kib": before}]
        body_keys = keys
        start = time.monotonic()
        # the soak: wrk in the background, RSS sampled every 5 s
        bodyf = self.env.work / "soak.json"
        bodyf.write_bytes(request_body(body_keys))
        proc = subprocess.Popen(
            ["wrk", "-t", "1", "-c", "8", "-d", f"{soak}s", "--timeout", "10s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{self.nocache.port}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "STELLA_BENCH_BODY": str(bodyf)},
        )
        while proc.poll() is None and time.monotonic() - start < soak + 30:
            time.sleep(5)
            samples.append({"t": round(time.monotonic() - start, 1), "rss_kib": worker_rss(self.nocache.proc.pid)})
        stdout, _ = proc.communicate(timeout=60)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH-JSON ")), "BENCH-JSON {}")
        load = json.loads(line[len("BENCH-JSON "):])
        after = worker_rss(self.nocache.proc.pid)
        tb, ta = sum(before.values()), sum(after.values())
        main_rss = worker_rss(self.main.proc.pid)
        return {
            "what": f"RSS (VmRSS) of the 2 gunicorn workers of the cache-less provider, {soak} s soak of 10-key requests (whole chain each time), wrk 8 connections",
            "before_kib": before, "after_kib": after,
            "total_before_kib": tb, "total_after_kib": ta,
            "growth_percent": round((ta - tb) / tb * 100, 2) if tb else None,
            "samples": samples, "load": load,
            "production_provider_workers_at_end_kib": main_rss,
            "target": "RSS growth ≤ 10 %",
        }

    # -- driver -------------------------------------------------------------------------------
    def run(self) -> int:
        wanted = [s for s in (self.args.only.split(",") if self.args.only else SECTIONS) if s]
        self.say(f"registry {self.env.registry}; work dir {self.env.work}")
        self.main = self.env.start_provider("main")
        self.nocache = self.env.start_provider("nocache", nocache=True, deadline=30)
        self.say(f"provider (production defaults) on :{self.main.port}; cache-less provider on :{self.nocache.port}")
        self.seed()
        status = 0
        for name in wanted:
            if self.left() < 45:
                self.say(f"skipping {name}: time budget spent")
                self.results[name] = {"skipped": "time budget"}
                continue
            self.say(f"{name} … (load average {loadavg()[0]})")
            t = time.monotonic()
            load_before = loadavg()[0]
            try:
                self.results[name] = getattr(self, f"sec_{name}")()
            except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
                traceback.print_exc()
                self.results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                status = 1
            self.results[name]["elapsed_s"] = round(time.monotonic() - t, 1)
            self.results[name]["load_average_1m"] = {"before": load_before, "after": loadavg()[0]}
            self.say(f"{name} done in {time.monotonic() - t:.1f}s")
        meta = metadata(self.args, time.monotonic() - self.t0)
        meta["load_average_1m"] = {"start": self.load_start, "end": loadavg()[0],
                                   "max_seen": max([self.load_start] + [v.get("load_average_1m", {}).get("after", 0) for v in self.results.values()])}
        report.write_all(RESULTS, self.results, meta, write_doc=not self.args.no_doc and not self.args.only)
        self.say(f"results in {RESULTS.relative_to(HERE.parent)}/")
        return status


def raw_get(host: str, port: int, path: str) -> float:
    """One GET on a fresh http.client connection; returns seconds (the registry's own cost)."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=30)
    t0 = time.perf_counter()
    conn.request("GET", path)
    conn.getresponse().read()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def loadavg() -> list[float]:
    """1/5/15-minute load averages: other work on this machine skews every figure."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def worker_rss(master_pid: int) -> dict[str, int]:
    """VmRSS (KiB) of each child of the gunicorn master."""
    out: dict[str, int] = {}
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        return out
    for pid in children:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1])
        except OSError:
            continue
    return out


def _shell_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def metadata(args: argparse.Namespace, elapsed: float) -> dict[str, Any]:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=HERE.parent, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""

    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    cosign_version = ""
    try:
        from tests.fixtures.tools import tool

        v = subprocess.run([tool("cosign"), "version"], capture_output=True, text=True, timeout=30).stdout
        cosign_version = next((ln.split(":", 1)[1].strip() for ln in v.splitlines() if ln.startswith("GitVersion")), "")
    except Exception:  # noqa: BLE001
        pass
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "provider")
    return {
        "command": "make bench" + (" (--quick)" if args.quick else ""),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "provider_tree_dirty": bool(dirty),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / 1024 / 1024, 1), "kernel": platform.release()},
        "python": platform.python_version(),
        "cosign": cosign_version,
        "elapsed_s": round(elapsed, 1),
        "quick": args.quick,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run, ~2 minutes)")
    ap.add_argument("--only", default="", help=f"comma-separated sections of {','.join(SECTIONS)} (does not rewrite docs/benchmarks.md)")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args()
    for name in (s for s in args.only.split(",") if s):
        if name not in SECTIONS:
            ap.error(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install wrk); throughput and memory sections will fail", file=sys.stderr)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what we started on SIGTERM too
    bench = Bench(args)
    try:
        return bench.run()
    finally:
        bench.env.close()


if __name__ == "__main__":
    sys.exit(main())
