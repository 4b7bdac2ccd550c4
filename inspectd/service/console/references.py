"""Good parts picked in the console become (more of) a camera's reference bank.

The console keeps the images it added in ``<bank>/images/`` and rebuilds the bank from all of them through the
inspector's own builder (the camera's ROI, foreground and tiling, exactly as its frames are seen), so "add"
extends what the console added before. Frames come from the console's ring as the camera delivered them (the
lossless full-size copy it keeps of the newest passed parts, ``console.reference_frames``), never from the
scaled-down JPEGs it shows: a bank of blurred frames fails every sharp good part once its scale is set on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspectd.atomicfile import write_atomic
from inspectd.imaging.codec import encode_image, read_image

IMAGES = "images"

#: (camera, good images, their names) -> a MemoryBank, i.e. ``Inspector.build_reference``
BankBuilder = Callable[[str, Sequence[np.ndarray], Sequence[str]], Any]


def save_reference_images(folder: Path, parts: list[tuple[str, np.ndarray]]) -> None:
    """Keep each picked part (name, RGB image at the camera's frame size) under ``folder/images``."""
    images = Path(folder) / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    for name, image in parts:
        write_atomic(images / f"{name}.png", encode_image(image, "png"))


def build_reference_bank(build: BankBuilder, camera: str, folder: Path, max_pixels: int) -> dict[str, Any]:
    """Rebuild ``folder``'s bank from every image kept in ``folder/images``; returns the bank's description."""
    files = sorted((Path(folder) / IMAGES).glob("*.png"))
    images = [read_image(path, max_pixels) for path in files]
    bank = build(camera, images, [p.name for p in files])
    bank.meta["sources"] = [str(p) for p in files]
    bank.save(folder)
    return {"folder": str(folder), "images": len(files), "patches": bank.meta["coreset"]}


ReferenceBuilder = Callable[[BankBuilder, str, Path, int], dict[str, Any]]
