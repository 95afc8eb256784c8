"""Issue 21 item 9: `stella serve` on a port already in use says so in one line, before
gunicorn's retries (gunicorn alone prints "Connection in use" five times over five seconds)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

STELLA = str(Path(sys.executable).parent / "stella")


def test_busy_port_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        (tmp_path / "c.yaml").write_text(f"store: {{dsn: 'sqlite:///{tmp_path / 's.db'}'}}\n")
        proc = subprocess.run(
            [STELLA, "serve", "--config", str(tmp_path / "c.yaml"), "--host", "127.0.0.1", "--port", str(port), "--plain-http"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: CONFIG_INVALID: 127.0.0.1:{port} is already in use: another process listens there"]
    assert "Connection in use" not in proc.stderr and "Retrying" not in proc.stderr
    assert "Hint: stop that process or choose another --port" in proc.stderr


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_port_serves_plain_http_metrics_of_every_worker(tmp_path: Path) -> None:
    """Item 10: Prometheus scrapes without a client certificate; the listener goes with serve."""
    import os
    import signal
    import time

    port, mport = _free_port(), _free_port()
    (tmp_path / "c.yaml").write_text(f"store: {{dsn: 'sqlite:///{tmp_path / 's.db'}'}}\nserver: {{workers: 2}}\n")
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen(
        [STELLA, "serve", "--config", str(tmp_path / "c.yaml"), "--host", "127.0.0.1", "--port", str(port), "--plain-http",
         "--metrics-port", str(mport)],
        stdout=log, stderr=log, start_new_session=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200 and _get(f"http://127.0.0.1:{mport}/metrics")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        for _ in range(4):
            assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        status, text = _get(f"http://127.0.0.1:{mport}/metrics")
        assert status == 200
        assert "stellaops_build_info{" in text
        served = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith('stellaops_responses_total{code="200",endpoint="/healthz"}')]
        assert served and served[0] >= 4  # aggregated over the workers
        os.kill(proc.pid, signal.SIGTERM)  # serve only (gunicorn's arbiter), not its process group
        proc.wait(timeout=20)
        # the metrics listener went with it
        deadline = time.monotonic() + 10
        while True:
            try:
                _get(f"http://127.0.0.1:{mport}/metrics")
            except OSError:
                break
            assert time.monotonic() < deadline, "the metrics listener outlived stella serve"
            time.sleep(0.2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)
        log.close()
