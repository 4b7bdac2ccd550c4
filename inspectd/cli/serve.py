"""`inspectd serve`: the networks on a Triton Inference Server, shared by the daemons of many line PCs."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from inspectd.cli.common import configure_logging, settings_from_args


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `serve` to the command tree."""
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the networks to many daemons with Triton Inference Server (models.backend = triton)",
        description="Start Triton Inference Server (bundled with PyTriton) with inspectd's networks as models: "
        "IS-Net, the CLIPSeg/CLIP tile pass and its text encoders, SAM, the reference backbone; each with "
        "Triton's dynamic batcher ([serve] preferred_batch_sizes, max_queue_delay_ms, instances). Daemons "
        "with models.backend = 'triton' and models.triton_url = 'HOST:GRPC_PORT' then load no network. "
        "SIGTERM stops the server. Needs `pip install 'inspectd[serve]'`.",
    )
    p.add_argument("--host", help="bind address for every endpoint (overrides serve.host)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (overrides serve.grpc_port)")
    p.add_argument("--http-port", type=int, help="HTTP port (overrides serve.http_port)")
    p.add_argument("--metrics-port", type=int, help="Prometheus metrics port (overrides serve.metrics_port)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the Triton server until SIGTERM/SIGINT."""
    from inspectd.service.systemd import Notifier
    from inspectd.serving.server import serve

    settings = settings_from_args(args)
    overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("grpc_port", args.grpc_port),
            ("http_port", args.http_port),
            ("metrics_port", args.metrics_port),
        )
        if value is not None
    }
    if overrides:
        settings.serve = settings.serve.model_copy(update=overrides)
    configure_logging(settings, args.verbose)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    notifier = Notifier()
    notifier.status("loading models")

    def ready(names: list[str]) -> None:
        cfg = settings.serve
        notifier.ready(f"serving {', '.join(names)} on {cfg.host}:{cfg.grpc_port}")

    try:
        serve(settings, stop, ready)
    finally:
        notifier.stopping()
        notifier.close()
    return 0
