"""Camera sources: each yields RGB uint8 Frames; ``run_source`` is the camera thread that reconnects them."""

from inspectd.sources.base import EndOfStream, FrameSource
from inspectd.sources.runner import make_source, run_source
from inspectd.sources.triggers import Trigger, TriggerQueue, parse_trigger

__all__ = [
    "EndOfStream",
    "FrameSource",
    "Trigger",
    "TriggerQueue",
    "make_source",
    "parse_trigger",
    "run_source",
]
