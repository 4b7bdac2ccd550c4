"""`inspectd serve` as a child process (benchmark, tests): start, wait for readiness, restart, read statistics.

PyTriton pins numpy < 2, so the server usually lives in its own environment (``.venv-serve``, made by
``deploy/bootstrap.sh``); :func:`serve_python` finds that interpreter.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from inspectd.errors import ConfigError
from inspectd.serving import protocol

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_VENV = REPO_ROOT / ".venv-serve"


def serve_python() -> str:
    """The interpreter that runs `inspectd serve`: $INSPECTD_SERVE_PYTHON, this one if it has PyTriton, or
    ``.venv-serve/bin/python``; ConfigError naming the set-up step when there is none."""
    explicit = os.environ.get("INSPECTD_SERVE_PYTHON")
    if explicit:
        if not Path(explicit).is_file():
            raise ConfigError(f"INSPECTD_SERVE_PYTHON={explicit} does not exist")
        return explicit
    if importlib.util.find_spec("pytriton") is not None:
        return sys.executable
    candidate = SERVE_VENV / "bin" / "python"
    if candidate.is_file():
        return str(candidate)
    raise ConfigError(
        f"no Python with PyTriton for `inspectd serve`: run `bash deploy/bootstrap.sh serve` (makes {SERVE_VENV}) "
        "or set INSPECTD_SERVE_PYTHON"
    )


class ServeProcess:
    """One `inspectd serve --config FILE` child; its output goes to ``log_path``."""

    def __init__(self, config: Path, http_port: int, log_path: Path, python: str | None = None) -> None:
        self.config = Path(config)
        self.http_port = http_port
        self.log_path = Path(log_path)
        self.python = python or serve_python()
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Launch the server (returns at once; see :meth:`wait_ready`)."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        env["INSPECTD_LOGGING__FORMAT"] = "json"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.python, "-m", "inspectd.cli.main", "serve", "--config", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def ready(self) -> bool:
        """The description model, loaded after every network, is ready (the server alone is ready earlier)."""
        url = f"http://127.0.0.1:{self.http_port}/v2/models/{protocol.INFO}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float) -> None:
        """Block until ready; RuntimeError with the log's tail if the process died or time ran out."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"`inspectd serve` exited with {self.proc.returncode}:\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"`inspectd serve` not ready after {timeout_s:g} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The last lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, kill: bool = False, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (or SIGKILL, a crash) the server's process group and wait for it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None


def batch_statistics(grpc_url: str) -> dict[str, dict[str, Any]]:
    """Per model: requests, executions and {batch size: executions} from Triton's statistics endpoint."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        stats = client.get_inference_statistics(as_json=True)
    finally:
        client.close()
    out: dict[str, dict[str, Any]] = {}
    for model in stats.get("model_stats", []):
        batches = {
            int(b["batch_size"]): int(b.get("compute_infer", {}).get("count", 0))
            for b in model.get("batch_stats", [])
        }
        out[model["name"]] = {
            "requests": int(model.get("inference_stats", {}).get("success", {}).get("count", 0)),
            "inferences": int(model.get("inference_count", 0)),
            "executions": int(model.get("execution_count", 0)),
            "batches": batches,
        }
    return out
