"""Reference mode on real EfficientNet-Lite0 weights with generated parts: a patterned plate, one with a spot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectd.errors import ImageError, ModelLoadError, ModelNotFoundError
from inspectd.models.backbone import EfficientNetLite
from inspectd.pipeline.reference import MemoryBank, build_bank, score_image

SIZE = 96


def plate(seed: int, defect: bool = False) -> np.ndarray:
    """A striped grey plate with mild noise; ``defect`` adds a dark red blob at rows/cols 40..56."""
    rng = np.random.default_rng(seed)
    xx = np.mgrid[0:SIZE, 0:SIZE][1]
    base = 120 + 40 * np.sin(xx / 3.0) + rng.normal(0, 4, (SIZE, SIZE))
    img = np.repeat(np.clip(base, 0, 255)[:, :, None], 3, axis=2).astype(np.uint8)
    if defect:
        img[40:56, 40:56] = (150, 20, 20)
    return img


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite:
    b = EfficientNetLite.load("efficientnet_lite0", torch.device("cpu"))
    b.input_size = SIZE
    return b


@pytest.fixture(scope="module")
def bank(backbone) -> MemoryBank:
    images = [plate(i) for i in range(4)]
    return build_bank(backbone, images, [None] * len(images), coreset=128)


def test_bank_is_subsampled_and_described(bank, backbone):
    assert bank.features.shape == (128, 152)
    assert bank.features.dtype == np.float32
    assert bank.meta["backbone"] == backbone.model_id
    assert bank.meta["input_size"] == SIZE
    assert bank.meta["patches"] == 4 * (SIZE // 8) ** 2
    stats = bank.meta["normaliser"]
    assert stats["edge"] > stats["median"] > 0


def test_defect_scores_higher_and_is_located(backbone, bank):
    good_scores = [score_image(backbone, bank, plate(10 + i), None)[1] for i in range(3)]
    amap, score = score_image(backbone, bank, plate(20, defect=True), None)
    assert amap.shape == (SIZE, SIZE) and amap.dtype == np.float32
    assert amap.min() >= 0.0 and amap.max() <= 1.0
    assert score == pytest.approx(float(amap.max()))
    assert score > max(good_scores)
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    assert 36 <= y <= 60 and 36 <= x <= 60
    inside, outside = amap[40:56, 40:56].mean(), amap[:24, :24].mean()
    assert inside > 0.5 > outside


def test_good_parts_stay_below_half_on_average(backbone, bank):
    # Normalised by the reference set's own held-out distances: good parts sit well under 0.5.
    amap, _ = score_image(backbone, bank, plate(30), None)
    assert amap.mean() < 0.2


def test_foreground_zeroes_outside_and_map_keeps_image_size(backbone, bank):
    fg = np.zeros((SIZE, SIZE * 2), bool)
    fg[:, :SIZE] = True
    wide = np.concatenate([plate(5, defect=True), plate(6)], axis=1)
    amap, _ = score_image(backbone, bank, wide, fg)
    assert amap.shape == (SIZE, 2 * SIZE)
    assert amap[:, SIZE:].max() == 0.0


def test_build_uses_only_foreground_patches(backbone):
    images = [plate(i) for i in range(2)]
    fg = np.zeros((SIZE, SIZE), bool)
    fg[:, : SIZE // 2] = True
    b = build_bank(backbone, images, [fg, fg], coreset=10_000)
    assert b.meta["patches"] == 2 * (SIZE // 8) * (SIZE // 16)


def test_save_load_roundtrip_and_missing_bank(tmp_path, bank):
    bank.save(tmp_path / "cam1")
    loaded = MemoryBank.load(tmp_path / "cam1")
    np.testing.assert_array_equal(loaded.features, bank.features)
    assert loaded.meta == bank.meta
    with pytest.raises(ModelNotFoundError, match="inspectd reference add"):
        MemoryBank.load(tmp_path / "nothing")


def test_bank_from_other_backbone_is_refused(backbone, bank):
    other = MemoryBank(bank.features, {**bank.meta, "input_size": 320})
    with pytest.raises(ModelLoadError, match="rebuild"):
        score_image(backbone, other, plate(1), None)


def test_too_few_images_and_bad_image(backbone, bank):
    with pytest.raises(ImageError, match="at least 2"):
        build_bank(backbone, [plate(0)], [None], 16)
    with pytest.raises(ImageError, match="RGB uint8"):
        score_image(backbone, bank, np.zeros((SIZE, SIZE), np.uint8), None)
