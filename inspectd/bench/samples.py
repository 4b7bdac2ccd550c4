"""Sample parts drawn from scratch (no dataset needed): the demo's and the tests' inputs.

Each sample is a textured object on a plain background; defective ones carry a scratch or a dark spot. The
mask of the object and of the defect come with it, so tests can check foreground and localisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Sample:
    """A generated part: RGB image, object mask, defect mask (all zeros for a good part)."""

    name: str
    image: np.ndarray
    object_mask: np.ndarray
    defect_mask: np.ndarray

    @property
    def defective(self) -> bool:
        return bool(self.defect_mask.any())


def make_part(width: int = 640, height: int = 480, defect: str | None = None, seed: int = 0) -> Sample:
    """Draw one part: a shaded metal-like disc with a bore on a light background; defect 'scratch' or 'spot'."""
    rng = np.random.default_rng(seed)
    bg = np.full((height, width, 3), (226, 228, 224), np.uint8)
    bg = np.clip(bg + rng.normal(0, 2.0, bg.shape), 0, 255).astype(np.uint8)
    cx = width // 2 + int(rng.integers(-width // 16, width // 16 + 1))
    cy = height // 2 + int(rng.integers(-height // 16, height // 16 + 1))
    r = int(min(width, height) * rng.uniform(0.28, 0.34))
    obj = np.zeros((height, width), np.uint8)
    cv2.circle(obj, (cx, cy), r, 255, -1)
    cv2.circle(obj, (cx, cy), r // 3, 0, -1)
    yy, xx = np.mgrid[0:height, 0:width]
    shade = 0.75 + 0.25 * ((xx - cx) * 0.6 + (yy - cy) * 0.8) / max(r, 1)
    base = np.array([70, 92, 128], np.float32)
    metal = base[None, None, :] * shade[..., None] + rng.normal(0, 4.0, (height, width, 1))
    image = bg.astype(np.float32)
    m = obj > 0
    image[m] = np.clip(metal[m], 0, 255)
    defect_mask = np.zeros((height, width), np.uint8)
    if defect is not None:
        angle = rng.uniform(0, 2 * np.pi)
        px = int(cx + 0.65 * r * np.cos(angle))
        py = int(cy + 0.65 * r * np.sin(angle))
        if defect == "scratch":
            dx, dy = int(0.25 * r * np.cos(angle + 1.2)), int(0.25 * r * np.sin(angle + 1.2))
            cv2.line(defect_mask, (px - dx, py - dy), (px + dx, py + dy), 255, max(2, r // 40))
        elif defect == "spot":
            cv2.circle(defect_mask, (px, py), max(3, r // 12), 255, -1)
        else:
            raise ValueError(f"unknown defect kind {defect!r} (use 'scratch' or 'spot')")
        defect_mask &= obj
        image[defect_mask > 0] = (24, 20, 18)
    image = cv2.GaussianBlur(image.astype(np.uint8), (3, 3), 0)
    name = f"part_{seed:03d}_{defect or 'good'}"
    return Sample(name, image, obj > 0, defect_mask > 0)


KINDS: tuple[str | None, ...] = (None, "scratch", None, "spot")
"""The defect of generated part ``i`` (sample file or clip frame) is ``KINDS[i % 4]``; None is a good part."""


def part_defect(index: int) -> str | None:
    """The defect generated part ``index`` (0-based) gets: 'scratch', 'spot', or None for a good part."""
    return KINDS[index % len(KINDS)]


def part_kind(index: int) -> str:
    """What generated part ``index`` (0-based) shows: 'good', 'scratch' or 'spot'."""
    return part_defect(index) or "good"


def write_samples(folder: Path, count: int = 6, width: int = 640, height: int = 480) -> list[Path]:
    """Write a mix of good and defective parts as PNG files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        s = make_part(width, height, part_defect(i), seed=i)
        path = folder / f"{s.name}.png"
        cv2.imwrite(str(path), s.image[..., ::-1])
        paths.append(path)
    return paths


def write_clip(
    path: Path,
    frames: int = 12,
    width: int = 640,
    height: int = 480,
    fps: float = 5.0,
    first_seed: int = 0,
    good_only: bool = False,
) -> Path:
    """Write a short MJPG video of parts passing the camera, for the file source demo and tests: frame ``i``
    is part ``first_seed + i``, defective as :data:`KINDS` says unless ``good_only``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG video to {path}")
    for i in range(frames):
        kind = None if good_only else part_defect(i)
        writer.write(make_part(width, height, kind, seed=first_seed + i).image[..., ::-1])
    writer.release()
    return path


def read_clip(path: Path) -> list[np.ndarray]:
    """Every frame of a video file as RGB, decoded by OpenCV as the file source decodes it."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame[..., ::-1].copy())
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f"OpenCV read no frame from {path}")
    return frames
