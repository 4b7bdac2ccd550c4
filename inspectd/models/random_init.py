"""Random-weight models of the released architectures, written to disk in the released layout.

CLIP, CLIPSeg and SAM weights are not reachable offline. These folders let the daemon, the tests and the
benchmarks run the real loaders end to end: `full` has the released architectures (cost does not depend on the
weights), `tiny` the same classes at the real 352 input with few, narrow layers. Verdicts from either measure
only the plumbing; every folder carries a RANDOM_WEIGHTS marker saying so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from inspectd.errors import ModelLoadError
from inspectd.logs import get_logger
from inspectd.models.layout import RANDOM_MARKER, is_random
from inspectd.models.tokenizer import VOCAB_SIZE, write_clip_tokenizer

if TYPE_CHECKING:
    from transformers import CLIPConfig, CLIPSegConfig

Size = Literal["tiny", "full"]
KINDS = ("clipseg", "clip", "sam")
CLIPSEG_MEAN = [0.485, 0.456, 0.406]
CLIPSEG_STD = [0.229, 0.224, 0.225]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

_TINY_TEXT: dict[str, Any] = dict(
    vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
)
_TINY_VISION: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=2,
    image_size=224,
    patch_size=16,
)
# Explicit SAM dimensions: image size stays 1024 with 16 px patches so ResizeLongestSide and the decoder work.
SAM_TINY: dict[str, Any] = dict(
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=[],
    window_size=14,
    prompt_embed_dim=32,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_mlp_dim=64,
    decoder_num_heads=2,
    iou_head_hidden_dim=32,
)

log = get_logger("models.random_init")


def _marker(dest: Path, what: str) -> None:
    (dest / RANDOM_MARKER).write_text(
        f"{what} with RANDOM weights written by `inspectd models init-random`; verdicts from it measure only "
        "the plumbing. Replace with real weights: `inspectd models pull`.\n"
    )


def clipseg_config(size: Size) -> CLIPSegConfig:
    """CLIPSegConfig of CIDAS/clipseg-rd64-refined (full) or its narrow twin (tiny)."""
    from transformers import CLIPSegConfig

    if size == "full":
        return CLIPSegConfig(
            text_config={"vocab_size": VOCAB_SIZE},
            vision_config={"patch_size": 16, "image_size": 224},
            projection_dim=512,
            extract_layers=[3, 6, 9],
            reduce_dim=64,
            decoder_num_attention_heads=4,
            decoder_intermediate_size=2048,
            conditional_layer=0,
            use_complex_transposed_convolution=True,
        )
    return CLIPSegConfig(
        text_config=_TINY_TEXT,
        vision_config=_TINY_VISION,
        projection_dim=32,
        extract_layers=[1, 2],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
        conditional_layer=0,
        use_complex_transposed_convolution=True,
    )


def clip_config(size: Size) -> CLIPConfig:
    """CLIPConfig of OpenAI ViT-B/16 (full) or a narrow twin (tiny)."""
    from transformers import CLIPConfig

    if size == "full":
        return CLIPConfig(
            text_config={"vocab_size": VOCAB_SIZE},
            vision_config={"patch_size": 16, "image_size": 224},
            projection_dim=512,
        )
    return CLIPConfig(text_config=_TINY_TEXT, vision_config=_TINY_VISION, projection_dim=32)


def sam_config(size: Size) -> dict[str, Any]:
    """sam_config.json contents: the released vit_b architecture (full) or explicit small dimensions (tiny)."""
    return {"arch": "vit_b"} if size == "full" else dict(SAM_TINY)


def _check_size(size: str) -> None:
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")


def write_random_clipseg(dest: Path, size: Size, seed: int = 0) -> Path:
    """A CLIPSegForImageSegmentation save_pretrained folder with random weights, processor and tokenizer."""
    from transformers import CLIPSegForImageSegmentation, ViTImageProcessor

    _check_size(size)
    torch.manual_seed(seed)
    model = CLIPSegForImageSegmentation(clipseg_config(size)).eval()
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    ViTImageProcessor(
        do_resize=True,
        size={"height": 352, "width": 352},
        resample=2,
        image_mean=CLIPSEG_MEAN,
        image_std=CLIPSEG_STD,
    ).save_pretrained(dest)
    write_clip_tokenizer(dest)
    _marker(dest, f"CLIPSeg ({size})")
    return dest


def write_random_clip(dest: Path, size: Size, seed: int = 0) -> Path:
    """A CLIPModel save_pretrained folder with random weights, image processor and tokenizer."""
    from transformers import CLIPImageProcessor, CLIPModel

    _check_size(size)
    torch.manual_seed(seed)
    model = CLIPModel(clip_config(size)).eval()
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    side = model.config.vision_config.image_size
    CLIPImageProcessor(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    ).save_pretrained(dest)
    write_clip_tokenizer(dest)
    _marker(dest, f"CLIP ({size})")
    return dest


def write_random_sam(dest: Path, size: Size, seed: int = 0) -> Path:
    """A SAM folder (state dict *.pth + sam_config.json) with random weights, loadable by SamMasker.load."""
    from inspectd.models.sam import build_sam_from_config

    _check_size(size)
    config = sam_config(size)
    torch.manual_seed(seed)
    model = build_sam_from_config(config)
    dest.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), dest / f"sam_{config.get('arch', 'tiny')}_random.pth")
    (dest / "sam_config.json").write_text(json.dumps(config, indent=2) + "\n")
    _marker(dest, f"SAM ({size})")
    return dest


_WRITERS = {"clipseg": write_random_clipseg, "clip": write_random_clip, "sam": write_random_sam}


def init_random(models_dir: Path, size: Size, which: list[str] | None = None) -> list[Path]:
    """Write random clipseg/ and sam/ (and clip/ when asked) under models_dir; never overwrite real weights."""
    _check_size(size)
    which = list(which) if which is not None else ["clipseg", "sam"]
    unknown = sorted(set(which) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown model kind(s) {unknown}; choose from {list(KINDS)}")
    for kind in which:
        dest = models_dir / kind
        if dest.exists() and any(dest.iterdir()) and not is_random(dest):
            raise ModelLoadError(
                f"{dest} holds real weights (no {RANDOM_MARKER} file); refusing to overwrite it with random "
                f"ones. Move it away first, or point --models-dir elsewhere."
            )
    written = []
    for kind in which:
        dest = models_dir / kind
        tmp = models_dir / f".{kind}.random-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _WRITERS[kind](tmp, size)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        log.warning("random_weights_written", model=kind, size=size, path=str(dest))
        written.append(dest)
    return written
