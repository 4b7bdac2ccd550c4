"""SAM automatic masks (Kirillov et al. 2023): how many parts an object has, for the poster's complexity step.

One load path for released and test weights: the architecture from ``sam_config.json`` (a released ``arch`` built
exactly as ``segment_anything.build_sam`` does, or explicit small dimensions), then ``torch.load`` +
``load_state_dict(strict=True)`` of the folder's ``*.pth``.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspectd.errors import ImageError, ModelLoadError
from inspectd.logs import get_logger
from inspectd.models.hashing import cached_sha256, short_hash
from inspectd.models.layout import is_random, missing_model_error

log = get_logger("models.sam")

RELEASED_ARCHS = ("vit_b", "vit_l", "vit_h")
_EXPLICIT_KEYS = {
    "encoder_embed_dim",
    "encoder_depth",
    "encoder_num_heads",
    "encoder_global_attn_indexes",
    "window_size",
    "prompt_embed_dim",
    "mask_in_chans",
    "decoder_depth",
    "decoder_mlp_dim",
    "decoder_num_heads",
    "iou_head_hidden_dim",
}
_REQUIRED_KEYS = {"encoder_embed_dim", "encoder_depth", "encoder_num_heads", "encoder_global_attn_indexes"}
IMAGE_SIZE = 1024
PATCH_SIZE = 16
# A 1280x960 frame with tiny random SAM on 2 CPU cores: 46 s at 16x16 points, 2 s at 4x4 (docs/benchmarks.md).
RANDOM_POINTS_PER_SIDE = 4


def build_sam_from_config(config: dict[str, Any]) -> torch.nn.Module:
    """An untrained ``Sam`` for a sam_config.json dict; released archs come from segment_anything's registry."""
    from segment_anything import sam_model_registry
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if "arch" in config:
        if config["arch"] not in RELEASED_ARCHS:
            raise ModelLoadError(
                f"sam_config.json: arch {config['arch']!r} is not one of {list(RELEASED_ARCHS)}"
            )
        return sam_model_registry[config["arch"]](checkpoint=None)
    unknown = set(config) - _EXPLICIT_KEYS
    missing = _REQUIRED_KEYS - set(config)
    if unknown or missing:
        raise ModelLoadError(
            f"sam_config.json: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
            f'use {{"arch": "vit_b"}} or explicit dimensions ({", ".join(sorted(_EXPLICIT_KEYS))})'
        )
    prompt_dim = config.get("prompt_embed_dim", 256)
    grid = IMAGE_SIZE // PATCH_SIZE
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=config["encoder_depth"],
            embed_dim=config["encoder_embed_dim"],
            img_size=IMAGE_SIZE,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=config["encoder_num_heads"],
            patch_size=PATCH_SIZE,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(config["encoder_global_attn_indexes"]),
            window_size=config.get("window_size", 14),
            out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=config.get("mask_in_chans", 16),
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=config.get("decoder_depth", 2),
                embedding_dim=prompt_dim,
                mlp_dim=config.get("decoder_mlp_dim", 2048),
                num_heads=config.get("decoder_num_heads", 8),
            ),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=config.get("iou_head_hidden_dim", 256),
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


class SamMasker:
    """SAM's automatic mask generator over an RGB crop; one call at a time (the predictor holds image state).

    Folders marked RANDOM_WEIGHTS get pred_iou_thresh and stability_score_thresh of 0 (filters off), because
    random weights never pass the released thresholds and the plumbing must still see masks. With the filters
    off every candidate mask is run-length encoded and copied, and random masks are ragged, so their grid is
    capped at RANDOM_POINTS_PER_SIDE: otherwise a benchmark with random SAM times that, not the network.
    """

    def __init__(self, generator: Any, model_id: str, random: bool, points_per_side: int) -> None:
        self._generator = generator
        self._lock = threading.Lock()
        self.model_id = model_id
        self.random = random
        self.points_per_side = points_per_side

    @classmethod
    def load(cls, folder: Path, device: torch.device, points_per_side: int) -> SamMasker:
        """Build the architecture from sam_config.json and load the folder's single *.pth strictly."""
        from segment_anything import SamAutomaticMaskGenerator

        folder = Path(folder)
        config_path = folder / "sam_config.json"
        if not config_path.is_file():
            raise missing_model_error(config_path if folder.is_dir() else folder, "SAM config")
        weights = sorted(folder.glob("*.pth"))
        if len(weights) != 1:
            found = ", ".join(p.name for p in weights) or "none"
            raise missing_model_error(
                folder / "*.pth", f"SAM checkpoint (exactly one *.pth expected, found {found})"
            )
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{config_path} is not valid JSON: {exc}") from exc
        model = build_sam_from_config(config)
        try:
            state = torch.load(weights[0], map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, EOFError) as exc:
            raise ModelLoadError(
                f"{weights[0]} does not match the architecture in {config_path} or is corrupt: {exc}. "
                "Fetch it again with `inspectd models pull`."
            ) from exc
        model.to(device).eval()
        random = is_random(folder)
        thresholds = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0} if random else {}
        if random and points_per_side > RANDOM_POINTS_PER_SIDE:
            log.warning(
                "sam_random_points_capped",
                folder=str(folder),
                points_per_side=points_per_side,
                used=RANDOM_POINTS_PER_SIDE,
                reason="random weights pass every candidate mask to post-processing; real weights filter them",
            )
            points_per_side = RANDOM_POINTS_PER_SIDE
        generator = SamAutomaticMaskGenerator(
            model, points_per_side=points_per_side, output_mode="binary_mask", **thresholds
        )
        model_id = f"{folder.name}@{short_hash(cached_sha256(weights[0]))}"
        return cls(generator, model_id, random, points_per_side)

    def masks(self, image: np.ndarray) -> list[np.ndarray]:
        """SAM's automatic masks of an RGB uint8 (H, W, 3) crop, as bool (H, W) arrays."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageError(f"SAM expects an RGB uint8 (H, W, 3) crop, got {image.dtype} {image.shape}")
        with self._lock, torch.inference_mode():
            records = self._generator.generate(np.ascontiguousarray(image))
        return [np.asarray(r["segmentation"], dtype=bool) for r in records]
