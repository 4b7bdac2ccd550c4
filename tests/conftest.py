"""Shared fixtures live in tests/plugins/, one module per area, registered here."""

import logging

import pytest
import structlog

pytest_plugins: list[str] = [
    "tests.plugins.broker",
    "tests.plugins.isnet",
    "tests.plugins.tiny_models",
    "tests.plugins.pipeline",
    "tests.plugins.console",
    "tests.plugins.triton",
]


@pytest.fixture(autouse=True)
def _restore_logging():
    """Tests that run the CLI in-process reconfigure logging; give the next test the configuration back."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _state_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test its own state directory (as systemd's StateDirectory), so persisted seq numbers never leak."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))
