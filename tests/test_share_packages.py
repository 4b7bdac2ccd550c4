"""deploy/share_packages.py: the serve venv shares torch's files with .venv by hard links, not copies."""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURELIB = Path(sysconfig.get_paths()["purelib"]).resolve()
spec = importlib.util.spec_from_file_location("share_packages", ROOT / "deploy" / "share_packages.py")
assert spec and spec.loader
share_packages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(share_packages)


@pytest.fixture
def venv_dir() -> Iterator[Path]:
    """A scratch folder inside this venv: hard links need the same file system, which /tmp may not be."""
    with tempfile.TemporaryDirectory(dir=sys.prefix, prefix="share-test-") as folder:
        yield Path(folder)


def test_closure_follows_extras_to_the_cuda_libraries() -> None:
    """torch names its CUDA libraries through cuda-toolkit's extras; those must be shared too."""
    names = {d.metadata["Name"].lower() for d in share_packages.closure(["torch", "torchvision"])}
    assert {"torch", "torchvision", "numpy", "sympy"} <= names
    if any(r.startswith("cuda-toolkit[") for r in metadata.requires("torch") or []):
        assert {"cuda-toolkit", "nvidia-cufile"} <= names
    assert "pytest" not in names and "hypothesis" not in names


def test_packages_the_destination_has_are_left_to_pip(venv_dir: Path) -> None:
    """A fresh venv's own setuptools is older than torch asks for; its files must not be mixed with .venv's."""
    dest = venv_dir / "site-packages"
    share_packages.link_distribution(metadata.distribution("iniconfig"), PURELIB, dest)
    (dest / "iniconfig").rename(dest / "iniconfig-own")
    assert share_packages.main([str(dest), "iniconfig"]) == 0
    assert not (dest / "iniconfig").exists()


def test_link_distribution_hard_links_files_and_metadata(venv_dir: Path) -> None:
    src_root = PURELIB
    dist = metadata.distribution("iniconfig")
    shared = share_packages.link_distribution(dist, src_root, venv_dir)
    assert shared > 0
    linked = [p for p in venv_dir.rglob("*") if p.is_file()]
    assert any(p.parent.name.endswith(".dist-info") for p in linked)
    for path in linked:
        assert path.stat().st_ino == (src_root / path.relative_to(venv_dir)).stat().st_ino
    found = list(metadata.distributions(path=[str(venv_dir)]))
    assert [d.metadata["Name"] for d in found] == ["iniconfig"]
    assert share_packages.link_distribution(dist, src_root, venv_dir) == 0, "a second run links nothing twice"
