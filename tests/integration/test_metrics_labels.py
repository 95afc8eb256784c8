"""Issue 21 item 10: a build_info metric and the status code of each answer, on the real
provider (`stella serve` under gunicorn, metrics aggregated over its workers)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Callable

from stellaops.buildinfo import build_info


def _metrics(provider: Any) -> str:
    status, body = provider.get("/metrics")
    assert status == 200
    return body.decode()


def test_build_info_and_status_codes(provider_factory: Callable[..., Any], tmp_path: Path) -> None:
    p = provider_factory(f"store: {{dsn: 'sqlite:///{tmp_path / 's.db'}'}}\nserver: {{workers: 2}}\n")
    text = _metrics(p)
    (commit,) = re.findall(rf'^stellaops_build_info\{{commit="([0-9a-f]{{40}}|unknown)",version="{build_info()["version"]}"\}} 1\.0$', text, re.M)
    assert len(re.findall(r"^stellaops_build_info\{", text, re.M)) == 1  # one series, not one per worker
    if commit != "unknown":  # a checkout: the commit it ran from (HEAD may have moved on since)
        assert subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=Path(__file__).parents[2], check=False).returncode == 0
    for _ in range(3):
        assert p.get("/healthz")[0] == 200
    for i in range(30):  # many distinct unknown paths: still one series
        assert p.get(f"/no/such/path/{i}")[0] == 404
    assert p.post("/gatekeeper/v1/verify", b"not json")[0] == 400
    text = _metrics(p)
    counts = {(m[1], m[0]): float(m[2]) for m in re.findall(r'^stellaops_responses_total\{code="(\w+)",endpoint="([^"]*)"\} (\S+)$', text, re.M)}
    assert counts[("/healthz", "200")] >= 3
    assert counts[("unmatched", "404")] == 30
    assert counts[("/gatekeeper/v1/verify", "400")] == 1
    assert not [k for k in counts if k[0].startswith("/no/such")]
