"""An optional separate CLIP (``transformers.CLIPModel``) for WinCLIP tile scores, when ``models.clip`` is set.

By default WinCLIP reuses the CLIP inside CLIPSeg (one vision pass per tile); this is the configurable
alternative, loaded through the same save_pretrained-folder-or-hub-id path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from inspectd.errors import ImageError
from inspectd.models.clipseg import LoadedClip, load_pretrained, normalize_pixels, tokenize

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224


class Clip(LoadedClip):
    """A loaded CLIP: projected text features and projected image embeddings of square tiles."""

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        self.logit_scale = float(model.logit_scale.detach().float().exp())

    @classmethod
    def load(cls, name_or_path: str | Path, device: torch.device, half: bool) -> Clip:
        """Load a save_pretrained folder (or hub id) of CLIPModel with its tokenizer and image statistics."""
        from transformers import CLIPModel

        return cls(
            **load_pretrained(CLIPModel, name_or_path, "CLIP", device, half, (CLIP_SIZE, CLIP_MEAN, CLIP_STD))
        )

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """(T, D) projected text features, float32 on cpu."""
        out = self._model.get_text_features(**tokenize(self._tokenizer, texts, self.device))
        return out.pooler_output.float().cpu()

    def pixel_values(self, tiles: np.ndarray) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) -> (N, 3, S, S): resized (bicubic, antialiased) to CLIP's input, normalized."""
        if tiles.ndim != 4 or tiles.shape[3] != 3 or tiles.dtype != np.uint8:
            raise ImageError(f"CLIP tiles must be uint8 (N, H, W, 3), got {tiles.dtype} {tiles.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device, non_blocking=True)
        x = batch.permute(0, 3, 1, 2).to(torch.float32)
        s = self.input_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp(0, 255)
        return normalize_pixels(x.permute(0, 2, 3, 1), self._mean, self._std, self._rescale).to(self.dtype)

    @torch.inference_mode()
    def encode_images(self, tiles: np.ndarray) -> torch.Tensor:
        """(N, D) projected image embeddings of uint8 RGB tiles, float32 on cpu."""
        out = self._model.get_image_features(pixel_values=self.pixel_values(tiles))
        return out.pooler_output.float().cpu()
