"""A PLC-like MQTT subscriber: collects every message per topic with its arrival time, waits for counts.

The demo prints verdicts with it, the benchmark times them with it, and the tests check the contract with it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    """One message as the subscriber got it; ``arrived`` is wall-clock time (``time.time()``)."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    arrived: float


class Subscriber:
    """A real paho client on ``topics`` that resubscribes after reconnects and keeps what arrives.

    ``persistent=True`` keeps a broker-side session (clean_session False, fixed client id), so QoS 1 messages
    published while it is disconnected are queued for it. ``on_message`` is called for each message too
    (from paho's network thread). Raises TimeoutError when the broker does not confirm the subscription.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: list[str],
        *,
        persistent: bool = False,
        qos: int = 1,
        client_id: str | None = None,
        on_message: Callable[[Received], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.topics = list(topics)
        self.qos = qos
        self.messages: dict[str, list[Received]] = defaultdict(list)
        self.all: list[Received] = []
        self._callback = on_message
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"inspectd-sub-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.on_connect = lambda c, *a: c.subscribe([(t, qos) for t in self.topics])
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        if not subscribed.wait(timeout):
            self.close()
            raise TimeoutError(f"could not subscribe to {self.topics} on {host}:{port} within {timeout} s")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        rec = Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.time())
        with self._cond:
            self.messages[msg.topic].append(rec)
            self.all.append(rec)
            self._cond.notify_all()
        if self._callback is not None:
            self._callback(rec)

    def wait_for(self, topic: str, n: int = 1, timeout: float = 5.0) -> list[Received]:
        """The first ``n`` messages on ``topic``, waiting up to ``timeout`` s; TimeoutError says what came."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages[topic]) >= n, timeout):
                got = {t: len(m) for t, m in self.messages.items()}
                raise TimeoutError(f"expected {n} messages on {topic} within {timeout} s; got {got}")
            return list(self.messages[topic][:n])

    def wait_count(self, n: int, timeout: float) -> bool:
        """Whether ``n`` messages (on any topic) arrived within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.all) >= n, timeout)

    def count(self) -> int:
        """Messages received so far, on every topic."""
        with self._cond:
            return len(self.all)

    def reset(self) -> None:
        """Forget what came so far."""
        with self._cond:
            self.messages = defaultdict(list)
            self.all = []

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
