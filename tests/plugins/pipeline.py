"""Fixtures for the whole pipeline: settings on the tiny models + real IS-Net, and a shared inspector."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspectd.config import Settings, load_settings
from inspectd.models.store import ModelStore
from inspectd.pipeline.inspector import Inspector


def tiny_settings(models_dir: Path, cache_dir: Path, **overrides) -> Settings:
    """Settings that run the real pipeline on the tiny random models, with no network or GPU."""
    data = {
        "models": {
            "dir": str(models_dir),
            "cache_dir": str(cache_dir),
            "device": "cpu",
            "warmup": False,
            "sam_points_per_side": 4,
        },
        "metrics": {"enabled": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return load_settings(None, **data)


@pytest.fixture(scope="session")
def pipeline_settings(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Default settings on the tiny models."""
    return tiny_settings(models_dir, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def store(pipeline_settings: Settings) -> ModelStore:
    """One model store for the session: models load once, as in the daemon."""
    return ModelStore(pipeline_settings.models, pipeline_settings.pipeline)


@pytest.fixture(scope="session")
def inspector(pipeline_settings: Settings, store: ModelStore) -> Inspector:
    """An inspector on the session's store."""
    return Inspector(pipeline_settings, store)
