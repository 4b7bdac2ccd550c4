"""Hard-link installed packages and everything they require from this venv into another venv's site-packages.

Run with the source venv's python: `.venv/bin/python deploy/share_packages.py DEST_SITE_PACKAGES torch torchvision`.
bootstrap.sh uses it so that `.venv-serve` shares the 5-6 GB of torch + CUDA wheels with `.venv` instead of holding a
second copy; written by hand because pip has no hard-link install mode. Each package's files are linked before
its `.dist-info`, so a package that fails half-way is invisible to pip, which then installs it normally. pip
uninstalls by unlinking, so either venv can later replace a shared package without touching the other's files.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a venv without packaging still has pip's copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name


def closure(names: list[str]) -> list[metadata.Distribution]:
    """The installed distributions named and, recursively, those they require on this machine, extras included.

    torch asks for its CUDA libraries through extras of cuda-toolkit, so markers are evaluated per extra asked for.
    """
    found: dict[str, metadata.Distribution] = {}
    extras_done: dict[str, set[str]] = {}
    todo: list[tuple[str, set[str]]] = [(name, set()) for name in names]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in extras_done and extras <= extras_done[key]:
            continue
        try:
            dist = found.get(key) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        extras_done.setdefault(key, set()).update(extras)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((req.name, set(req.extras)))
    return list(found.values())


def link_distribution(dist: metadata.Distribution, src_root: Path, dest_root: Path) -> int:
    """Link one distribution's files under src_root into dest_root; returns the bytes now shared."""
    files = [Path(dist.locate_file(f)).resolve() for f in dist.files or []]
    inside = [f for f in files if f.is_relative_to(src_root) and f.is_file()]
    meta = [f for f in inside if f.relative_to(src_root).parts[0].endswith(".dist-info")]
    shared = 0
    for src in [f for f in inside if f not in meta] + meta:
        dest = dest_root / src.relative_to(src_root)
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dest)
        shared += src.stat().st_size
    return shared


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    dest_root = Path(argv[0]).resolve()
    src_root = Path(sysconfig.get_paths()["purelib"]).resolve()
    present = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions(path=[str(dest_root)])}
    total = 0
    for dist in closure(argv[1:]):
        if canonicalize_name(dist.metadata["Name"]) in present:
            continue  # e.g. the venv's own setuptools: mixing two versions' files would break it; pip upgrades it
        try:
            total += link_distribution(dist, src_root, dest_root)
        except OSError as exc:
            print(
                f"share_packages: not sharing {dist.metadata['Name']} ({exc}); pip installs a copy",
                file=sys.stderr,
            )
            return 0
    print(
        f"==> shared {total / 2**30:.1f} GiB of {', '.join(argv[1:])} and their dependencies from {src_root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
