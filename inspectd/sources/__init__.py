"""Camera sources: each yields RGB uint8 Frames; ``run_source`` is the camera thread that reconnects them."""

from inspectd.sources.base import EndOfStream, FrameSource, PartIdLatch, parse_trigger
from inspectd.sources.runner import make_source, run_source

__all__ = ["EndOfStream", "FrameSource", "PartIdLatch", "make_source", "parse_trigger", "run_source"]
