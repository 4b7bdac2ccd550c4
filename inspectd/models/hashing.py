"""sha256 helpers shared by all model code: chunked file hashes, a size+mtime sidecar cache, folder digests.

Weight files are hundreds of MB, so `inspectd models list` and model ids reuse a hash cached next to the
file (``.<name>.sha256``) for as long as the file's size and mtime are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from inspectd.atomicfile import write_atomic
from inspectd.logs import get_logger

log = get_logger("models.hashing")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large weights never sit in memory twice."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def short_hash(hex_digest: str) -> str:
    """The 12-character prefix used in model ids (``isnet@<short>``)."""
    return hex_digest[:12]


def sidecar_path(path: Path) -> Path:
    """Where the cached hash of ``path`` lives: a hidden ``.<name>.sha256`` next to it."""
    path = Path(path)
    return path.with_name(f".{path.name}.sha256")


def cached_sha256(path: Path) -> str:
    """sha256 of a file, reusing the sidecar when size and mtime still match; refreshes a stale one."""
    path = Path(path)
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar = sidecar_path(path)
    try:
        cached = json.loads(sidecar.read_text())
        if {k: cached.get(k) for k in key} == key and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.debug("hash_cache_unreadable", path=str(sidecar), error=str(exc))
    digest = sha256_file(path)
    try:
        write_atomic(sidecar, json.dumps({**key, "sha256": digest}))
    except OSError as exc:
        log.debug("hash_cache_not_written", path=str(sidecar), reason=exc.strerror)
    return digest


def manifest_files(folder: Path) -> list[Path]:
    """The files that make up a model folder, sorted; hidden files and folders (caches, sidecars) excluded."""
    folder = Path(folder)
    files = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            files.append(p)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def folder_digest(folder: Path) -> str:
    """sha256 of a sorted manifest (``relative/path<TAB>size<TAB>sha256`` lines) of a folder's files."""
    folder = Path(folder)
    lines = [
        f"{p.relative_to(folder).as_posix()}\t{p.stat().st_size}\t{cached_sha256(p)}\n"
        for p in manifest_files(folder)
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()
