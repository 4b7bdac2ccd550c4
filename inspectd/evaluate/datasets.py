"""Benchmark folder layouts (MVTec AD and VisA) read into lists of labelled samples per class."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inspectd.errors import ImageError
from inspectd.imaging.codec import IMAGE_SUFFIXES
from inspectd.logs import get_logger

log = get_logger("datasets")


@dataclass(frozen=True)
class Sample:
    """One image with its label (0 good, 1 defect), defect type and mask path (None: all-zero mask)."""

    image: Path
    label: int
    defect: str
    mask: Path | None = None


@dataclass
class ClassSet:
    """One object class: its normal training images (may be empty) and its labelled test images."""

    name: str
    train_good: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)

    @property
    def test_good(self) -> list[Sample]:
        return [s for s in self.test if s.label == 0]


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _mvtec_class(folder: Path, name: str) -> ClassSet:
    cs = ClassSet(name, train_good=[Sample(p, 0, "good") for p in _images(folder / "train" / "good")])
    for defect_dir in sorted(p for p in (folder / "test").iterdir() if p.is_dir()):
        defect = defect_dir.name
        for img in _images(defect_dir):
            if defect == "good":
                cs.test.append(Sample(img, 0, "good"))
                continue
            mask = folder / "ground_truth" / defect / f"{img.stem}_mask.png"
            if not mask.is_file():
                raise ImageError(f"defect image {img} has no mask at {mask}; add it or remove the image")
            cs.test.append(Sample(img, 1, defect, mask))
    return cs


def find_mvtec_classes(root: Path) -> list[str]:
    """Class folders (those holding ``test/``) under ``root``, one or two levels deep, as relative names."""
    root = Path(root)
    if (root / "test").is_dir():
        return ["."]
    found = []
    for test_dir in sorted(root.glob("*/test")) + sorted(root.glob("*/*/test")):
        if test_dir.is_dir():
            found.append(test_dir.parent.relative_to(root).as_posix())
    return found


def load_mvtec(root: Path, classes: list[str] | None = None) -> list[ClassSet]:
    """Read the MVTec layout: ``<class>/test/<defect>/*``, ``<class>/ground_truth/<defect>/<stem>_mask.png``,
    ``<class>/train/good/*``. ``classes`` are folder names relative to ``root`` (nested ``dataset/class`` ok)
    or bare class names matched against the last path part."""
    root = Path(root)
    available = find_mvtec_classes(root)
    if not available:
        raise ImageError(f"no MVTec-style class folder (with a test/ subfolder) under {root}")
    chosen = _choose(available, classes, root)
    return [_mvtec_class(root / name, name if name != "." else root.name) for name in chosen]


def _choose(available: list[str], classes: list[str] | None, root: Path) -> list[str]:
    if not classes:
        return available
    chosen = []
    for c in classes:
        hits = [a for a in available if a == c or a.split("/")[-1] == c]
        if not hits:
            raise ImageError(f"class {c!r} not found under {root} (available: {', '.join(available)})")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def load_visa(root: Path, classes: list[str] | None = None, split_csv: Path | None = None) -> list[ClassSet]:
    """Read the VisA layout: ``<class>/Data/Images/{Normal,Anomaly}``, ``<class>/Data/Masks/Anomaly`` and
    the split CSV (``split_csv/1cls.csv``: object, split, label, image, mask; paths relative to ``root``).
    Without a split CSV every image is a test image."""
    root = Path(root)
    split_csv = Path(split_csv) if split_csv else root / "split_csv" / "1cls.csv"
    available = sorted(p.name for p in root.iterdir() if (p / "Data" / "Images").is_dir())
    if not available:
        raise ImageError(f"no VisA class folder (<class>/Data/Images) under {root}")
    chosen = _choose(available, classes, root)
    sets = {c: ClassSet(c) for c in chosen}
    if split_csv.is_file():
        with split_csv.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row["object"] not in sets:
                    continue
                label = 0 if row["label"].strip().lower() == "normal" else 1
                mask = root / row["mask"] if label and row.get("mask") else None
                sample = Sample(root / row["image"], label, "good" if label == 0 else "anomaly", mask)
                target = (
                    sets[row["object"]].train_good if row["split"] == "train" else sets[row["object"]].test
                )
                if row["split"] == "train" and label:
                    continue
                target.append(sample)
        return list(sets.values())
    log.warning("visa_no_split_csv", path=str(split_csv), action="using every image as a test image")
    for c, cs in sets.items():
        data = root / c / "Data"
        cs.test.extend(Sample(p, 0, "good") for p in _images(data / "Images" / "Normal"))
        for p in _images(data / "Images" / "Anomaly"):
            mask = data / "Masks" / "Anomaly" / f"{p.stem}.png"
            if not mask.is_file():
                raise ImageError(f"anomaly image {p} has no mask at {mask}")
            cs.test.append(Sample(p, 1, "anomaly", mask))
    return list(sets.values())


def load_dataset(root: Path, layout: str = "mvtec", classes: list[str] | None = None) -> list[ClassSet]:
    """Dispatch on the layout name (``mvtec`` or ``visa``)."""
    if layout == "mvtec":
        return load_mvtec(root, classes)
    if layout == "visa":
        return load_visa(root, classes)
    raise ValueError(f"unknown layout {layout!r}: use mvtec or visa")


def read_mask(sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    """The sample's ground truth as bool (H, W) of the image's size; all False when it has no mask."""
    if sample.mask is None:
        return np.zeros(shape, dtype=bool)
    m = cv2.imread(str(sample.mask), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ImageError(f"cannot read mask {sample.mask} of {sample.image}")
    if m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m > 127
