"""The heatmap an operator looks at: the anomaly map coloured over the frame, defects boxed."""

from __future__ import annotations

import cv2
import numpy as np

from inspectd.frame import Defect


def overlay(
    image: np.ndarray,
    anomaly_map: np.ndarray | None,
    defects: list[Defect] = (),
    max_side: int = 0,
    alpha: float = 0.5,
) -> np.ndarray:
    """RGB uint8 overlay: JET colours where the map is above zero, defect boxes in white, optionally downscaled."""
    out = image.copy()
    if anomaly_map is not None:
        level = np.clip(anomaly_map, 0.0, 1.0)
        colours = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        weight = (alpha * (level > 0)).astype(np.float32)[..., None]
        out = (out * (1.0 - weight) + colours * weight).astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for d in defects:
        x, y, w, h = d.bbox
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), (255, 255, 255), thickness)
    if max_side and max(out.shape[:2]) > max_side:
        scale = max_side / max(out.shape[:2])
        size = (max(1, round(out.shape[1] * scale)), max(1, round(out.shape[0] * scale)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    return out


def map_to_png16(anomaly_map: np.ndarray) -> bytes:
    """The raw anomaly map as a 16-bit grayscale PNG (value / 65535 = score), lossless for downstream tools."""
    ok, buf = cv2.imencode(".png", np.round(np.clip(anomaly_map, 0.0, 1.0) * 65535).astype(np.uint16))
    if not ok:
        raise RuntimeError("OpenCV could not encode the anomaly map as PNG")
    return buf.tobytes()
