"""Session fixtures with tiny random-weight CLIPSeg, CLIP and SAM folders, written by the real init_random."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspectd.models.random_init import init_random


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding tiny random clipseg/, clip/ and sam/ (written once per session)."""
    models_dir = tmp_path_factory.mktemp("models")
    init_random(models_dir, "tiny", which=["clipseg", "clip", "sam"])
    return models_dir


@pytest.fixture(scope="session")
def models_dir(tiny_models_dir: Path, isnet_dir: Path) -> Path:
    """The tiny models dir with the real IS-Net linked in as isnet/: all four networks a Settings needs."""
    link = tiny_models_dir / "isnet"
    if not link.exists():
        link.symlink_to(isnet_dir, target_is_directory=True)
    return tiny_models_dir
