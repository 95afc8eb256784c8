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
