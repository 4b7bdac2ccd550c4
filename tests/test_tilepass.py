"""The tile pass: the prompt maps are reduced on the device exactly as the poster's harmonic mean does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from inspectd.method.fusion import harmonic_mean
from inspectd.models.clipseg import ClipSeg
from inspectd.models.tilepass import LocalTilePass, prompt_harmonic_mean

CPU = torch.device("cpu")


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 6), st.integers(1, 6)),
        elements=st.floats(0.0, 1.0, width=32),
    )
)
def test_prompt_harmonic_mean_equals_the_method(maps: np.ndarray) -> None:
    """Any sigmoid maps, zeros included: the torch reduction matches method.fusion.harmonic_mean."""
    got = prompt_harmonic_mean(torch.from_numpy(maps)).numpy()
    np.testing.assert_allclose(got, harmonic_mean(maps, axis=1), rtol=1e-5, atol=1e-9)


def test_prompt_harmonic_mean_refuses_no_prompts() -> None:
    with pytest.raises(ValueError, match="anomaly_prompts"):
        prompt_harmonic_mean(torch.zeros((2, 0, 4, 4)))


def test_local_tile_pass_fuses_each_tile_with_its_own_prompts(tiny_models_dir: Path) -> None:
    """Two tiles from two cameras with different prompt sets: each gets the harmonic mean of its own maps."""
    clipseg = ClipSeg.load(tiny_models_dir / "clipseg", CPU, half=False)
    tiles = np.random.default_rng(3).integers(0, 256, size=(2, 352, 352, 3), dtype=np.uint8)
    conds = [
        clipseg.encode_text(["a scratch", "a hole"]),
        clipseg.encode_text(["a stain", "a crack", "a dent"]),
    ]
    maps, embeds = LocalTilePass(clipseg, clipseg).run(tiles, conds, np.array([1, 0]))

    feats = clipseg.encode_tiles(tiles)
    for i, group in enumerate((1, 0)):
        expected = harmonic_mean(clipseg.decode(feats, conds[group], index=np.array([i])), axis=1)[0]
        np.testing.assert_allclose(maps[i], expected, rtol=1e-5, atol=1e-7)
    assert maps.dtype == np.float32 and embeds.shape[0] == 2
