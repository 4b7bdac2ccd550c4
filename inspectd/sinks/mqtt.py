"""The MQTT sink: verdicts (spooled, in order, at least once), heatmaps, camera state, status and triggers.

The session is persistent (clean session off, stable client id) and triggers are subscribed with QoS 1, so a
trigger the PLC publishes while the connection is briefly down is queued by the broker and still delivered.
Retained trigger messages are ignored (a retained part id is from the past); the first per camera is logged.

Every verdict is appended to the on-disk :class:`Spool` first; a sender thread publishes spooled verdicts in
order with a bounded in-flight window and removes each only when the broker acknowledged it (QoS 0: once
written). While the broker is away verdicts wait in the spool; paho re-sends the in-flight ones on reconnect,
and new verdicts wait until those are acknowledged, so the order holds across outages. QoS 0 verdicts that
were in flight at a disconnect are sent again from the spool.

Duplicates: within one daemon run a verdict is published once; paho re-sends it (DUP flag) only when its
PUBACK was lost with the connection, the one case in which the broker may forward it twice. After a crash
or a stop with unacknowledged verdicts, the next start re-sends them. A receiver that must see one verdict
per part dedupes on (camera, seq, captured_at).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from inspectd.config import MqttConfig
from inspectd.errors import ConfigError
from inspectd.frame import Verdict
from inspectd.logs import get_logger
from inspectd.secrets import redact
from inspectd.sinks.spool import Spool

WINDOW = 64
_NO_SPOOL = -1
#: Verdicts held in memory while the spool cannot be written; beyond it the oldest is lost (and logged).
UNSPOOLED_MAX = 1000


def default_client_id() -> str:
    """``inspectd-<hostname>``: stable across restarts, so the broker sees the same client."""
    return f"inspectd-{socket.gethostname()}"


class MqttSink:
    """Publishes to ``<prefix>/...`` per the README's MQTT contract; never blocks on nor raises for the network."""

    def __init__(self, cfg: MqttConfig, cameras: list[str], on_trigger: Callable[[str, str], None]) -> None:
        self.cfg = cfg
        self.cameras = list(cameras)
        self.on_trigger = on_trigger
        self.prefix = cfg.prefix
        self.status_topic = f"{cfg.prefix}/status"
        self.log = get_logger("sink.mqtt", host=cfg.host, port=cfg.port)
        self.spool = Spool(cfg.spool_dir, cfg.spool_max_messages)
        self._cond = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._inflight: dict[int, tuple[int, int]] = {}
        self._draining = False
        self._rewind_to: int | None = None
        self._early_acks: set[int] = set()
        self._last_sent = 0
        self._states: dict[str, bytes] = {}
        self._retained_logged: set[str] = set()
        self._unspooled: deque[tuple[str, bytes]] = deque()
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None
        self._progress_at = time.monotonic()
        self._idle_since: float | None = None
        self._stall_logged = False
        self._counts = {
            "published": 0,
            "spooled": 0,
            "reconnects": 0,
            "heatmaps_dropped": 0,
            "spool_errors": 0,
        }
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cfg.client_id or default_client_id(), clean_session=False
        )
        client.max_inflight_messages_set(WINDOW * 2)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min(1.0, cfg.reconnect_max_s), cfg.reconnect_max_s)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.resolved_password())
        if cfg.tls.enabled:
            for key in ("ca_file", "cert_file", "key_file"):
                path = getattr(cfg.tls, key)
                if path is not None and not path.is_file():
                    raise ConfigError(
                        f"mqtt.tls.{key} {path} does not exist; fix the path or disable mqtt.tls"
                    )
            try:
                client.tls_set(
                    ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                    certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                    keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"mqtt.tls: cannot load the certificates ({exc}); check ca/cert/key files"
                ) from exc
            client.tls_insecure_set(cfg.tls.insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- public API -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (a broker that is down now is retried) and start the sender."""
        self.log.info("mqtt_starting", client_id=self.client._client_id.decode(), spooled=len(self.spool))
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    def delivering(self, now: float, stall_s: float) -> bool:
        """False when the sender is dead, or when verdicts have waited while the broker is connected and has
        nothing in flight, and none was handed over, for ``stall_s`` (as seen by the calls to this, once a tick):
        a fault of ours, which the watchdog restart clears (the spool keeps the verdicts). A broker that is away
        or slow to acknowledge is not counted."""
        with self._cond:
            waiting = len(self.spool) > 0 or bool(self._unspooled)
            idle = self._connected and not self._inflight and waiting
            if not idle:
                self._idle_since = None
            elif self._idle_since is None:
                self._idle_since = now
            since = now - max(self._idle_since or now, self._progress_at)
            stalled = idle and since > stall_s
            dead = self._sender is not None and not self._sender.is_alive() and not self._stop.is_set()
            if (stalled or dead) and not self._stall_logged:
                self.log.error(
                    "mqtt_sender_stalled", sender_alive=not dead, spooled=len(self.spool),
                    unspooled=len(self._unspooled), last_sent=self._last_sent, draining=self._draining,
                    since_s=round(since, 1),
                )  # fmt: skip
            self._stall_logged = stalled or dead
            return not (stalled or dead)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now."""
        return self._connected

    @property
    def spool_depth(self) -> int:
        """Verdicts on disk not yet acknowledged by the broker."""
        return len(self.spool)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: published, spooled, spool_full_dropped, reconnects, heatmaps_dropped, spool_errors."""
        return {**self._counts, "spool_full_dropped": self.spool.dropped}

    def publish_verdict(self, v: Verdict) -> None:
        """Spool a verdict for in-order delivery; returns at once whatever the broker's state."""
        topic = f"{self.prefix}/{v.camera}/verdict"
        payload = v.model_dump_json().encode("utf-8")
        try:
            self.spool.append(topic, payload)
        except OSError as exc:
            self._counts["spool_errors"] += 1
            self.log.error(
                "spool_write_failed", camera=v.camera, seq=v.seq, part_id=v.part_id, error=str(exc),
                hint=f"check free space and permissions of mqtt.spool_dir {self.spool.dir}; the verdict waits "
                f"in memory (at most {UNSPOOLED_MAX}) until the broker takes it, and is lost if inspectd stops",
            )  # fmt: skip
            with self._cond:
                if len(self._unspooled) == UNSPOOLED_MAX:
                    lost_topic, _ = self._unspooled.popleft()
                    self.log.error("verdict_lost", topic=lost_topic, hint="spool unwritable and broker away")
                self._unspooled.append((topic, payload))
                self._cond.notify_all()
            return
        with self._cond:
            self._counts["spooled"] += 1
            self._cond.notify_all()

    def publish_heatmap(self, camera: str, data: bytes) -> None:
        """Publish an encoded heatmap; dropped (and counted) while disconnected, never spooled."""
        if not self._connected:
            self._counts["heatmaps_dropped"] += 1
            return
        self._publish(f"{self.prefix}/{camera}/heatmap", data, self.cfg.heatmap_qos, False)

    def publish_state(self, camera: str, state: dict[str, Any]) -> None:
        """Publish a camera's state retained; the latest one is re-published after every reconnect."""
        payload = redact(json.dumps(state, default=str)).encode("utf-8")
        self._states[camera] = payload
        if self._connected:
            self._publish(f"{self.prefix}/{camera}/state", payload, 1, True)

    def stop(self, timeout: float) -> None:
        """Flush what the broker takes within ``timeout``, publish retained ``offline``, disconnect."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.wait_for(
                lambda: not self._connected or (len(self.spool) == 0 and not self._inflight),
                max(0.0, deadline - time.monotonic()),
            )
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._sender is not None:
            self._sender.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._connected:
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                self.log.warning("offline_status_not_sent", error=str(exc))
            self.client.disconnect()
        self.client.loop_stop()
        left = len(self.spool)
        self.spool.close()
        sender_stuck = self._sender is not None and self._sender.is_alive()  # still running after its join
        self.log.info(
            "mqtt_stopped", spool_left=left, inflight=len(self._inflight), last_sent=self._last_sent,
            sender_stuck=sender_stuck, **self.stats,
        )  # fmt: skip

    # -- internals --------------------------------------------------------------------------------------------

    def _publish(
        self, topic: str, payload: bytes | str, qos: int, retain: bool, spool_id: int = _NO_SPOOL
    ) -> bool:
        """Hand a message to paho and track its mid until on_publish; False when paho did not take it."""
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, OSError) as exc:
            self.log.error("mqtt_publish_failed", topic=topic, error=str(exc))
            return False
        if qos == 0 and info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        with self._cond:
            self._progress_at = time.monotonic()
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                self._acked(spool_id)
            else:
                self._inflight[info.mid] = (spool_id, qos)
        return True

    def _acked(self, spool_id: int) -> None:
        self._progress_at = time.monotonic()
        if spool_id != _NO_SPOOL:
            self.spool.ack(spool_id)
            self._counts["published"] += 1
        if self._draining and all(sid == _NO_SPOOL for sid, _ in self._inflight.values()):
            self._draining = False
        self._cond.notify_all()

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._send_some()
            except Exception as exc:  # the one thread that empties the spool must outlive any fault
                self.log.exception("mqtt_sender_failed", error=str(exc))
                self._stop.wait(1.0)

    def _send_unspooled(self) -> None:
        """Verdicts the spool could not take, handed to paho once connected."""
        while self._connected:
            with self._cond:
                if not self._unspooled:
                    return
                topic, payload = self._unspooled.popleft()
            if not self._publish(topic, payload, self.cfg.verdict_qos, False):
                with self._cond:
                    self._unspooled.appendleft((topic, payload))
                return

    def _send_some(self) -> None:
        """Wait until the broker can take more, then send the oldest spooled verdicts in order."""
        qos = self.cfg.verdict_qos
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._stop.is_set()
                    or (self._connected and bool(self._unspooled))
                    or (
                        self._connected
                        and not self._draining
                        and len(self._inflight) < WINDOW
                        and self.spool.has_after(self._last_sent)
                    )
                ),
                0.5,
            )
            if self._rewind_to is not None:
                self._last_sent = min(self._last_sent, self._rewind_to)
                self._rewind_to = None
            room = WINDOW - len(self._inflight)
            ready = self._connected and not self._draining and room > 0
        self._send_unspooled()
        if self._stop.is_set() or not ready:
            return
        for item in self.spool.peek(room, after=self._last_sent):
            if self._draining or not self._connected:
                break
            if not self._publish(item.topic, item.payload, qos, False, item.id):
                break
            self._last_sent = item.id

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self.log.error(
                "mqtt_connect_refused", reason=str(reason_code),
                hint="check mqtt.username / mqtt.password_file and the broker's ACL",
            )  # fmt: skip
            return
        with self._cond:
            if self._ever_connected:
                self._counts["reconnects"] += 1
            self._ever_connected = True
            self._connected = True
            self._progress_at = time.monotonic()
            self._cond.notify_all()
        self.log.info("mqtt_connected", spooled=len(self.spool), reconnects=self._counts["reconnects"])
        if self.cameras:
            client.subscribe([(f"{self.prefix}/{cam}/trigger", 1) for cam in self.cameras])
        self._publish(self.status_topic, "online", 1, True)
        for camera, payload in list(self._states.items()):
            self._publish(f"{self.prefix}/{camera}/state", payload, 1, True)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            lost = [mid for mid, (_, qos) in self._inflight.items() if qos == 0]
            lost_ids = [sid for sid, _ in (self._inflight.pop(mid) for mid in lost) if sid != _NO_SPOOL]
            if lost_ids:
                self._rewind_to = min(lost_ids) - 1
            self._draining = any(sid != _NO_SPOOL for sid, _ in self._inflight.values())
            self._cond.notify_all()
        if was:
            self.log.warning(
                "mqtt_disconnected",
                reason=str(reason_code),
                spooled=len(self.spool),
                inflight=len(self._inflight),
            )

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._cond:
            if mid in self._inflight:
                self._acked(self._inflight.pop(mid)[0])
            else:
                self._early_acks.add(mid)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        head, tail = f"{self.prefix}/", "/trigger"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return
        camera = topic[len(head) : -len(tail)]
        if camera not in self.cameras:
            self.log.warning("trigger_for_unknown_camera", topic=topic)
            return
        if msg.retain:
            if camera not in self._retained_logged:
                self._retained_logged.add(camera)
                self.log.warning(
                    "retained_trigger_ignored", camera=camera, topic=topic,
                    hint="a retained trigger names a part from the past; publish triggers with retain=false "
                    f"and clear it: mosquitto_pub -r -n -t {topic}",
                )  # fmt: skip
            return
        try:
            self.on_trigger(camera, msg.payload.decode("utf-8", errors="replace"))
        except Exception:
            self.log.exception("on_trigger_failed", camera=camera)
