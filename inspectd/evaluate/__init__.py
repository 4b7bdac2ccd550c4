"""Measured quality: benchmark layouts, the field's metrics, the evaluation loop and its reports."""

from inspectd.evaluate.metrics import PixelAccumulator, image_metrics
from inspectd.evaluate.runner import EvalResult, PreparedScorer, Scored, Scorer, run_eval

__all__ = [
    "EvalResult",
    "PixelAccumulator",
    "PreparedScorer",
    "Scored",
    "Scorer",
    "image_metrics",
    "run_eval",
]
