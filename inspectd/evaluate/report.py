"""Evaluation outputs: the poster-style Markdown table, JSON and CSV metrics, per-image CSV, figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from inspectd.evaluate.metrics import mean_defined
from inspectd.evaluate.runner import METRICS, VERDICT_RATES, EvalResult

LABELS = {
    "image_auroc": "image AUROC",
    "image_ap": "image AP",
    "image_f1max": "image F1-max",
    "pixel_auroc": "pixel AUROC",
    "pixel_ap": "pixel AP",
    "pixel_f1max": "pixel F1-max",
    "pixel_aupro": "pixel AUPRO@0.3",
}
VERDICT_LABELS = {
    "good_passed": "good passed at the thresholds",
    "defect_failed": "defective failed at the thresholds",
}
UNDEFINED = "–"


def class_means(result: EvalResult) -> dict[str, float | None]:
    """Mean of each metric over the classes where it is defined."""
    return {m: mean_defined([c.metrics.get(m) for c in result.classes]) for m in METRICS}


def verdict_means(result: EvalResult) -> dict[str, float | None]:
    """Mean of each verdict rate over the classes where it is defined."""
    return {k: mean_defined([c.verdicts.get(k) for c in result.classes]) for k in VERDICT_RATES}


def _pct(v: float | None) -> str:
    return UNDEFINED if v is None else f"{100.0 * v:.1f}"


def markdown_table(result: EvalResult) -> str:
    """Metrics x classes in percent with one decimal and a Mean column, as the poster's table; '–' = undefined."""
    means = class_means(result)
    names = [c.name for c in result.classes]
    lines = ["| metric | " + " | ".join(names) + " | Mean |", "|---" * (len(names) + 2) + "|"]
    for m in METRICS:
        row = [_pct(c.metrics.get(m)) for c in result.classes] + [_pct(means[m])]
        lines.append(f"| {LABELS[m]} | " + " | ".join(row) + " |")
    vmeans = verdict_means(result)
    has_verdicts = any(v is not None for v in vmeans.values())
    if has_verdicts:
        for k in VERDICT_RATES:
            row = [_pct(c.verdicts.get(k)) for c in result.classes] + [_pct(vmeans[k])]
            lines.append(f"| {VERDICT_LABELS[k]} | " + " | ".join(row) + " |")
    counts = [
        (f"{c.n_good}/{c.n_defect}" + (f" (+{c.n_held_out} ref)" if c.n_held_out else ""))
        if c.evaluated
        else f"none of {c.n_good}/{c.n_defect}"
        for c in result.classes
    ]
    lines.append("| good/defect scored | " + " | ".join(counts) + " | |")
    lines.append(
        "| error verdicts (not scored) | " + " | ".join(str(c.n_errors) for c in result.classes) + " | |"
    )
    per_defect = [
        f"- {c.name}: "
        + ", ".join(f"{d} {_pct(v)}{_caught(c.defect_caught.get(d))}" for d, v in c.defect_auroc.items())
        for c in result.classes
        if c.defect_auroc and c.n_good
    ]
    notes = [f"- {c.name}: {'; '.join(c.notes)}" for c in result.classes if c.notes]
    s = result.settings
    footer = [
        "",
        f"{UNDEFINED} = undefined (a class without good or without defect images, or not evaluated). Pixel metrics "
        f"with each image's shorter side at {s['resolution']} px (aspect kept; a pixel counts as defective when any "
        f"ground-truth defect falls in it), all of a class's pixels pooled, {s['bins']} score bins; "
        f"AUPRO integrated to FPR {s['fpr_limit']} and normalised. Means are over the classes where a metric is "
        "defined.",
    ]
    if has_verdicts:
        footer += [
            "",
            "At the thresholds: the verdict each part got with the camera's `image_threshold`, `pixel_threshold` and "
            "`min_defect_area` (fail when the image score or a large enough defect region reaches them), as the "
            "daemon would publish it.",
        ]
    if per_defect:
        footer += [
            "",
            "Image AUROC of each defect type alone against the class's good images"
            + (" (caught: the share of that type failed at the thresholds):" if has_verdicts else ":"),
            "",
            *per_defect,
        ]
    return "\n".join(lines + footer + (["", *notes] if notes else [])) + "\n"


def _caught(v: float | None) -> str:
    return "" if v is None else f" (caught {_pct(v)})"


def write_reports(result: EvalResult, out: Path) -> dict[str, Path]:
    """Write metrics.md, metrics.json, metrics.csv, images.csv and figures/*.png into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        k: out / n
        for k, n in (
            ("markdown", "metrics.md"),
            ("json", "metrics.json"),
            ("csv", "metrics.csv"),
            ("images", "images.csv"),
        )
    }
    paths["markdown"].write_text(markdown_table(result))
    payload = {
        "settings": result.settings,
        "classes": {
            c.name: {
                "metrics": c.metrics,
                "good": c.n_good,
                "defect": c.n_defect,
                "held_out": c.n_held_out,
                "errors": c.n_errors,
                "defect_image_auroc": c.defect_auroc,
                "verdicts": c.verdicts,
                "defect_caught": c.defect_caught,
                "notes": c.notes,
                "seconds": round(c.seconds, 2),
            }
            for c in result.classes
        },
        "mean": {**class_means(result), **verdict_means(result)},
    }
    paths["json"].write_text(json.dumps(payload, indent=2, default=str))
    with paths["csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", *METRICS])
        for c in result.classes:
            w.writerow(
                [c.name, *("" if c.metrics.get(m) is None else f"{c.metrics[m]:.6f}" for m in METRICS)]
            )
        means = class_means(result)
        w.writerow(["mean", *("" if means[m] is None else f"{means[m]:.6f}" for m in METRICS)])
    with paths["images"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", "image", "label", "defect", "score", "verdict", "seconds"])
        for r in result.images:
            verdict = "" if r.failed is None else ("fail" if r.failed else "pass")
            w.writerow(
                [r.cls, str(r.image), r.label, r.defect, f"{r.score:.6f}", verdict, f"{r.seconds:.3f}"]
            )
    fig_dir = out / "figures"
    for i, f in enumerate(result.figures):
        fig_dir.mkdir(exist_ok=True)
        name = f"{f.cls.replace('/', '_')}_{f.kind}_{i:02d}_{f.image_path.stem}.png"
        cv2.imwrite(
            str(fig_dir / name), cv2.cvtColor(side_by_side(f.image, f.mask, f.amap), cv2.COLOR_RGB2BGR)
        )
    return paths


def side_by_side(image: np.ndarray, mask: np.ndarray, amap: np.ndarray) -> np.ndarray:
    """One RGB strip: the image, its ground truth (white), and the anomaly map as a JET overlay."""
    h = image.shape[0]
    gt = np.repeat((mask.astype(np.uint8) * 255)[:, :, None], 3, axis=2)
    heat = cv2.applyColorMap((np.clip(amap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    overlay = cv2.addWeighted(image, 0.5, heat, 0.5, 0.0)
    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([image, gap, gt, gap, overlay], axis=1)
