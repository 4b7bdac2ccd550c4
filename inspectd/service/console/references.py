"""Good parts picked in the console become (more of) a camera's reference bank.

The console keeps the images it added in ``<bank>/images/`` and rebuilds the bank from all of them with the
pipeline's own builder, so "add" extends what the console added before. This is the console's one touch point
with reference mode: everything else goes through ``inspectd.pipeline.reference``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspectd.atomicfile import write_atomic
from inspectd.imaging.codec import encode_image, read_image

IMAGES = "images"
FG_SUFFIX = ".fg.png"


def save_reference_images(folder: Path, parts: list[tuple[str, np.ndarray, np.ndarray | None]]) -> None:
    """Keep each picked part (name, RGB image, foreground mask or None) under ``folder/images``."""
    images = Path(folder) / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    for name, image, foreground in parts:
        write_atomic(images / f"{name}.png", encode_image(image, "png"))
        if foreground is not None:
            ok, buf = cv2.imencode(".png", foreground.astype(np.uint8) * 255)
            if ok:
                write_atomic(images / f"{name}{FG_SUFFIX}", buf.tobytes())


def build_reference_bank(backbone: Any, folder: Path, coreset: int, max_pixels: int) -> dict[str, Any]:
    """Rebuild ``folder``'s bank from every image kept in ``folder/images``; returns the bank's description."""
    from inspectd.pipeline.reference import build_bank

    images_dir = Path(folder) / IMAGES
    files = sorted(p for p in images_dir.glob("*.png") if not p.name.endswith(FG_SUFFIX))
    images, foregrounds = [], []
    for path in files:
        images.append(read_image(path, max_pixels))
        fg_path = path.with_name(path.stem + FG_SUFFIX)
        fg = cv2.imread(str(fg_path), cv2.IMREAD_GRAYSCALE) if fg_path.is_file() else None
        foregrounds.append(fg > 127 if fg is not None else None)
    bank = build_bank(backbone, images, foregrounds, coreset)
    bank.meta["foreground"] = any(f is not None for f in foregrounds)
    bank.meta["sources"] = [str(p) for p in files]
    bank.save(folder)
    return {"folder": str(folder), "images": len(files), "patches": bank.meta["coreset"]}


ReferenceBuilder = Callable[[Any, Path, int, int], dict[str, Any]]
