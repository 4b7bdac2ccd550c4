"""SAM loader: sam_config.json picks the architecture, the .pth loads strictly, tiny random SAM yields masks."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inspectd.errors import ImageError, ModelLoadError, ModelNotFoundError
from inspectd.models.random_init import SAM_TINY
from inspectd.models.sam import RANDOM_POINTS_PER_SIDE, SamMasker, build_sam_from_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sam(tiny_models_dir: Path) -> SamMasker:
    return SamMasker.load(tiny_models_dir / "sam", CPU, points_per_side=4)


def test_tiny_sam_returns_bool_masks_of_crop_shape(sam: SamMasker) -> None:
    crop = np.random.default_rng(3).integers(0, 256, size=(72, 100, 3), dtype=np.uint8)
    crop[20:50, 30:70] = (200, 40, 40)
    start = time.perf_counter()
    masks = sam.masks(crop)
    print(
        f"tiny sam, 4x4 points, 72x100 crop: {len(masks)} masks in {(time.perf_counter() - start) * 1000:.0f} ms"
    )
    assert len(masks) >= 1
    assert all(m.shape == (72, 100) and m.dtype == bool for m in masks)


def test_loaded_attributes(sam: SamMasker, tiny_models_dir: Path) -> None:
    assert sam.random is True
    name, digest = sam.model_id.split("@")
    assert name == "sam" and len(digest) == 12
    assert sam._generator.pred_iou_thresh == 0.0 and sam._generator.stability_score_thresh == 0.0
    assert sam._generator.point_grids[0].shape == (16, 2)


def test_random_folder_caps_the_point_grid_and_says_so(tiny_models_dir: Path) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        masker = SamMasker.load(tiny_models_dir / "sam", CPU, points_per_side=16)
    assert masker.points_per_side == RANDOM_POINTS_PER_SIDE
    assert masker._generator.point_grids[0].shape == (RANDOM_POINTS_PER_SIDE**2, 2)
    capped = [e for e in logs if e["event"] == "sam_random_points_capped"]
    assert len(capped) == 1 and capped[0]["points_per_side"] == 16 and capped[0]["used"] == 4


def test_real_folder_keeps_released_thresholds(tiny_models_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sam"
    shutil.copytree(tiny_models_dir / "sam", folder)
    (folder / "RANDOM_WEIGHTS").unlink()
    masker = SamMasker.load(folder, CPU, points_per_side=8)
    assert masker.random is False and masker.points_per_side == 8
    assert masker._generator.pred_iou_thresh == 0.88 and masker._generator.stability_score_thresh == 0.95
    assert masker._generator.point_grids[0].shape == (64, 2)


def test_explicit_dims_build_the_small_architecture() -> None:
    model = build_sam_from_config(SAM_TINY)
    assert model.image_encoder.img_size == 1024
    assert model.image_encoder.patch_embed.proj.kernel_size == (16, 16)
    assert len(model.image_encoder.blocks) == SAM_TINY["encoder_depth"]
    assert model.prompt_encoder.embed_dim == SAM_TINY["prompt_embed_dim"]


def test_state_dict_of_other_architecture_is_a_load_error(tiny_models_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sam"
    shutil.copytree(tiny_models_dir / "sam", folder)
    (folder / "sam_config.json").write_text(json.dumps({**SAM_TINY, "encoder_depth": 3}))
    with pytest.raises(ModelLoadError, match="does not match the architecture"):
        SamMasker.load(folder, CPU, points_per_side=4)


def test_unknown_arch_is_a_load_error(tiny_models_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sam"
    shutil.copytree(tiny_models_dir / "sam", folder)
    (folder / "sam_config.json").write_text(json.dumps({"arch": "vit_x"}))
    with pytest.raises(ModelLoadError, match="vit_x"):
        SamMasker.load(folder, CPU, points_per_side=4)


def test_missing_folder_names_path_and_commands(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        SamMasker.load(tmp_path / "sam", CPU, points_per_side=4)
    message = str(err.value)
    assert str(tmp_path / "sam") in message
    for command in ("inspectd models pull", "inspectd models install-isnet", "inspectd models init-random"):
        assert command in message


def test_missing_checkpoint_names_pth(tmp_path: Path) -> None:
    folder = tmp_path / "sam"
    folder.mkdir()
    (folder / "sam_config.json").write_text(json.dumps({"arch": "vit_b"}))
    with pytest.raises(ModelNotFoundError, match=r"sam/\*\.pth"):
        SamMasker.load(folder, CPU, points_per_side=4)


def test_grey_image_is_rejected(sam: SamMasker) -> None:
    with pytest.raises(ImageError, match="RGB uint8"):
        sam.masks(np.zeros((10, 10), np.uint8))
