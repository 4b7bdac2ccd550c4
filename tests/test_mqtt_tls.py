"""The MQTT sink against a real Mosquitto with TLS and a password file, as a hardened line broker runs."""

from __future__ import annotations

import getpass
import ssl
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from inspectd.bench.broker import broker_reachable, find_mosquitto, free_port
from inspectd.config import load_settings
from inspectd.frame import Verdict
from inspectd.sinks.mqtt import MqttSink


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_broker(tmp_path: Path):
    """Mosquitto on a TLS listener that requires a user name and password."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=tmp_path,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=tmp_path,
    )
    (tmp_path / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
        cwd=tmp_path,
    )
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), "line", "s3cret-pw"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
        f"cafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\nkeyfile {tmp_path / 'server.key'}\n"
        f"user {getpass.getuser()}\npersistence false\n"
    )
    proc = subprocess.Popen(
        [find_mosquitto(), "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while not broker_reachable("127.0.0.1", port, 0.2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.05)
    yield port, tmp_path
    proc.terminate()
    proc.wait(5)


def subscriber(port: int, ca: Path, got: list, topic: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plc")
    client.username_pw_set("line", "s3cret-pw")
    client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, msg: got.append(msg)
    client.connect("localhost", port)
    client.loop_start()
    return client


def test_verdicts_flow_over_tls_with_password_file(tls_broker, tmp_path):
    port, certs = tls_broker
    (tmp_path / "pw").write_text("s3cret-pw\n")
    (tmp_path / "pw").chmod(0o600)
    settings = load_settings(
        None,
        mqtt={
            "host": "localhost",
            "port": port,
            "username": "line",
            "password_file": str(tmp_path / "pw"),
            "tls": {"enabled": True, "ca_file": str(certs / "ca.crt")},
            "prefix": "sec",
            "spool_dir": str(tmp_path / "spool"),
        },
    )
    got: list = []
    sub = subscriber(port, certs / "ca.crt", got, "sec/#")
    sink = MqttSink(settings.mqtt, ["cam"], on_trigger=lambda cam, payload: None)
    sink.start()
    verdict = Verdict(camera="cam", seq=1, captured_at=datetime.now(UTC), verdict="pass", score=0.1)
    sink.publish_verdict(verdict)
    deadline = time.monotonic() + 15
    while not any(m.topic == "sec/cam/verdict" for m in got) and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.stop(timeout=5)
    sub.loop_stop()
    assert any(m.topic == "sec/cam/verdict" for m in got), [m.topic for m in got]
    assert sink.stats["published"] >= 1


def test_wrong_password_keeps_verdicts_in_the_spool(tls_broker, tmp_path):
    port, certs = tls_broker
    settings = load_settings(
        None,
        mqtt={
            "host": "localhost",
            "port": port,
            "username": "line",
            "password": "wrong",
            "tls": {"enabled": True, "ca_file": str(certs / "ca.crt")},
            "spool_dir": str(tmp_path / "spool"),
            "reconnect_max_s": 1.0,
        },
    )
    sink = MqttSink(settings.mqtt, ["cam"], on_trigger=lambda cam, payload: None)
    sink.start()
    sink.publish_verdict(Verdict(camera="cam", seq=1, captured_at=datetime.now(UTC), verdict="pass"))
    time.sleep(2.0)
    assert not sink.connected
    assert sink.spool_depth == 1, "nothing is lost while the broker refuses us"
    sink.stop(timeout=1)
