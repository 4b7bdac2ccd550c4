"""Writes each inspection to a folder: a JSON record, the raw map (16-bit PNG) and a heatmap overlay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2

from inspectd.atomicfile import write_atomic
from inspectd.imaging.heatmap import map_to_png16, overlay
from inspectd.pipeline.inspector import InspectionResult


class FileSink:
    """One folder of results; file names come from the input's stem so reruns overwrite, never pile up."""

    def __init__(self, out_dir: Path, heatmap_max_side: int = 0) -> None:
        self.out_dir = out_dir
        self.heatmap_max_side = heatmap_max_side
        out_dir.mkdir(parents=True, exist_ok=True)

    def write(
        self, stem: str, result: InspectionResult, extra: dict[str, Any] | None = None
    ) -> dict[str, str]:
        """Write what a result has; returns the paths written, by kind."""
        written: dict[str, str] = {}
        record = result.verdict.model_dump(mode="json")
        record.update(extra or {})
        if result.anomaly_map is not None:
            path = self.out_dir / f"{stem}.map.png"
            write_atomic(path, map_to_png16(result.anomaly_map))
            written["map"] = str(path)
        if result.image is not None:
            rgb = overlay(result.image, result.anomaly_map, result.verdict.defects, self.heatmap_max_side)
            ok, buf = cv2.imencode(".png", rgb[..., ::-1])
            if ok:
                path = self.out_dir / f"{stem}.heatmap.png"
                write_atomic(path, buf.tobytes())
                written["heatmap"] = str(path)
        record["files"] = dict(written)
        path = self.out_dir / f"{stem}.json"
        write_atomic(path, (json.dumps(record, indent=2) + "\n").encode())
        written["record"] = str(path)
        return written
