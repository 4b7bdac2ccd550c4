"""The settings tree: validation errors name the key and the file; environment overrides; check-config."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    s = load_settings(write(tmp_path, "[cameras.a.source]\nuri = '0'\n[cameras.b.source]\nuri = '1'\n"))
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
    secret.chmod(0o600)
    s = load_settings(write(tmp_path, f"[mqtt]\npassword_file = '{secret}'\n"))
    assert s.mqtt.resolved_password() == "hunter2"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[cameras.cam]\nimage_threshold = 0.5\n", "cameras.cam.source.uri is empty"),
        ("[cameras.cam.source]\nkind = 'zmq'\nuri = ''\n", "cameras.cam.source.uri is empty"),
        ("[cameras.cam.source]\nkind = 'zmq'\nuri = 'localhost:5555'\n", "not a ZeroMQ endpoint"),
        ('[cameras."line1.left"]\nimage_threshold = 0.5\n', 'set [cameras."line1.left".source] kind and uri'),
        ("[mqtt]\npassword_file = '/nonexistent/pw'\n", "mqtt.password_file: /nonexistent/pw does not exist"),
        ("[mqtt.tls]\nenabled = true\nca_file = '/nonexistent/ca.crt'\n", "mqtt.tls.ca_file"),
    ],
)
def test_configs_that_cannot_work_are_refused_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_settings(write(tmp_path, text)).check_runnable()


def test_run_and_check_config_refuse_a_camera_without_source_with_exit_78(tmp_path):
    path = write(tmp_path, "[cameras.cam]\nimage_threshold = 0.5\n")
    for args in (("check-config", str(path)), ("run", "--config", str(path))):
        proc = run_cli(*args)
        assert proc.returncode == 78 and "cameras.cam.source.uri is empty" in proc.stderr, proc.stderr


def test_secret_files_readable_by_everyone_are_refused(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by every user") as info:
        load_settings(write(tmp_path, f"[mqtt]\npassword_file = '{secret}'\n"))
    assert "hunter2" not in str(info.value)
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.key_file"):
        load_settings(write(tmp_path, f"[mqtt.tls]\nenabled = true\nkey_file = '{key}'\n"))


def test_errors_never_echo_secrets_or_whole_sections(tmp_path):
    path = write(
        tmp_path,
        "[mqtt]\npassword = 987654321\n[cameras.'a b'.source]\nuri = 'rtsp://u:Pw-9x@h/s'\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert "mqtt.password" in text and "987654321" not in text and "Pw-9x" not in text


def test_camera_uri_credentials_are_masked_in_effective_settings(tmp_path):
    s = load_settings(write(tmp_path, "[cameras.c.source]\nuri = 'rtsp://admin:Pw-9x@cam/s'\n"))
    text = settings_to_toml(s)
    assert "Pw-9x" not in text and "rtsp://admin:***@cam/s" in text
    assert s.cameras["c"].source.uri == "rtsp://admin:Pw-9x@cam/s", "the source itself gets the real URI"


def test_example_config_in_deploy_is_valid():
    s = load_settings(Path(__file__).parents[1] / "deploy" / "inspectd.toml")
    assert "line1" in s.cameras


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", *args], capture_output=True, text=True, timeout=120
    )


def test_check_config_prints_effective_settings(tmp_path):
    path = write(tmp_path, "[cameras.line1]\nimage_threshold = 0.42\n[cameras.line1.source]\nuri = '0'\n")
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


def _undescribed(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    missing = []
    for name, field in model.model_fields.items():
        if not field.description:
            missing.append(prefix + name)
        ann = field.annotation
        for cand in (*getattr(ann, "__args__", ()), ann):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                missing += _undescribed(cand, f"{prefix}{name}.")
    return missing


def test_every_config_key_is_described():
    from inspectd.config import Settings

    assert _undescribed(Settings) == []


def test_config_schema_checks_the_example_and_refuses_unknown_keys():
    import json
    import tomllib

    import jsonschema

    proc = run_cli("schema", "config")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    mqtt = schema["$defs"]["MqttConfig"]
    assert mqtt["description"] and mqtt["properties"]["host"]["description"]
    example = tomllib.loads((Path(__file__).parents[1] / "deploy" / "inspectd.toml").read_text())
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError, match="hots"):
        jsonschema.validate({"mqtt": {"hots": "broker"}}, schema)


def test_camera_reference_scale_overrides_the_pipeline_one() -> None:
    from inspectd.config import Settings

    s = Settings(cameras={"a": {}, "b": {"reference_scale": 2.0}}, pipeline={"reference": {"tile": 256}})
    assert s.cameras["a"].reference(s.pipeline) == s.pipeline.reference
    b = s.cameras["b"].reference(s.pipeline)
    assert (b.scale, b.tile) == (2.0, 256) and s.pipeline.reference.scale == 1.0


_SECRET = "Pw-7q2Zx!9"
_VALUES = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(-5, 5000), max_size=5),
)
_SECTIONS = {
    "models": ["dir", "device", "half", "sam_points_per_side", "reference_stages", "backend", "typo"],
    "pipeline": [
        "foreground_threshold",
        "fill_outline",
        "max_components",
        "anomaly_prompts",
        "reference_coreset",
    ],
    "mqtt": ["host", "port", "prefix", "keepalive", "password", "username", "verdict_qos", "tls", "passwrd"],
    "scheduler": ["max_batch_tiles", "max_wait_ms", "cpu_workers", "drain_timeout_s"],
    "console": ["enabled", "host", "port", "history"],
}
_CAMERA_KEYS = [
    "mode",
    "image_threshold",
    "pixel_threshold",
    "roi",
    "foreground",
    "min_defect_area",
    "colour",
]


@st.composite
def _documents(draw: st.DrawFn) -> dict:
    doc: dict = {}
    for section in draw(st.lists(st.sampled_from(sorted(_SECTIONS)), unique=True, max_size=3)):
        keys = draw(st.lists(st.sampled_from(_SECTIONS[section]), unique=True, min_size=1, max_size=3))
        doc[section] = {k: draw(st.just(_SECRET) if k == "password" else _VALUES) for k in keys}
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(_CAMERA_KEYS), unique=True, max_size=3))
        camera = {k: draw(_VALUES) for k in keys}
        camera["source"] = {
            "kind": draw(st.sampled_from(["opencv", "zmq", "folder", "ftp"])),
            "uri": draw(_VALUES),
        }
        doc["cameras"] = {draw(st.sampled_from(["line1", "a/b", "cam 2"])): camera}
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_documents())
def test_any_config_file_loads_or_is_refused_with_a_config_error_that_hides_the_password(
    tmp_path, doc
) -> None:
    path = tmp_path / "inspectd.toml"
    path.write_text(tomlkit.dumps(doc))
    try:
        loaded = load_settings(path)
        loaded.check_runnable()
    except ConfigError as exc:
        assert _SECRET not in str(exc)
        assert str(exc).strip()
    else:
        assert _SECRET not in settings_to_toml(loaded)
