"""A bank folder's own copy of its good images (``<bank>/images/``, lossless PNG): what every rebuild starts from.

`inspectd reference add` replaces the copy with the images it was given; the console adds to it. Because both
keep the images there, a part added from the console extends the bank the command built instead of replacing
it, and a bank whose references are not all in the copy (built by an earlier release) is never rebuilt from
the copy alone, which would drop them silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inspectd.atomicfile import write_atomic
from inspectd.imaging.codec import encode_image, read_image
from inspectd.pipeline.reference import BANK_FILE, MemoryBank, image_digest

IMAGES = "images"


def store_images(folder: Path, parts: Sequence[tuple[str, np.ndarray]], replace: bool = False) -> None:
    """Keep each (name, RGB frame as the camera delivered it) under ``folder/images``; ``replace`` first removes
    what was there (the bank is being rebuilt from ``parts`` alone)."""
    images = Path(folder) / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    if replace:
        for old in images.glob("*.png"):
            old.unlink()
    for name, image in parts:
        write_atomic(images / image_file(name), encode_image(image, "png"))


def image_file(name: str) -> str:
    """The file a part named ``name`` is kept in under ``folder/images``."""
    return f"{name}.png"


def stored_images(folder: Path, max_pixels: int) -> tuple[list[np.ndarray], list[str]]:
    """The images kept under ``folder/images`` and their file names, in name order."""
    files = sorted((Path(folder) / IMAGES).glob("*.png"))
    return [read_image(path, max_pixels) for path in files], [p.name for p in files]


def references_outside(folder: Path, images: Sequence[np.ndarray]) -> int:
    """How many of the current bank's references are not among ``images``: what a rebuild from them would drop.
    Banks without per-image digests are judged by their image count."""
    if not (Path(folder) / BANK_FILE).is_file():
        return 0
    meta = MemoryBank.read_meta(folder)
    if "image_digests" in meta:
        return len(set(meta["image_digests"]) - {image_digest(i) for i in images})
    return max(0, int(meta.get("images", 0)) - len(images))
