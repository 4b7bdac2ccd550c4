"""The Triton client and server helpers that need no running server (see test_triton.py for those that do)."""

from __future__ import annotations

import sysconfig
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspectd.bench.broker import free_port
from inspectd.bench.scaleout import daemon_config
from inspectd.config import load_settings
from inspectd.errors import InferenceUnavailable
from inspectd.models.store import ModelStore
from inspectd.service.scheduler import failure_reason
from inspectd.serving.client import TritonConnection, TritonStore, make_store
from inspectd.serving.server import remove_triton_leftovers, use_own_libpython


@given(st.lists(st.sampled_from(["/opt/a", "/usr/lib", "", sysconfig.get_config_var("LIBDIR")]), max_size=5))
def test_own_libpython_comes_first_once_and_keeps_the_rest(parts):
    env = {"LD_LIBRARY_PATH": ":".join(parts)} if parts else {}
    use_own_libpython(env)
    got = env["LD_LIBRARY_PATH"].split(":")
    libdir = sysconfig.get_config_var("LIBDIR")
    assert got[0] == libdir and got.count(libdir) == 1
    assert [p for p in got[1:]] == [p for p in parts if p and p != libdir]


def test_backend_picks_the_store(tmp_path):
    local = load_settings(None, models={"dir": str(tmp_path), "device": "cpu"})
    remote = load_settings(None, models={"dir": str(tmp_path), "device": "cpu", "backend": "triton"})
    assert type(make_store(local.models, local.pipeline)) is ModelStore
    store = make_store(remote.models, remote.pipeline)
    assert isinstance(store, TritonStore) and store.describe() == {}


def test_unreachable_server_gives_inference_unavailable_after_the_deadline_then_at_once():
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    conn = TritonConnection(url, timeout_s=1.0, deadline_s=1.0)
    seen: list[str] = []
    conn.listeners.append(seen.append)
    started = time.monotonic()
    with pytest.raises(InferenceUnavailable, match=r"models\.triton_deadline_s=1 ") as first:
        conn.info()
    assert time.monotonic() - started >= 1.0, "it retried until the deadline"
    assert url in str(first.value)
    assert seen == ["reconnecting", "unavailable"] and conn.state == "unavailable"
    with pytest.raises(InferenceUnavailable, match=r"\(1 attempts"):
        conn.info()
    assert failure_reason(first.value) == "inference_unavailable"
    assert failure_reason(RuntimeError("x")) == "internal"


def test_scaleout_daemon_config_is_a_valid_settings_file(tmp_path):
    class Broker:
        host, port = "127.0.0.1", 1883

    text = daemon_config(
        {"dir": str(tmp_path), "backend": "triton", "triton_url": "127.0.0.1:8001"},
        Broker(),
        tmp_path,
        0,
        {"d0c0": 5555, "d0c1": 5556},
    )
    path = Path(tmp_path / "d.toml")
    path.write_text(text)
    tomllib.loads(text)
    settings = load_settings(path)
    assert settings.models.backend == "triton"
    assert sorted(settings.cameras) == ["d0c0", "d0c1"]
    assert settings.cameras["d0c1"].source.uri == "tcp://127.0.0.1:5556"


def _model_copy(folder: Path, workspace: Path) -> Path:
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text("# PyTriton's proxy model")
    (folder / "config.pbtxt").write_text(
        'name: "backbone"\nparameters {\n  key: "workspace-path"\n  value {\n'
        f'    string_value: "{workspace}"\n  }}\n}}\nbackend: "python"\n'
    )
    return folder


def test_leftovers_of_a_gone_server_are_removed_and_nothing_else(tmp_path):
    # A killed server leaves its /tmp/folderXXXXXX model copies and its PyTriton workspace behind.
    import socket

    home = tmp_path / "pt"  # short: a unix socket's path must fit in 108 bytes
    missing = _model_copy(tmp_path / "folderAb12Cd", home / "workspace_gone")
    dead_ws = home / "workspace_dead"
    dead_ws.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(dead_ws / "b.sock"))
    dead.close()  # the socket file stays, nobody listens: a killed server
    dead_copy = _model_copy(tmp_path / "folderEf34Gh", dead_ws)
    live_ws = home / "workspace_live"
    live_ws.mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(live_ws / "b.sock"))
    listener.listen()
    live_copy = _model_copy(tmp_path / "folderIj56Kl", live_ws)
    orphan = home / "workspace_orphan"  # a dead server's workspace whose copies are already gone
    orphan.mkdir()
    (tmp_path / "folderNotOurs").mkdir()
    (tmp_path / "folderNotOurs" / "config.pbtxt").write_text('name: "someone else"\n')
    (tmp_path / "folder_plain_file").write_text("not a folder")
    try:
        # just written: a silent workspace may belong to a server still starting, so only the orphaned copy goes
        assert remove_triton_leftovers(home, tmp_path) == [missing]
        later = time.time() + 3600
        assert remove_triton_leftovers(home, tmp_path, now=later) == [dead_copy, dead_ws, orphan]
        assert live_copy.exists() and live_ws.exists() and (tmp_path / "folderNotOurs").exists()
        assert remove_triton_leftovers(home, tmp_path, now=later) == []
    finally:
        listener.close()
