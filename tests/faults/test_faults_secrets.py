"""A known secret in every place one can be configured never shows up in any output channel.

Places: mqtt.password (file), INSPECTD_MQTT__PASSWORD, mqtt.password_file, an RTSP camera URI, a GStreamer
pipeline's user-pw, console.password_file. Channels: `check-config` (valid and invalid configs), `run`'s log,
every MQTT topic (including the retained state), the metrics endpoint, the operator console's page and API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from inspectd.bench.broker import free_port
from inspectd.bench.subscriber import Subscriber
from tests.test_daemon_process import Daemon

pytestmark = pytest.mark.slow

SECRETS = {
    "toml": "Toml-s3cret-1",
    "env": "Env-s3cret-2",
    "file": "File-s3cret-3",
    "rtsp": "Rtsp-s3cret-4",
    "gst": "Gst-s3cret-5",
    "console": "Console-s3cret-6",
}


def secret_config(
    tmp_path, models_dir, broker, metrics_port: int, extra: str = "", console_port: int = 0
) -> str:
    pw = tmp_path / "mqtt-password"
    pw.write_text(SECRETS["file"] + "\n")
    pw.chmod(0o600)
    console_pw = tmp_path / "console-password"
    console_pw.write_text(f"operator:{SECRETS['console']}\n")
    console_pw.chmod(0o600)
    return f"""
[models]
dir = "{models_dir}"
cache_dir = "{tmp_path / "cache"}"
device = "cpu"
warmup = false
sam_points_per_side = 4

[mqtt]
host = "{broker.host}"
port = {broker.port}
prefix = "s"
username = "inspectd"
password = "{SECRETS["toml"]}"
password_file = "{pw}"
spool_dir = "{tmp_path / "spool"}"

[metrics]
enabled = true
host = "127.0.0.1"
port = {metrics_port}

[console]
enabled = true
port = {console_port}
password_file = "{console_pw}"
dir = "{tmp_path / "console"}"

[cameras.door]
foreground = "full"
[cameras.door.source]
kind = "opencv"
uri = "rtsp://admin:{SECRETS["rtsp"]}@127.0.0.1:1/stream1"
stall_s = 1
reconnect_max_s = 0.5
open_timeout_s = 1

[cameras.gate]
foreground = "full"
[cameras.gate.source]
kind = "opencv"
uri = "rtspsrc location=rtsp://127.0.0.1:1/s user-id=admin user-pw={SECRETS["gst"]} ! decodebin ! appsink"
reconnect_max_s = 0.5
open_timeout_s = 1
{extra}
"""


def found_secrets(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_no_secret_in_any_output_channel(models_dir, mosquitto, tmp_path):
    env = {**os.environ, "INSPECTD_MQTT__PASSWORD": SECRETS["env"]}
    metrics_port, console_port = free_port(), free_port()
    config = tmp_path / "inspectd.toml"
    config.write_text(secret_config(tmp_path, models_dir, mosquitto, metrics_port, console_port=console_port))
    leaks: dict[str, list[str]] = {}

    ok = cli("check-config", str(config), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "rtsp://admin:***@127.0.0.1:1/stream1" in ok.stdout and "user-pw=***" in ok.stdout
    leaks["check-config"] = found_secrets(ok.stdout + ok.stderr)

    bad = tmp_path / "bad.toml"
    bad.write_text(secret_config(tmp_path, models_dir, mosquitto, metrics_port, "objekt = 1\n"))
    broken = cli("check-config", str(bad), env=env)
    assert broken.returncode == 78 and "objekt" in broken.stderr
    leaks["check-config, unknown key"] = found_secrets(broken.stdout + broken.stderr)

    named = tmp_path / "named.toml"
    named.write_text(
        secret_config(tmp_path, models_dir, mosquitto, metrics_port).replace(
            "cameras.gate", "cameras.'ga te'"
        )
    )
    broken = cli("check-config", str(named), env=env)
    assert broken.returncode == 78
    leaks["check-config, model-level error"] = found_secrets(broken.stdout + broken.stderr)

    numeric = tmp_path / "numeric.toml"
    numeric.write_text(
        f"[mqtt]\npassword = 987654321\n[cameras.c.source]\nuri = 'rtsp://u:{SECRETS['rtsp']}@h/'\nstall_s = -1\n"
    )
    broken = cli("check-config", str(numeric), env={**os.environ})
    assert broken.returncode == 78
    leaks["check-config, numeric password"] = found_secrets(broken.stdout + broken.stderr)
    assert "987654321" not in broken.stdout + broken.stderr

    sub = Subscriber(mosquitto.host, mosquitto.port, ["#"])
    daemon = Daemon(config, tmp_path, env=env)
    try:
        daemon.wait_note("READY=1", timeout=120)
        time.sleep(4.0)  # both cameras fail, reconnect, publish their state
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
            leaks["metrics"] = found_secrets(resp.read().decode())
        console_text = []
        for path in ("/", "/api/overview", "/api/models", "/api/fails", "/openapi.json"):
            with urllib.request.urlopen(f"http://127.0.0.1:{console_port}{path}", timeout=10) as resp:
                console_text.append(resp.read().decode(errors="replace"))
        leaks["console"] = found_secrets("\n".join(console_text))
        daemon.proc.terminate()
        daemon.proc.wait(60)
    finally:
        daemon.close()
    time.sleep(0.5)
    sub.close()
    out = "".join(daemon.log)
    leaks["run log"] = found_secrets(out)
    mqtt_text = "\n".join(f"{m.topic} {m.payload.decode(errors='replace')}" for m in sub.all)
    leaks["mqtt"] = found_secrets(mqtt_text)
    assert "s/door/state" in mqtt_text and "rtsp://admin:***@" in mqtt_text
    assert '"reconnecting"' in mqtt_text or "reconnecting" in out
    total = sum(len(v) for v in leaks.values())
    print("FAULT secrets", {"places": len(SECRETS), "channels": len(leaks), "found": total, "leaks": leaks})
    assert total == 0, leaks
