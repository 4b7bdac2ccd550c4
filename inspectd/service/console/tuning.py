"""Threshold previews: what recent parts would get at other thresholds, recomputed from their stored scores
and anomaly maps with the same rule the inspector uses (score >= image threshold, or a defect region).

Only parts judged like the newest one (same mode, same models, same reference bank) are counted: a rebuilt bank
sets a new score scale, so scores from before it would mislead the new thresholds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from inspectd.method.verdict import decide, defect_regions


@dataclass(frozen=True)
class Proposal:
    """A camera's thresholds to try."""

    image_threshold: float
    pixel_threshold: float
    min_defect_area: int


def load_map(data: bytes) -> np.ndarray:
    """A stored 16-bit map PNG back to float32 values in [0, 1]."""
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError("stored anomaly map is not a readable PNG")
    return raw.astype(np.float32) / 65535.0


def verdict_at(record: dict[str, Any], amap: np.ndarray | None, p: Proposal) -> str:
    """The verdict a stored part gets at ``p``; without a stored map only the score decides."""
    scale = float(record.get("scale") or 1.0)
    defects = []
    if amap is not None:
        defects = defect_regions(amap, p.pixel_threshold, max(1, round(p.min_defect_area * scale * scale)))
    return decide(float(record["score"]), defects, p.image_threshold)


def scoring_of(record: dict[str, Any]) -> tuple[Any, ...]:
    """What made a part's score comparable with another's: the camera's mode and the models (and bank) used."""
    return record.get("mode"), tuple(sorted((record.get("models") or {}).items()))


def preview(
    records: list[dict[str, Any]],
    read_map: Callable[[str], bytes | None],
    current: Proposal,
    proposed: Proposal,
) -> dict[str, Any]:
    """Each judged part's verdict now and at the proposal, the parts that flip, and both fail rates; ``records``
    newest first, and those scored otherwise than the newest judged part are only counted as ``left_out``."""
    parts, flips = [], []
    judged = [r for r in records if r["verdict"] != "error" and r.get("score") is not None]
    basis = scoring_of(judged[0]) if judged else None
    left_out = 0
    for record in judged:
        if scoring_of(record) != basis:
            left_out += 1
            continue
        data = read_map(record["id"])
        amap = load_map(data) if data is not None else None
        now, then = verdict_at(record, amap, current), verdict_at(record, amap, proposed)
        part = {
            "id": record["id"],
            "part_id": record.get("part_id"),
            "seq": record["seq"],
            "score": record["score"],
            "recorded": record["verdict"],
            "now": now,
            "proposed": then,
            "map": amap is not None,
        }
        parts.append(part)
        if now != then:
            flips.append(part)
    n = len(parts)
    return {
        "parts": n,
        "left_out": left_out,
        "current": current.__dict__,
        "proposed": proposed.__dict__,
        "fail_rate_now": round(sum(p["now"] == "fail" for p in parts) / n, 4) if n else None,
        "fail_rate_proposed": round(sum(p["proposed"] == "fail" for p in parts) / n, 4) if n else None,
        "flips": flips,
        "all": parts,
    }
