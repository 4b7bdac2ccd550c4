"""A real `inspectd serve` (Triton via PyTriton) on the tiny models + real IS-Net, started by the tests.

The server runs under the serve environment's interpreter (.venv-serve, made by deploy/bootstrap.sh serve, or
$INSPECTD_SERVE_PYTHON); a missing one fails the test with the set-up step, it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inspectd.bench.broker import free_port
from inspectd.errors import ConfigError
from inspectd.serving.process import ServeProcess, serve_python

# batches form only when requests meet in Triton's queue: a long delay and small preferred sizes make the
# tiny models' requests from two daemons meet on a 2-core machine
SERVE_TOML = """
[models]
dir = "{models_dir}"
cache_dir = "{cache_dir}"
device = "cpu"
warmup = false
sam_points_per_side = 4

[metrics]
enabled = false

[serve]
host = "127.0.0.1"
grpc_port = {grpc}
http_port = {http}
metrics_port = {metrics}
max_batch_size = 16
preferred_batch_sizes = [2, 4]
max_queue_delay_ms = 1000
"""


@dataclass
class TritonServer:
    """The server process and the URL daemons use."""

    process: ServeProcess
    grpc_url: str

    def ensure_running(self) -> None:
        if not self.process.running():
            self.process.start()
        self.process.wait_ready(600)


@pytest.fixture(scope="module")
def triton_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A server configured on free ports but not started (tests that need it running use ``served``)."""
    try:
        python = serve_python()
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)
    folder = tmp_path_factory.mktemp("serve")
    grpc, http, metrics = free_port(), free_port(), free_port()
    config = folder / "serve.toml"
    config.write_text(
        SERVE_TOML.format(
            models_dir=models_dir, cache_dir=folder / "cache", grpc=grpc, http=http, metrics=metrics
        )
    )
    server = TritonServer(ServeProcess(config, http, folder / "serve.log", python), f"127.0.0.1:{grpc}")
    yield server
    server.process.stop()


@pytest.fixture
def served(triton_server: TritonServer) -> TritonServer:
    """The module's server, started (or restarted) and ready."""
    triton_server.ensure_running()
    return triton_server
