"""What the server and the daemon agree on: Triton model names and their tensors.

Every network takes pixels the line PC already resized (fixed shapes, so Triton's dynamic batcher can join
requests from many daemons) and returns arrays; preprocessing that needs no network stays on the line PC.
"""

from __future__ import annotations

INFO = "inspectd_info"
ISNET = "isnet"
TILES = "tiles"
CLIPSEG_TEXT = "clipseg_text"
CLIP_TEXT = "clip_text"
SAM = "sam"
BACKBONE = "backbone"

# the networks each ServeConfig.models entry serves
SERVED_BY = {
    "isnet": (ISNET,),
    "tiles": (TILES, CLIPSEG_TEXT, CLIP_TEXT),
    "sam": (SAM,),
    "backbone": (BACKBONE,),
}
