"""CLIPSeg loader on a tiny random model: the split vision/decoder passes equal the stock forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inspectd.errors import ImageError, ModelNotFoundError
from inspectd.models.clipseg import ClipSeg, TileFeatures

CPU = torch.device("cpu")
PROMPTS = ["a scratch", "a hole in the surface", "something missing"]


@pytest.fixture(scope="module")
def clipseg(tiny_models_dir: Path) -> ClipSeg:
    return ClipSeg.load(tiny_models_dir / "clipseg", CPU, half=True)


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, size=(2, 352, 352, 3), dtype=np.uint8)


def _stock_inputs(clipseg: ClipSeg, tiles: np.ndarray, prompts: list[str]):
    """What the stock processor would give: pixel values by hand from the ImageNet stats, token ids."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = (torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    tokens = clipseg._tokenizer(prompts, padding=True, return_tensors="pt")
    return pixels, tokens


def test_loaded_attributes(clipseg: ClipSeg) -> None:
    assert clipseg.input_size == 352
    assert clipseg.random is True
    name, digest = clipseg.model_id.split("@")
    assert name == "clipseg" and len(digest) == 12 and int(digest, 16) >= 0
    assert clipseg.dtype == torch.float32  # half is ignored on cpu
    assert clipseg.logit_scale == pytest.approx(np.exp(2.6592), rel=1e-5)


def test_decode_equals_stock_forward(clipseg: ClipSeg, tiles: np.ndarray) -> None:
    feats = clipseg.encode_tiles(tiles)
    maps = clipseg.decode(feats, clipseg.encode_text(PROMPTS))
    assert maps.shape == (2, 3, 352, 352) and maps.dtype == np.float32

    pixels, tokens = _stock_inputs(clipseg, tiles, PROMPTS)
    n, p = len(tiles), len(PROMPTS)
    with torch.inference_mode():
        out = clipseg._model(
            input_ids=tokens["input_ids"].repeat(n, 1),
            attention_mask=tokens["attention_mask"].repeat(n, 1),
            pixel_values=pixels.repeat_interleave(p, dim=0),
        )
    stock = torch.sigmoid(out.logits).reshape(n, p, 352, 352).numpy()
    np.testing.assert_allclose(maps, stock, atol=1e-4)
    assert np.abs(maps[:, 0] - maps[:, 1]).max() > 1e-6  # prompts condition the maps


def test_image_embeds_equal_clip_image_features(clipseg: ClipSeg, tiles: np.ndarray) -> None:
    feats = clipseg.encode_tiles(tiles)
    pixels, _ = _stock_inputs(clipseg, tiles, PROMPTS)
    with torch.inference_mode():
        ref = clipseg._model.clip.get_image_features(pixels, interpolate_pos_encoding=True).pooler_output
    assert feats.image_embeds.shape == (2, 32) and feats.image_embeds.dtype == torch.float32
    assert feats.image_embeds.device.type == "cpu"
    torch.testing.assert_close(feats.image_embeds, ref, atol=1e-5, rtol=1e-5)
    # 352 px input on a 224 px checkpoint: 22 x 22 patches + class token, position encoding interpolated
    assert [a.shape for a in feats.activations] == [torch.Size([2, 485, 32])] * 2


def test_decode_index_selects_tiles(clipseg: ClipSeg, tiles: np.ndarray) -> None:
    feats = clipseg.encode_tiles(tiles)
    cond = clipseg.encode_text(PROMPTS[:2])
    full = clipseg.decode(feats, cond)
    only_second = clipseg.decode(feats, cond, index=np.array([1]))
    assert only_second.shape == (1, 2, 352, 352)
    np.testing.assert_allclose(only_second[0], full[1], atol=1e-4)
    assert clipseg.decode(feats, cond, index=np.array([], dtype=int)).shape == (0, 2, 352, 352)


def test_text_features_shape_and_padding_invariance(clipseg: ClipSeg) -> None:
    both = clipseg.encode_text(["a crack", "a very long description of a broken part"])
    alone = clipseg.encode_text(["a crack"])
    assert both.shape == (2, 32) and both.dtype == torch.float32
    torch.testing.assert_close(both[0], alone[0], atol=1e-5, rtol=1e-5)


def test_wrong_tile_size_is_an_image_error(clipseg: ClipSeg) -> None:
    with pytest.raises(ImageError, match=r"\(N, 352, 352, 3\)"):
        clipseg.encode_tiles(np.zeros((1, 224, 224, 3), np.uint8))


def test_preprocessor_config_sets_statistics(clipseg: ClipSeg, tiny_models_dir: Path) -> None:
    config = json.loads((tiny_models_dir / "clipseg" / "preprocessor_config.json").read_text())
    assert config["image_mean"] == [0.485, 0.456, 0.406] and config["size"] == {"height": 352, "width": 352}
    white = clipseg.pixel_values(np.full((1, 352, 352, 3), 255, np.uint8))
    expected = (1.0 - 0.485) / 0.229
    assert float(white[0, 0, 0, 0]) == pytest.approx(expected, rel=1e-6)


def test_missing_folder_names_path_and_commands(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        ClipSeg.load(tmp_path / "clipseg", CPU, half=False)
    message = str(err.value)
    assert str(tmp_path / "clipseg") in message
    for command in ("inspectd models pull", "inspectd models install-isnet", "inspectd models init-random"):
        assert command in message


def test_empty_folder_names_missing_config(tmp_path: Path) -> None:
    (tmp_path / "clipseg").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        ClipSeg.load(tmp_path / "clipseg", CPU, half=False)


def test_a_batch_of_sixteen_tiles_and_eight_prompts(clipseg: ClipSeg) -> None:
    """16 tiles x 8 prompts through the tiny model in one call (its speed is measured by `inspectd bench`)."""
    batch = np.random.default_rng(0).integers(0, 256, size=(16, 352, 352, 3), dtype=np.uint8)
    cond = clipseg.encode_text(PROMPTS * 3)[:8]
    feats = clipseg.encode_tiles(batch)
    maps = clipseg.decode(feats, cond)
    assert isinstance(feats, TileFeatures) and len(feats) == 16
    assert maps.shape == (16, 8, 352, 352)
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
