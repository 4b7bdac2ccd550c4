"""Where the networks run: the torch device and weight dtype chosen once from ``models.device``/``models.half``."""

from __future__ import annotations

from typing import Literal

import torch

from inspectd.errors import ConfigError


def select_device(preference: Literal["auto", "cpu", "cuda"]) -> torch.device:
    """cuda when available and allowed, else cpu; an explicit 'cuda' without a GPU is a config error."""
    if preference == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if preference == "cuda" and not available:
        raise ConfigError(
            f"models.device = 'cuda' but torch {torch.__version__} sees no CUDA device (built for CUDA "
            f"{torch.version.cuda or 'none'}); check `nvidia-smi`, install the CUDA torch wheel (README, GPU "
            "install), or set models.device = 'auto' or 'cpu'"
        )
    return torch.device("cuda") if available else torch.device("cpu")


def weight_dtype(device: torch.device, half: bool) -> torch.dtype:
    """fp16 on cuda when half is asked for; fp32 everywhere else (fp16 on cpu is slow and inexact)."""
    return torch.float16 if half and device.type == "cuda" else torch.float32
