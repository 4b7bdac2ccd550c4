"""Reference mode on real EfficientNet-Lite0 weights with generated parts: a patterned plate, one with a spot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectd.config import ReferenceConfig
from inspectd.errors import ImageError, ModelLoadError, ModelNotFoundError
from inspectd.method.patchcore import scaled_tiles
from inspectd.models.backbone import EfficientNetLite
from inspectd.pipeline.reference import (
    MemoryBank,
    build_bank,
    cut,
    nearest_distance,
    part_regions,
    score_image,
    tile_features,
)

SIZE = 96
CFG = ReferenceConfig(scale=1.0, tile=64, overlap=0.25, smooth_sigma=2.0, min_side=0)


def plate(seed: int, defect: bool = False, size: int = SIZE) -> np.ndarray:
    """A striped grey plate with mild noise; ``defect`` adds a dark red blob at rows/cols 40..56."""
    rng = np.random.default_rng(seed)
    xx = np.mgrid[0:size, 0:size][1]
    base = 120 + 40 * np.sin(xx / 3.0) + rng.normal(0, 4, (size, size))
    img = np.repeat(np.clip(base, 0, 255)[:, :, None], 3, axis=2).astype(np.uint8)
    if defect:
        img[40:56, 40:56] = (150, 20, 20)
    return img


def whole(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    return part_regions(image.shape[:2], None, 0.0)


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite:
    return EfficientNetLite.load("efficientnet_lite0", torch.device("cpu"))


@pytest.fixture(scope="module")
def bank(backbone) -> MemoryBank:
    images = [plate(i) for i in range(4)]
    return build_bank(backbone, images, [whole(i) for i in images], CFG, coreset=128)


def test_bank_is_subsampled_and_describes_its_tiling(bank, backbone):
    assert bank.features.shape == (128, 40 + 112 + 320)  # stages 2, 4 and 6 of Lite0
    assert bank.features.dtype == np.float32
    assert bank.meta["backbone"] == backbone.model_id
    assert (bank.meta["scale"], bank.meta["tile"], bank.meta["stages"]) == (1.0, 64, [2, 4, 6])
    assert bank.meta["min_side"] == 0
    # a 96 px plate in 64 px tiles with a quarter overlap: 2 x 2 tiles of 8 x 8 stride-8 patches
    assert bank.meta["patches"] == 4 * 4 * (64 // 8) ** 2
    stats = bank.meta["normaliser"]
    assert stats["edge"] > stats["median"] > 0


def test_defect_scores_higher_and_is_located(backbone, bank):
    good_scores = [score_image(backbone, bank, plate(10 + i), whole(plate(0)), CFG)[1] for i in range(3)]
    amap, score = score_image(backbone, bank, plate(20, defect=True), whole(plate(0)), CFG)
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
    amap, _ = score_image(backbone, bank, plate(30), whole(plate(0)), CFG)
    assert amap.mean() < 0.2


def test_native_resolution_a_larger_frame_is_tiled_not_squashed(backbone, bank):
    # A frame four times the plate's area: the same defect, at the same size in pixels, is still found.
    big = np.concatenate(
        [np.concatenate([plate(40 + i + 2 * j) for i in range(2)], axis=1) for j in range(2)]
    )
    big[136:152, 136:152] = (150, 20, 20)
    tiles = cut(whole(big), big.shape[:2], CFG)
    assert all(t.size == (64, 64) and s == 1.0 for t, s in tiles) and len(tiles) == 16
    amap, _ = score_image(backbone, bank, big, whole(big), CFG)
    assert amap.shape == big.shape[:2]
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    assert 128 <= y <= 160 and 128 <= x <= 160


def test_map_is_zero_outside_the_part_regions(backbone, bank):
    wide = np.concatenate([plate(5, defect=True), plate(6)], axis=1)
    amap, _ = score_image(backbone, bank, wide, [(0, 0, SIZE, SIZE)], CFG)
    assert amap.shape == (SIZE, 2 * SIZE)
    assert amap[:, SIZE:].max() == 0.0 and amap[:, :SIZE].max() > 0.5


def test_the_default_threshold_passes_good_plates_and_fails_a_two_pixel_defect(backbone, bank):
    # The scale is set on the references' own held-out maps, smoothed as frames are: the worst good reference
    # lands at 0.5. Set on raw patch distances (before), smoothing kept two of these three defects under 0.5.
    assert all(score_image(backbone, bank, plate(10 + i), whole(plate(0)), CFG)[1] < 0.5 for i in range(6))
    for seed in range(3):
        img = plate(30 + seed)
        img[44:46, 44:46] = (150, 20, 20)
        assert score_image(backbone, bank, img, whole(img), CFG)[1] > 0.5


def test_the_scale_is_measured_on_the_references_outlines_only(backbone):
    # Each good reference has clutter beside the part, inside its box, a different one each: kept off the
    # outline it must not set the scale (it would lift the edge and pass real defects).
    images, keeps = [], []
    for i in range(4):
        img = plate(i)
        img[10 + 20 * i : 26 + 20 * i, SIZE - 20 : SIZE - 4] = (20, 20 + 60 * i, 150)
        keep = np.zeros((SIZE, SIZE), bool)
        keep[:, : SIZE - 24] = True
        images.append(img)
        keeps.append(keep)
    regions = [whole(i) for i in images]
    loose = build_bank(backbone, images, regions, CFG, coreset=128)
    kept = build_bank(backbone, images, regions, CFG, coreset=128, keeps=keeps)
    assert kept.meta["normaliser"]["edge"] < loose.meta["normaliser"]["edge"]
    assert kept.meta["normaliser_from"] == "maps"
    with pytest.raises(ValueError, match="keep masks"):
        build_bank(backbone, images, regions, CFG, coreset=128, keeps=keeps[:2])


def test_part_regions_grow_boxes_by_context_or_take_the_whole_image():
    assert part_regions((100, 200), None, 0.5) == [(0, 0, 200, 100)]
    assert part_regions((100, 200), [(10, 20, 40, 20)], 0.25) == [(0, 15, 60, 45)]


def test_scale_keeps_aspect_and_upsamples_small_tiles(backbone):
    image = plate(1)[:40, :]  # 40 x 96: wider than tall
    tiles = scaled_tiles(whole(image), image.shape[:2], 2.0, 128, 0.25)
    feats = tile_features(backbone, image, tiles)
    # tiles of 64 frame px (128 network px) spanning the 40 px short side, each doubled before the backbone
    assert {t.height for t, _ in tiles} == {40}
    assert [tuple(f.shape[:2]) for f in feats] == [(10, t.width * 2 // 8) for t, _ in tiles]


def test_min_side_enlarges_a_small_part_and_still_finds_its_defect(backbone):
    # Parts half the plate's size: with min_side 96 they are doubled, bank and frames alike.
    cfg = CFG.model_copy(update={"min_side": 96})
    small = [plate(i)[::2, ::2].copy() for i in range(4)]
    tiles = cut(whole(small[0]), small[0].shape[:2], cfg)
    assert {s for _, s in tiles} == {2.0}
    bank = build_bank(backbone, small, [whole(i) for i in small], cfg, coreset=128)
    assert bank.meta["min_side"] == 96
    defect = plate(20, defect=True)[::2, ::2].copy()
    good_score = score_image(backbone, bank, plate(11)[::2, ::2].copy(), whole(small[0]), cfg)[1]
    amap, score = score_image(backbone, bank, defect, whole(defect), cfg)
    assert amap.shape == defect.shape[:2] and score > good_score
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    assert 16 <= y <= 32 and 16 <= x <= 32


def test_two_parts_of_different_size_each_get_their_own_scale_and_no_bleed(backbone):
    # A full-size plate with a defect and a half-size good one: with min_side 96 the small one is doubled, so
    # both reach the backbone at one size; nothing is marked between them. The camera sees both sizes, so its
    # references show both (a doubled half-size plate is smoother than a full-size one).
    cfg = CFG.model_copy(update={"min_side": 96})
    refs = [plate(i) for i in range(4)] + [plate(i)[::2, ::2].copy() for i in range(4, 7)]
    bank = build_bank(backbone, refs, [whole(r) for r in refs], cfg, coreset=256)
    frame = np.full((SIZE, 3 * SIZE, 3), 255, np.uint8)
    frame[:, :SIZE] = plate(7, defect=True)
    frame[: SIZE // 2, 2 * SIZE : 2 * SIZE + SIZE // 2] = plate(8)[::2, ::2]
    parts = [(0, 0, SIZE, SIZE), (2 * SIZE, 0, 2 * SIZE + SIZE // 2, SIZE // 2)]
    assert sorted({s for _, s in cut(parts, frame.shape[:2], cfg)}) == [1.0, 2.0]
    amap, _ = score_image(backbone, bank, frame, parts, cfg)
    assert amap[:, SIZE : 2 * SIZE].max() == 0.0
    assert amap[:, :SIZE].max() > 0.5 > amap[: SIZE // 2, 2 * SIZE : 2 * SIZE + SIZE // 2].max()


def test_the_map_is_kept_on_the_parts_outline_and_smoothed_from_it_alone(backbone, bank):
    # A good plate whose box (the region the backbone sees) also holds a dark red object beside it: only the
    # plate's outline is kept, so the object's own pixels neither score nor bleed into the plate by smoothing.
    frame = plate(12)
    keep = np.zeros(frame.shape[:2], bool)
    keep[:, : SIZE - 24] = True  # the part: everything but a 24 px strip on the right
    frame[30:60, SIZE - 20 : SIZE - 4] = (150, 20, 20)  # the clutter, in that strip
    loose, loose_score = score_image(backbone, bank, frame, whole(frame), CFG)
    kept, kept_score = score_image(backbone, bank, frame, whole(frame), CFG, keep)
    assert loose_score > 0.5 and loose[30:60, SIZE - 20 : SIZE - 4].max() > 0.5
    assert kept[~keep].max() == 0.0 and kept_score == pytest.approx(float(kept.max()))
    # the plate's own pixels still see the clutter through the backbone's context, but the smoothing no
    # longer carries the clutter's distances onto them
    assert kept_score < loose_score
    assert (kept[keep] <= loose[keep] + 1e-6).mean() > 0.9


def test_bank_built_with_other_settings_is_refused(backbone, bank):
    with pytest.raises(ModelLoadError, match=r"scale 1.0 \(now 2.0\)"):
        score_image(backbone, bank, plate(1), whole(plate(1)), CFG.model_copy(update={"scale": 2.0}))
    other = MemoryBank(bank.features, {**bank.meta, "backbone": "efficientnet_lite1@x"})
    with pytest.raises(ModelLoadError, match="rebuild"):
        score_image(backbone, other, plate(1), whole(plate(1)), CFG)


def test_a_bank_from_before_min_side_scores_with_min_side_0_and_is_refused_otherwise(backbone, bank):
    # Banks written before the key existed never enlarged a part: they still work where min_side is 0.
    old = MemoryBank(bank.features, {k: v for k, v in bank.meta.items() if k != "min_side"})
    assert CFG.min_side == 0
    score_image(backbone, old, plate(1), whole(plate(1)), CFG)
    with pytest.raises(ModelLoadError, match=r"min_side 0 \(now 320\)"):
        score_image(backbone, old, plate(1), whole(plate(1)), CFG.model_copy(update={"min_side": 320}))


def test_save_load_roundtrip_and_missing_bank(tmp_path, bank):
    bank.save(tmp_path / "cam1")
    loaded = MemoryBank.load(tmp_path / "cam1")
    np.testing.assert_array_equal(loaded.features, bank.features)
    assert loaded.meta == bank.meta
    assert loaded.model_id == bank.model_id and bank.model_id.startswith("reference-bank@")
    rescaled = MemoryBank(
        bank.features, {**bank.meta, "normaliser": {**bank.meta["normaliser"], "scale": 1.0}}
    )
    assert rescaled.model_id != bank.model_id, "a new score scale is another bank to the verdicts"
    with pytest.raises(ModelNotFoundError, match="inspectd reference add"):
        MemoryBank.load(tmp_path / "nothing")


def test_too_few_images_and_bad_image(backbone, bank):
    with pytest.raises(ImageError, match="at least 2"):
        build_bank(backbone, [plate(0)], [whole(plate(0))], CFG, 16)
    with pytest.raises(ImageError, match="RGB uint8"):
        score_image(backbone, bank, np.zeros((SIZE, SIZE), np.uint8), [(0, 0, SIZE, SIZE)], CFG)


def test_nearest_distance_hand_values_and_chunking():
    bank = torch.tensor([[0.0, 0.0], [6.0, 8.0]])
    q = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 9.0]])
    np.testing.assert_allclose(nearest_distance(q, bank).numpy(), [0.0, 5.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(nearest_distance(q, bank, chunk=1).numpy(), [0.0, 5.0, 1.0], atol=1e-5)
