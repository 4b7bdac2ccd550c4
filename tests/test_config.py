"""The settings tree: validation errors name the key and the file; environment overrides; check-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inspectd.config import load_settings, settings_to_toml
from inspectd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inspectd.toml"
    path.write_text(text)
    return path


def test_defaults_validate_without_a_file():
    s = load_settings()
    assert s.mqtt.prefix == "inspectd"
    assert s.scheduler.max_batch_tiles >= 1
    assert len(s.pipeline.anomaly_prompts) >= 2


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "[mqtt]\nhots = 'broker'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "mqtt.hots" in str(err.value)
    assert str(path) in str(err.value)
    assert "unknown key" in str(err.value)


def test_unknown_camera_key_names_the_camera(tmp_path):
    path = write(tmp_path, "[cameras.line1]\nimage_treshold = 0.4\n")
    with pytest.raises(ConfigError, match=r"cameras\.line1\.image_treshold"):
        load_settings(path)


def test_out_of_range_value_is_explained(tmp_path):
    path = write(tmp_path, "[cameras.line1]\nimage_threshold = 1.5\n")
    with pytest.raises(ConfigError, match=r"cameras\.line1\.image_threshold.*less than or equal to 1"):
        load_settings(path)


def test_toml_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path, "[mqtt\nhost='x'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_environment_overrides_file(tmp_path, monkeypatch):
    path = write(tmp_path, "[mqtt]\nhost = 'from-file'\nport = 1884\n")
    monkeypatch.setenv("INSPECTD_MQTT__HOST", "from-env")
    s = load_settings(path)
    assert s.mqtt.host == "from-env"
    assert s.mqtt.port == 1884


def test_camera_names_must_be_topic_safe(tmp_path):
    path = write(tmp_path, '[cameras."line/1"]\n')
    with pytest.raises(ConfigError, match="camera name"):
        load_settings(path)


def test_camera_lookup_lists_known_cameras(tmp_path):
    s = load_settings(write(tmp_path, "[cameras.a]\n[cameras.b]\n"))
    with pytest.raises(ConfigError, match="cameras: a, b"):
        s.camera("c")


def test_password_is_masked_in_effective_settings(tmp_path):
    s = load_settings(write(tmp_path, "[mqtt]\npassword = 's3cret'\n"))
    text = settings_to_toml(s)
    assert "s3cret" not in text
    assert 'password = "***"' in text


def test_password_file_is_read(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    s = load_settings(write(tmp_path, f"[mqtt]\npassword_file = '{secret}'\n"))
    assert s.mqtt.resolved_password() == "hunter2"


def test_example_config_in_deploy_is_valid():
    s = load_settings(Path(__file__).parents[1] / "deploy" / "inspectd.toml")
    assert "line1" in s.cameras


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", *args], capture_output=True, text=True, timeout=120
    )


def test_check_config_prints_effective_settings(tmp_path):
    path = write(tmp_path, "[cameras.line1]\nimage_threshold = 0.42\n")
    proc = run_cli("check-config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "valid (1 camera(s))" in proc.stdout
    assert "image_threshold = 0.42" in proc.stdout
    assert "max_batch_tiles" in proc.stdout


def test_check_config_invalid_exits_78_naming_the_key(tmp_path):
    path = write(tmp_path, "[scheduler]\nmax_batch_tile = 3\n")
    proc = run_cli("check-config", str(path))
    assert proc.returncode == 78
    assert "scheduler.max_batch_tile" in proc.stderr
    assert str(path) in proc.stderr


def test_camera_reference_scale_overrides_the_pipeline_one() -> None:
    from inspectd.config import Settings

    s = Settings(cameras={"a": {}, "b": {"reference_scale": 2.0}}, pipeline={"reference": {"tile": 256}})
    assert s.cameras["a"].reference(s.pipeline) == s.pipeline.reference
    b = s.cameras["b"].reference(s.pipeline)
    assert (b.scale, b.tile) == (2.0, 256) and s.pipeline.reference.scale == 1.0
