"""A real mosquitto broker for tests (fixtures ``mosquitto`` and ``mosquitto_factory``) and a collecting subscriber."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

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


@dataclass
class Received:
    """One message a Subscriber got."""

    topic: str
    payload: bytes
    retain: bool
    qos: int


class Subscriber:
    """A real paho client that collects every message per topic; resubscribes after reconnects.

    ``persistent=True`` keeps a broker-side session (clean_session False, fixed client id), so QoS 1
    messages published while it is disconnected are queued for it by the broker.
    """

    def __init__(self, broker: Broker, topics: list[str], persistent: bool = False, qos: int = 1) -> None:
        self.topics = topics
        self.qos = qos
        self.messages: dict[str, list[Received]] = defaultdict(list)
        self.all: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        client_id = f"test-sub-{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise AssertionError(f"subscriber did not subscribe to {topics} within 5 s")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe([(t, self.qos) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            rec = Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos)
            self.messages[msg.topic].append(rec)
            self.all.append(rec)
            self._cond.notify_all()

    def wait_for(self, topic: str, n: int = 1, timeout: float = 5.0) -> list[Received]:
        """The first ``n`` messages on ``topic``, waiting up to ``timeout`` s; AssertionError says what came."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages[topic]) >= n, timeout):
                got = {t: len(m) for t, m in self.messages.items()}
                raise AssertionError(f"expected {n} messages on {topic} within {timeout} s; got {got}")
            return list(self.messages[topic][:n])

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
