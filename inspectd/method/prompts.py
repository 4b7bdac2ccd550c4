"""WinCLIP's compositional prompt ensemble (Jeong et al., CVPR 2023): the tile-level anomaly score.

Every state word (normal or anomalous) is put into every template; the text embeddings of each class are
averaged into one direction, and a tile's probability of "anomalous" is a two-way softmax of its cosine
similarity to the two directions.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

#: WinCLIP's state words for a good part; ``{}`` is the object noun.
NORMAL_STATES: list[str] = [
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
]

#: WinCLIP's state words for a bad part.
ANOMALOUS_STATES: list[str] = [
    "damaged {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
]

#: WinCLIP's templates: CLIP's ImageNet templates picked for object photos plus the industrial ones.
TEMPLATES: list[str] = [
    "a cropped photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a dark photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
    "a photo of a {} for anomaly detection.",
]


def compositional_prompts(object_noun: str) -> tuple[list[str], list[str]]:
    """All state x template sentences for ``object_noun``: (normal, anomalous), state-major order."""
    noun = object_noun.strip()
    if not noun:
        raise ValueError("the object noun is empty; set cameras.<name>.object in the config, e.g. 'screw'")

    def sentences(states: list[str]) -> list[str]:
        return [template.format(state.format(noun)) for state in states for template in TEMPLATES]

    return sentences(NORMAL_STATES), sentences(ANOMALOUS_STATES)


def _unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero)."""
    norm = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.maximum(norm, 1e-12)


def class_embeddings(normal: np.ndarray, anomalous: np.ndarray) -> np.ndarray:
    """(2, D) class directions from (n, D) text embeddings: L2-normalise, average per class, normalise.

    Row 0 is normal, row 1 anomalous.
    """
    normal, anomalous = np.asarray(normal, np.float32), np.asarray(anomalous, np.float32)
    for name, embeds in (("normal", normal), ("anomalous", anomalous)):
        if embeds.ndim != 2 or embeds.shape[0] == 0:
            raise ValueError(
                f"{name} text embeddings must be a non-empty (n, D) array, got {tuple(embeds.shape)}"
            )
    if normal.shape[1] != anomalous.shape[1]:
        raise ValueError(
            f"normal and anomalous embeddings differ in width: {normal.shape[1]} vs {anomalous.shape[1]}"
        )
    return np.stack([_unit(_unit(e).mean(axis=0)) for e in (normal, anomalous)])


def anomaly_probability(image_embeds: np.ndarray, classes: np.ndarray, logit_scale: float) -> np.ndarray:
    """Per tile, ``softmax(logit_scale * cos(image, classes))[anomalous]``: a (T,) array in (0, 1).

    ``image_embeds`` is (T, D) (or (D,) for one tile), ``classes`` the (2, D) output of
    :func:`class_embeddings`; ``logit_scale`` is CLIP's learned scale, already exponentiated (~100).
    """
    image_embeds, classes = np.asarray(image_embeds, np.float32), np.asarray(classes, np.float32)
    if image_embeds.ndim == 1:
        image_embeds = image_embeds[None, :]
    if classes.ndim != 2 or classes.shape[0] != 2 or image_embeds.shape[-1] != classes.shape[-1]:
        raise ValueError(
            f"image embeddings {tuple(image_embeds.shape)} and class embeddings {tuple(classes.shape)} "
            "must be (T, D) and (2, D) from the same CLIP model"
        )
    cosine = _unit(image_embeds) @ _unit(classes).T
    # a two-way softmax is the logistic of the difference; this form never overflows
    return (1.0 / (1.0 + np.exp(-logit_scale * (cosine[:, 1] - cosine[:, 0])))).astype(np.float32)


def prompt_key(model_id: str, prompts: list[str]) -> str:
    """Stable sha256 hex of the model id and the ordered prompt list: the text-embedding cache key.

    Hashes the compact JSON ``{"model": model_id, "prompts": prompts}``, so no two different inputs share a
    byte string.
    """
    payload = json.dumps(
        {"model": model_id, "prompts": list(prompts)}, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
