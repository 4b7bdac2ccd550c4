"""The Prometheus endpoint: a port another process holds is a config error naming the key, not a traceback."""

from __future__ import annotations

import socket

import pytest

from inspectd.config import MetricsConfig
from inspectd.errors import ConfigError
from inspectd.service.metrics import Metrics


def test_a_port_in_use_is_refused_naming_metrics_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"metrics.port 127.0.0.1:{port}: cannot listen .*metrics.port = 0"
        ):
            Metrics().serve(MetricsConfig(host="127.0.0.1", port=port))


def test_port_zero_listens_on_a_free_port() -> None:
    metrics = Metrics()
    try:
        assert metrics.serve(MetricsConfig(host="127.0.0.1", port=0)) > 0
    finally:
        metrics.close()
