"""Good parts picked in the console become (more of) a camera's reference bank.

The parts join the bank folder's own copy of its good images (``<bank>/images/``, also kept by `inspectd
reference add`) and the bank is rebuilt from all of them through the inspector's own builder (the camera's ROI,
foreground and tiling, exactly as its frames are seen), so "add" extends the bank. Frames come from the console's
ring as the camera delivered them (the lossless full-size copy it keeps of the newest passed parts,
``console.reference_frames``), never from the scaled-down JPEGs it shows: a bank of blurred frames fails every
sharp good part once its scale is set on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspectd.config import CameraConfig
from inspectd.errors import ImageError
from inspectd.pipeline.reference import bank_notes
from inspectd.pipeline.reference_images import (
    IMAGES,
    image_file,
    references_outside,
    store_images,
    stored_images,
)

#: (camera, good images, their names) -> a MemoryBank, i.e. ``Inspector.build_reference``
BankBuilder = Callable[[str, Sequence[np.ndarray], Sequence[str]], Any]


class BankNotExtendable(ImageError):
    """A bank some of whose references are not in its images folder: rebuilding it from that folder would drop
    them (a bank built by `inspectd reference add` of an earlier release, or whose images were deleted)."""


def extend_reference_bank(
    build: BankBuilder,
    camera: str,
    config: CameraConfig,
    folder: Path,
    parts: list[tuple[str, np.ndarray]],
    max_pixels: int,
) -> dict[str, Any]:
    """Add ``parts`` (name, frame as delivered) to ``folder/images`` and rebuild the bank from every image there;
    returns the bank's description and ``notes`` on what it means for the camera's verdicts (as `inspectd
    reference add` prints them). A bank that cannot be extended is refused before anything is written."""
    kept, names = stored_images(folder, max_pixels)
    missing = references_outside(folder, kept)
    if missing:
        raise BankNotExtendable(
            f"the bank in {folder} holds {missing} good parts that are not in {Path(folder) / IMAGES}, and "
            "adding parts rebuilds it from that folder alone; rebuild it once with `inspectd reference add "
            "CAMERA GOOD_IMAGES...` (which keeps its images there), then add parts from the console"
        )
    store_images(folder, parts)
    by_name = dict(zip(names, kept, strict=True)) | {image_file(name): image for name, image in parts}
    names = sorted(by_name)
    bank = build(camera, [by_name[n] for n in names], names)
    bank.meta["sources"] = [str(Path(folder) / IMAGES / n) for n in names]
    bank.save(folder)
    return {
        "folder": str(folder),
        "images": len(names),
        "patches": bank.meta["coreset"],
        "held_out_scores": bank.meta["held_out_scores"],
        "notes": bank_notes(camera, config, bank.meta),
    }


ReferenceBuilder = Callable[
    [BankBuilder, str, CameraConfig, Path, list[tuple[str, np.ndarray]], int], dict[str, Any]
]
