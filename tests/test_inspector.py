"""The whole method on one frame: real IS-Net, tiny random CLIPSeg/SAM through their real loaders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from inspectd.bench.samples import make_part
from inspectd.config import CameraConfig
from inspectd.frame import Frame
from inspectd.method.foreground import filled_outline
from inspectd.pipeline.inspector import Inspector

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def part_result(inspector: Inspector):
    sample = make_part(480, 360, "scratch", seed=3)
    result = inspector.inspect(Frame(camera="cam", seq=1, image=sample.image, part_id="P-1"))
    return sample, result


def test_verdict_carries_everything_the_line_needs(part_result):
    _, result = part_result
    v = result.verdict
    assert v.verdict in ("pass", "fail"), v
    assert v.part_id == "P-1" and v.seq == 1 and v.camera == "cam"
    assert 0.0 <= v.score <= 1.0
    assert v.components == 1
    assert v.tiles >= 1
    for stage in ("foreground", "components", "complexity", "tiling", "clipseg_winclip", "fusion", "verdict"):
        assert stage in v.stage_ms, stage
    assert set(v.models) >= {"isnet", "clipseg", "sam"}


def test_anomaly_map_is_frame_sized_and_zero_outside_the_parts_filled_outline(part_result):
    sample, result = part_result
    amap = result.anomaly_map
    assert amap.shape == sample.image.shape[:2] and amap.dtype == np.float32
    assert amap.min() >= 0.0 and amap.max() <= 1.0
    outline = filled_outline(result.foreground)
    assert np.all(amap[~outline] == 0.0)
    assert amap[result.foreground].max() > 0.0
    bore = outline & ~result.foreground  # the disc's bore: background to IS-Net, inside the outline
    assert bore.sum() > 0.05 * outline.sum() and amap[bore].max() > 0.0
    iou = (result.foreground & sample.object_mask).sum() / (result.foreground | sample.object_mask).sum()
    assert iou > 0.9


def test_image_score_is_the_highest_mean_tile_score_of_the_parts(inspector: Inspector):
    # two parts in one frame, stage by stage, so the tile scores behind the verdict are at hand
    image = np.hstack([make_part(240, 240, "spot", seed=6).image, make_part(240, 240, None, seed=7).image])
    plan = inspector.start(Frame(camera="cam", seq=1, image=image))
    inspector.measure_complexity(plan)
    inspector.make_tiles(plan)
    outputs = inspector.score_tiles([plan])[0]
    result = inspector.finish(plan, outputs)
    assert len(plan.components) == 2
    owners = [t.component for t in plan.tiles]
    means = [
        float(np.mean([s for s, o in zip(outputs.scores, owners, strict=True) if o == c])) for c in range(2)
    ]
    assert result.verdict.score == pytest.approx(max(means), abs=1e-6)
    for c in plan.components:  # each part's map is weighted by its own mean, never the other's
        assert result.anomaly_map[c.mask].max() <= means[c.index] + 1e-6


def test_plain_background_is_an_error_no_foreground(inspector: Inspector):
    empty = np.full((240, 320, 3), 200, np.uint8)
    v = inspector.inspect(Frame(camera="cam", seq=2, image=empty, part_id="P-2")).verdict
    assert v.verdict == "error" and v.reason == "no_foreground" and v.part_id == "P-2"


def test_too_large_frame_is_refused_with_the_limit_named(inspector: Inspector):
    limit = inspector.settings.pipeline.max_image_pixels
    side = int(np.sqrt(limit)) + 2
    big = np.zeros((side, side, 3), np.uint8)
    v = inspector.inspect(Frame(camera="cam", seq=3, image=big)).verdict
    assert v.verdict == "error" and v.reason == "image_too_large"
    assert "pipeline.max_image_pixels" in v.detail


def test_frame_without_image_gets_its_source_error(inspector: Inspector):
    frame = Frame(
        camera="cam", seq=4, image=None, part_id="P-4", error="truncated JPEG", error_reason="decode_error"
    )
    v = inspector.inspect(frame).verdict
    assert (v.verdict, v.reason, v.detail, v.part_id) == ("error", "decode_error", "truncated JPEG", "P-4")


def test_complexity_is_cached_per_camera(inspector: Inspector):
    image = make_part(320, 240, None, seed=5).image
    inspector.complexity_cache.invalidate("cache-cam")
    first = inspector.inspect(Frame(camera="cache-cam", seq=1, image=image)).verdict
    second = inspector.inspect(Frame(camera="cache-cam", seq=2, image=image)).verdict
    assert "complexity" in first.stage_ms
    assert "complexity" not in second.stage_ms


def test_full_frame_foreground_inspects_a_surface_without_isnet(pipeline_settings, store):
    settings = pipeline_settings.model_copy(deep=True)
    settings.cameras = {"tile": CameraConfig(foreground="full")}
    texture = np.random.default_rng(0).integers(90, 110, (200, 260, 3), dtype=np.uint8)
    v = Inspector(settings, store).inspect(Frame(camera="tile", seq=1, image=texture)).verdict
    assert v.verdict in ("pass", "fail") and v.components == 1 and v.tiles >= 1
    assert "foreground" not in v.stage_ms  # IS-Net did not run


def test_no_foreground_error_says_how_to_inspect_a_surface(inspector: Inspector):
    v = inspector.inspect(Frame(camera="cam", seq=9, image=np.full((240, 320, 3), 200, np.uint8))).verdict
    assert 'foreground = "full"' in v.detail


def test_a_piece_missing_from_the_rim_is_still_judged(pipeline_settings, store):
    """A broken-off piece is background to IS-Net; the map keeps it because it lies inside the filled outline."""
    sample = make_part(480, 360, None, seed=4)
    image = sample.image.copy()
    ys, xs = np.nonzero(sample.object_mask)
    cy, cx, r = int(ys.mean()), int(xs.mean()), (xs.max() - xs.min()) // 2
    gap = np.zeros(sample.object_mask.shape, np.uint8)
    cv2.ellipse(gap, (cx, cy), (r + 2, r + 2), 0, -100, -80, 255, -1)
    cv2.circle(gap, (cx, cy), int(0.8 * r), 0, -1)  # a chunk of the rim, open to the background
    image[gap > 0] = (226, 228, 224)
    frame = Frame(camera="cam", seq=1, image=image)
    kept = Inspector(pipeline_settings, store).inspect(frame)
    missing = (gap > 0) & ~kept.foreground & filled_outline(kept.foreground)
    assert missing.sum() > 100, "IS-Net should call the missing chunk background, inside the outline"
    assert kept.anomaly_map[missing].mean() > 0.0
    raw = pipeline_settings.model_copy(deep=True)
    raw.pipeline.fill_outline = False
    dropped = Inspector(raw, store).inspect(frame)
    assert dropped.anomaly_map[missing].max() == 0.0


def test_a_long_narrow_frame_reaches_clipseg_unsquashed_and_its_map_covers_the_part(pipeline_settings, store):
    settings = pipeline_settings.model_copy(deep=True)
    settings.pipeline.tiling.max_tiles_per_component = 4  # tiles larger than the frame's 120 px height
    inspector = Inspector(settings, store)
    image = np.full((120, 1400, 3), 226, np.uint8)
    image[30:90, 40:1360] = (70, 92, 128)  # a long bar
    plan = inspector.start(Frame(camera="cam", seq=1, image=image))
    inspector.measure_complexity(plan)
    inspector.make_tiles(plan)
    size = plan.tile_pixels.shape[1]
    wide = [(i, t) for i, t in enumerate(plan.tiles) if t.width != t.height]
    assert wide, f"expected tiles spanning the frame's height, got {[t.box for t in plan.tiles]}"
    for i, t in wide:
        w, h = plan.tile_fit[i]
        assert abs(w / h - t.width / t.height) < 0.02 and max(w, h) == size
        expected = cv2.resize(image[t.y0 : t.y1, t.x0 : t.x1], (w, h), interpolation=cv2.INTER_AREA)
        assert np.array_equal(plan.tile_pixels[i][:h, :w], expected)
    result = inspector.finish(plan, inspector.score_tiles([plan])[0])
    bar = result.foreground
    assert bar[:, 60:1340].any(axis=0).all()
    assert (result.anomaly_map[bar] > 0).mean() > 0.99  # the cropped maps cover the whole part


@pytest.mark.parametrize(("threshold", "expected"), [(1.0, "error"), (0.0, "fail")])
def test_parts_left_uninspected_never_let_the_frame_pass(pipeline_settings, store, threshold, expected):
    settings = pipeline_settings.model_copy(deep=True)
    settings.pipeline.max_components = 2
    settings.cameras = {"tray": CameraConfig(image_threshold=threshold, pixel_threshold=1.0)}
    tray = np.hstack([make_part(200, 200, None, seed=s).image for s in (1, 2, 3)])  # three parts
    v = Inspector(settings, store).inspect(Frame(camera="tray", seq=1, image=tray)).verdict
    assert v.verdict == expected, v
    if expected == "error":  # the two inspected passed, the third was never looked at
        assert v.reason == "too_many_parts" and "pipeline.max_components" in v.detail


def test_a_frame_tile_budget_that_coarsens_tiles_is_logged_once_per_camera(pipeline_settings, store):
    settings = pipeline_settings.model_copy(deep=True)
    settings.pipeline.tiling.max_tiles_per_frame = 1  # the ~800 px disc in one tile: past 2 x 352 px
    inspector = Inspector(settings, store)
    image = make_part(1600, 1200, None, seed=9).image
    with capture_logs() as logs:
        for seq in (1, 2):
            inspector.inspect(Frame(camera="cam", seq=seq, image=image))
    capped = [e for e in logs if e["event"] == "tiles_per_component_capped"]
    assert len(capped) == 1 and capped[0]["limit"] == "pipeline.tiling.max_tiles_per_frame"
