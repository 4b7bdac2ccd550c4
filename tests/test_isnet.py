"""The real IS-Net (npm weights) on generated scenes: objects found, empty frames empty, shapes kept."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from inspectd.errors import ImageError, ModelNotFoundError
from inspectd.models.isnet import IsNet, network_input

H, W = 480, 640
BACKGROUND = (205, 205, 200)


def make_scene(h: int = H, w: int = W, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A shaded, textured blue irregular polygon on a plain light background; returns (rgb, mask)."""
    rng = np.random.default_rng(seed)
    pts = np.array([[0.31, 0.25], [0.66, 0.21], [0.75, 0.54], [0.59, 0.79], [0.38, 0.75], [0.27, 0.52]])
    poly = (pts * [w, h]).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    xx = np.arange(w, dtype=np.float32)[None, :, None] / w
    shade = np.clip(0.55 + 0.6 * (xx - 0.27), 0.4, 1.0)
    texture = rng.normal(0.0, 8.0, (h, w, 1))
    obj = np.clip(np.array([40.0, 90.0, 200.0]) * shade + texture, 0, 255).astype(np.uint8)
    image = np.empty((h, w, 3), np.uint8)
    image[:] = BACKGROUND
    image[mask == 1] = obj[mask == 1]
    return image, mask.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def isnet(isnet_dir: Path) -> IsNet:
    return IsNet.load(isnet_dir, "cpu")


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    return make_scene()


@pytest.fixture(scope="module")
def scene_prob(isnet: IsNet, scene: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return isnet.predict(scene[0])


def test_metadata_names_the_weights(isnet: IsNet, isnet_dir: Path) -> None:
    source = json.loads((isnet_dir / "SOURCE.json").read_text())
    assert isnet.model_id == "isnet@" + source["sha256"][:12]
    assert isnet.input_size == 1024
    assert isnet.random is False
    assert isnet.device == "cpu"


@pytest.mark.slow
def test_generated_object_is_segmented(scene: tuple[np.ndarray, np.ndarray], scene_prob: np.ndarray) -> None:
    _, mask = scene
    assert scene_prob.shape == (H, W) and scene_prob.dtype == np.float32
    assert scene_prob.min() >= 0.0 and scene_prob.max() <= 1.0
    assert iou(scene_prob > 0.5, mask) > 0.9


@pytest.mark.slow
def test_grayscale_converted_to_rgb_works(isnet: IsNet, scene: tuple[np.ndarray, np.ndarray]) -> None:
    image, mask = scene
    gray = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert iou(isnet.predict(gray) > 0.5, mask) > 0.9


@pytest.mark.slow
def test_plain_background_has_no_foreground(isnet: IsNet) -> None:
    blank = np.empty((H, W, 3), np.uint8)
    blank[:] = BACKGROUND
    assert (isnet.predict(blank) > 0.5).mean() < 0.01


@pytest.mark.slow
def test_batch_matches_single_and_keeps_each_shape(
    isnet: IsNet, scene: tuple[np.ndarray, np.ndarray], scene_prob: np.ndarray
) -> None:
    odd, odd_mask = make_scene(301, 517, seed=1)
    probs = isnet.predict_batch([scene[0], odd])
    assert [p.shape for p in probs] == [(H, W), (301, 517)]
    np.testing.assert_allclose(probs[0], scene_prob, atol=1e-4)
    assert iou(probs[1] > 0.5, odd_mask) > 0.9
    assert isnet.predict_batch([]) == []


@pytest.mark.parametrize(
    "bad",
    [np.zeros((H, W), np.uint8), np.zeros((H, W, 4), np.uint8), np.zeros((H, W, 3), np.float32)],
    ids=["2d-gray", "rgba", "float"],
)
def test_rejects_non_rgb_uint8(isnet: IsNet, bad: np.ndarray) -> None:
    with pytest.raises(ImageError, match="IS-Net expects"):
        isnet.predict(bad)


def test_missing_weights_name_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        IsNet.load(tmp_path, "cpu")
    message = str(err.value)
    assert str(tmp_path / "isnet.onnx") in message
    assert "inspectd models install-isnet" in message and "inspectd models pull" in message
    assert "init-random" in message


def test_random_marker_and_cuda_fallback(isnet_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "isnet.onnx").symlink_to(isnet_dir / "isnet.onnx")
    (tmp_path / "RANDOM_WEIGHTS").write_text("made by a test\n")
    model = IsNet.load(tmp_path, "cuda")
    assert model.random is True
    expected = "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
    assert model.device == expected


@pytest.mark.parametrize("offset", range(8))
def test_a_thin_line_in_a_large_frame_survives_the_resize_to_the_network(offset: int) -> None:
    frame = np.zeros((512, 4096, 3), np.uint8)
    frame[:, 2000 + offset : 2002 + offset] = 255  # 2 px wide, 4x shrunk horizontally: half a network pixel
    column_peak = network_input(frame, 1024)[256, :, 0].max()
    # area averaging: 2 of 4 pixels (128), or 1 of 4 in each of two network pixels (64); bilinear sampling
    # lands between the line's pixels at some offsets and gives 0
    assert column_peak >= 60
