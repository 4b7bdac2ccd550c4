"""A real daemon with the console on: config written to a TOML file (so reloads read it), ZeroMQ cameras,
Mosquitto, tiny models; plus JSON-log capture and a headless Chromium for the browser tests."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import tomlkit
import zmq

from inspectd.bench.broker import free_port
from inspectd.config import load_settings
from inspectd.logs import configure_logging
from inspectd.service.daemon import Daemon
from tests.plugins.parts import png

PREFIX = "t"
PASSWORD = "s3cret-line"
OPERATOR = "anna"


class Camera:
    """A camera process pushing PNG frames with part ids to the daemon's bound PULL socket."""

    def __init__(self, port: int) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def send(self, part_id: str, seed: int, defect: str | None = None) -> None:
        header = {"part_id": part_id, "encoding": "png"}
        self.sock.send_multipart([json.dumps(header).encode(), png(seed, defect)])

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def write_config(
    path: Path, models_dir: Path, broker, cameras: list[str], console: dict[str, Any], **camera_extra: Any
) -> tuple[Path, dict[str, int]]:
    """A complete config file for a console test; returns it and each camera's ZeroMQ port."""
    ports = {name: free_port() for name in cameras}
    work = path.parent
    data = {
        "models": {
            "dir": str(models_dir),
            "cache_dir": str(work / "cache"),
            "device": "cpu",
            "warmup": False,
            "sam_points_per_side": 4,
        },
        "metrics": {"enabled": False},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "prefix": PREFIX,
            "spool_dir": str(work / "spool"),
            "reconnect_max_s": 1.0,
        },
        "console": {"enabled": True, "host": "127.0.0.1", "port": 0, "dir": str(work / "console"), **console},
        "cameras": {
            name: {
                "foreground": "full",
                "image_threshold": 1.0,
                "pixel_threshold": 1.0,
                **camera_extra,
                "source": {
                    "kind": "zmq",
                    "uri": f"tcp://127.0.0.1:{ports[name]}",
                    "zmq_socket": "pull",
                    "zmq_bind": True,
                    "live": False,
                },
            }
            for name in cameras
        },
    }
    doc = tomlkit.document()
    doc.add(tomlkit.comment("console test config: comments must survive a change from the console"))
    doc.update(data)
    path.write_text(tomlkit.dumps(doc))
    return path, ports


def password_file(folder: Path) -> Path:
    path = folder / "console.passwd"
    path.write_text(f"# operators of the console\n{OPERATOR}:{PASSWORD}\n")
    path.chmod(0o600)
    return path


class LogLines:
    """The daemon's JSON log lines, captured in memory."""

    def __init__(self) -> None:
        self.buf = io.StringIO()
        configure_logging("info", "json", stream=self.buf)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.buf.getvalue().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("event") == name:
                    out.append(rec)
        return out


@pytest.fixture
def logs() -> LogLines:
    return LogLines()


@pytest.fixture
def console_line(models_dir, store, mosquitto, tmp_path):
    """Factory: ``make(cameras, console={...}, **camera_extra)`` -> (daemon, config path, ports); not started."""

    def make(cameras: list[str], console: dict[str, Any] | None = None, **camera_extra: Any):
        path, ports = write_config(
            tmp_path / "inspectd.toml", models_dir, mosquitto, cameras, console or {}, **camera_extra
        )
        return Daemon(load_settings(path), config_path=path, store=store), path, ports

    return make


def chromium_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver; a clear failure (never a skip) when deploy/test.sh was not run."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            "chromium and chromium-driver are not installed: apt-get install -y chromium chromium-driver"
        )
    return browser, driver


@pytest.fixture
def browser():
    """A real headless Chromium driven by Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
