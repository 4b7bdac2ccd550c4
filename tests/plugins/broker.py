"""A real mosquitto broker for tests (fixtures ``mosquitto`` and ``mosquitto_factory``).

Tests subscribe with :class:`inspectd.bench.subscriber.Subscriber`, the PLC-like client the demo and bench use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inspectd.bench.broker import INSTALL_HINT, LocalBroker, find_mosquitto

Broker = LocalBroker


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Start brokers on demand (``factory(persistence=True)``); all are terminated at teardown."""
    if find_mosquitto() is None:
        pytest.fail(f"mosquitto is not installed: {INSTALL_HINT}")
    brokers: list[Broker] = []

    def make(persistence: bool = False) -> Broker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        broker = LocalBroker(persistence=persistence, workdir=workdir)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Broker]) -> Broker:
    """A fresh, running broker without persistence."""
    return mosquitto_factory()
