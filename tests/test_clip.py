"""Separate CLIP loader on a tiny random CLIPModel: text/image features match the stock model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inspectd.errors import ImageError, ModelNotFoundError
from inspectd.models.clip import Clip

CPU = torch.device("cpu")
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def clip(tiny_models_dir: Path) -> Clip:
    return Clip.load(tiny_models_dir / "clip", CPU, half=False)


def test_loaded_attributes(clip: Clip) -> None:
    assert clip.input_size == 224 and clip.random is True
    assert clip.model_id.startswith("clip@") and len(clip.model_id) == len("clip@") + 12
    assert clip.logit_scale == pytest.approx(np.exp(2.6592), rel=1e-5)


def test_text_features_equal_stock(clip: Clip) -> None:
    texts = ["a photo of a damaged screw", "a photo of a screw"]
    tokens = clip._tokenizer(texts, padding=True, return_tensors="pt")
    assert tokens["input_ids"][0, 0] == 49406 and 49407 in tokens["input_ids"][0].tolist()
    with torch.inference_mode():
        ref = clip._model.get_text_features(**tokens).pooler_output
    got = clip.encode_text(texts)
    assert got.shape == (2, 32) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_image_embeds_equal_stock_at_input_size(clip: Clip) -> None:
    tiles = np.random.default_rng(1).integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)
    pixels = (torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD
    with torch.inference_mode():
        ref = clip._model.get_image_features(pixel_values=pixels).pooler_output
    got = clip.encode_images(tiles)
    assert got.shape == (3, 32) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_larger_tiles_are_resized_like_the_processor(clip: Clip, tiny_models_dir: Path) -> None:
    from transformers import CLIPImageProcessor

    ramp = np.linspace(0, 255, 352, dtype=np.float32)
    tile = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.tile(ramp, (352, 1)), np.full((352, 352), 90.0)], axis=-1
    )
    tiles = tile.astype(np.uint8)[None]
    ours = clip.pixel_values(tiles)
    stock = CLIPImageProcessor.from_pretrained(tiny_models_dir / "clip")(
        images=list(tiles), return_tensors="pt"
    )
    assert ours.shape == stock["pixel_values"].shape == (1, 3, 224, 224)
    assert float((ours - stock["pixel_values"]).abs().mean()) < 0.02
    assert clip.encode_images(tiles).shape == (1, 32)


def test_bad_tiles_and_missing_folder(clip: Clip, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="uint8"):
        clip.encode_images(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ModelNotFoundError, match="inspectd models pull"):
        Clip.load(tmp_path / "clip", CPU, half=False)
