"""CLIPSeg (Lüddecke & Ecker, CVPR 2022) via transformers' ``CLIPSegForImageSegmentation``, split in two.

``encode_tiles`` runs the CLIP vision model once per tile and keeps both what the decoder needs (the hidden
states at ``extract_layers``) and the projected image embedding WinCLIP scores with; ``decode`` then runs only the
light decoder once per (tile, prompt). Together they compute exactly what the stock ``forward`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspectd.errors import ImageError, ModelLoadError, ModelNotFoundError
from inspectd.models.device import weight_dtype
from inspectd.models.hashing import folder_digest, short_hash
from inspectd.models.layout import FIX_COMMANDS, is_random, missing_model_error

CLIPSEG_MEAN = (0.485, 0.456, 0.406)
CLIPSEG_STD = (0.229, 0.224, 0.225)
CLIPSEG_SIZE = 352


def resolve_pretrained(name_or_path: str | Path, what: str) -> tuple[Path, str]:
    """A local save_pretrained folder for a folder path or a hub id, and the name used in the model id.

    A hub id goes through ``huggingface_hub.snapshot_download`` (the local cache first), so released and local
    weights then share one ``from_pretrained(folder)`` path. Missing folders raise ModelNotFoundError.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists() or path.is_absolute() or text.startswith(".") or text.count("/") != 1:
        if not (path / "config.json").is_file():
            raise missing_model_error(path / "config.json" if path.is_dir() else path, what)
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise missing_model_error(path / "model.safetensors", f"{what} weights")
        return path, path.name
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(text))
    except Exception as exc:
        raise ModelNotFoundError(
            f"{what} {text!r} is neither a local folder nor reachable on the Hugging Face hub "
            f"({type(exc).__name__}: {' '.join(str(exc).split())}); {FIX_COMMANDS}"
        ) from exc
    return folder, text


def quiet_transformers() -> None:
    """Turn off transformers' tqdm bars: they would interleave with the JSON log lines journald reads."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def model_id(folder: Path, name: str) -> str:
    """``<name>@<sha12>`` over the folder's files: which weights produced a verdict."""
    return f"{name}@{short_hash(folder_digest(folder))}"


def read_image_stats(
    folder: Path, size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[int, torch.Tensor, torch.Tensor, float]:
    """Input side, mean, std and rescale factor from preprocessor_config.json (defaults where absent)."""
    config: dict[str, Any] = {}
    path = folder / "preprocessor_config.json"
    if path.is_file():
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    side = config.get("crop_size") if config.get("do_center_crop") else config.get("size", size)
    if isinstance(side, dict):
        side = side.get("height") or side.get("shortest_edge") or size
    mean_t = torch.tensor(config.get("image_mean", mean), dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(config.get("image_std", std), dtype=torch.float32).view(1, 3, 1, 1)
    return int(side), mean_t, std_t, float(config.get("rescale_factor", 1 / 255))


def normalize_pixels(
    tiles: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, rescale: float
) -> torch.Tensor:
    """Pixel values 0..255 (N, H, W, 3) on the device -> float32 (N, 3, H, W), rescaled and normalized."""
    x = tiles.permute(0, 3, 1, 2).to(torch.float32) * rescale
    return (x - mean.to(x.device)) / std.to(x.device)


def tokenize(tokenizer: Any, texts: list[str], device: torch.device) -> dict[str, torch.Tensor]:
    """CLIP token ids and attention mask for a prompt list, padded to the longest and on the device."""
    if not texts:
        raise ValueError("no prompts to encode")
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=77, return_tensors="pt")
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}


def load_pretrained(
    model_cls: Any,
    name_or_path: str | Path,
    what: str,
    device: torch.device,
    half: bool,
    image_defaults: tuple[int, tuple[float, ...], tuple[float, ...]],
) -> dict[str, Any]:
    """Model, tokenizer and image statistics of a save_pretrained folder (or hub id), on the device.

    One path for released and local random-weight folders; the keyword arguments of ClipSeg and Clip.
    """
    from transformers import CLIPTokenizer

    folder, name = resolve_pretrained(name_or_path, what)
    quiet_transformers()
    dtype = weight_dtype(device, half)
    try:
        model = model_cls.from_pretrained(folder)
        tokenizer = CLIPTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"{folder} is not a loadable {what} folder: {exc}; fetch it again with `inspectd models pull`"
        ) from exc
    model.to(device=device, dtype=dtype).eval()
    size, mean, std, rescale = read_image_stats(folder, *image_defaults)
    return {
        "model": model,
        "tokenizer": tokenizer,
        "model_id": model_id(folder, name),
        "random": is_random(folder),
        "input_size": size,
        "mean": mean,
        "std": std,
        "rescale": rescale,
        "device": device,
        "dtype": dtype,
    }


@dataclass
class TileFeatures:
    """One vision pass over a batch of tiles, reused by every prompt's decoder pass and by WinCLIP.

    ``activations`` stay on the model's device and dtype; ``image_embeds`` are float32 on cpu, like text features.
    """

    activations: list[torch.Tensor]
    image_embeds: torch.Tensor

    def __len__(self) -> int:
        return int(self.image_embeds.shape[0])


class LoadedClip:
    """What every loaded CLIP-family model keeps: the network, its tokenizer, id and image statistics."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str,
        random: bool,
        input_size: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        rescale: float,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.random = random
        self.input_size = input_size
        self.device = device
        self.dtype = dtype
        self._mean, self._std, self._rescale = mean.to(device), std.to(device), rescale


class ClipSeg(LoadedClip):
    """A loaded CLIPSeg: text features, one vision pass per tile batch, per-prompt sigmoid maps."""

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        self._extract_layers = list(model.config.extract_layers)
        self._interpolate = self.input_size != model.config.vision_config.image_size
        self.logit_scale = float(model.clip.logit_scale.detach().float().exp())
        self.projection_dim = int(model.config.projection_dim)

    @classmethod
    def load(cls, name_or_path: str | Path, device: torch.device, half: bool) -> ClipSeg:
        """Load a save_pretrained folder (or hub id) of CLIPSegForImageSegmentation with its tokenizer."""
        from transformers import CLIPSegForImageSegmentation

        return cls(
            **load_pretrained(
                CLIPSegForImageSegmentation,
                name_or_path,
                "CLIPSeg",
                device,
                half,
                (CLIPSEG_SIZE, CLIPSEG_MEAN, CLIPSEG_STD),
            )
        )

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """(T, D) projected text features (CLIPSeg's conditional embeddings), float32 on cpu."""
        out = self._model.clip.get_text_features(**tokenize(self._tokenizer, texts, self.device))
        return out.pooler_output.float().cpu()

    def pixel_values(self, tiles: np.ndarray) -> torch.Tensor:
        """uint8 RGB (N, S, S, 3) -> normalized (N, 3, S, S) on the device in the model dtype."""
        s = self.input_size
        if tiles.ndim != 4 or tiles.shape[1:] != (s, s, 3) or tiles.dtype != np.uint8:
            raise ImageError(f"CLIPSeg tiles must be uint8 (N, {s}, {s}, 3), got {tiles.dtype} {tiles.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device, non_blocking=True)
        return normalize_pixels(batch, self._mean, self._std, self._rescale).to(self.dtype)

    @torch.inference_mode()
    def encode_tiles(self, tiles: np.ndarray) -> TileFeatures:
        """One CLIP vision pass: decoder activations at extract_layers and projected image embeddings."""
        out = self._model.clip.get_image_features(
            pixel_values=self.pixel_values(tiles),
            interpolate_pos_encoding=self._interpolate,
            output_hidden_states=True,
        )
        activations = [out.hidden_states[i + 1] for i in self._extract_layers]
        return TileFeatures(activations=activations, image_embeds=out.pooler_output.float().cpu())

    def decode(self, feats: TileFeatures, cond: torch.Tensor, index: np.ndarray | None = None) -> np.ndarray:
        """Sigmoid maps float32 (n, P, S, S) on the host: tiles ``feats[index]`` (all if None) x P embeddings."""
        return self.decode_maps(feats, cond, index).cpu().numpy()

    @torch.inference_mode()
    def decode_maps(
        self, feats: TileFeatures, cond: torch.Tensor, index: np.ndarray | None = None
    ) -> torch.Tensor:
        """As :meth:`decode`, left on the device (float32), so the caller can reduce them before they cross."""
        acts = feats.activations
        if index is not None:
            idx = torch.as_tensor(np.asarray(index), dtype=torch.long, device=acts[0].device)
            acts = [a.index_select(0, idx) for a in acts]
        n, p = acts[0].shape[0], cond.shape[0]
        if cond.ndim != 2 or cond.shape[1] != self.projection_dim:
            raise ValueError(
                f"conditional embeddings must be (P, {self.projection_dim}), got {tuple(cond.shape)}"
            )
        if n == 0 or p == 0:
            return torch.zeros((n, p, self.input_size, self.input_size), device=self.device)
        repeated = [a.repeat_interleave(p, dim=0) for a in acts]
        conditional = cond.to(self.device, self.dtype).repeat(n, 1)
        logits = self._model.decoder(repeated, conditional).logits
        return torch.sigmoid(logits.float()).reshape(n, p, *logits.shape[-2:])
