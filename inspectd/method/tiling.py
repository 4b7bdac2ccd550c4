"""Tiles per foreground component, sized by the component, shaped by its aspect ratio, refined by its complexity.

Size: a tile is never more than ``max_downscale`` times the network input, so a large component gets more
tiles and small defects stay visible at CLIPSeg's input resolution. Aspect ratio: the long side gets as many
tiles as its length needs. Complexity: more SAM parts split the short side into more tiles on top. All
functions are pure: boxes and plain numbers in, tiles out (the pipeline reports caps and dropped components).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, half-open


@dataclass(frozen=True)
class Tile:
    """A half-open box ``[x0, x1) x [y0, y1)`` in frame pixels cut for one component."""

    x0: int
    y0: int
    x1: int
    y1: int
    component: int

    @property
    def width(self) -> int:
        """Tile width in pixels."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Tile height in pixels."""
        return self.y1 - self.y0

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, the order ``cv2.resize`` takes; equal for every tile of a square plan."""
        return self.width, self.height

    @property
    def box(self) -> Box:
        """``(x0, y0, x1, y1)``."""
        return self.x0, self.y0, self.x1, self.y1


@dataclass(frozen=True)
class TilingParams:
    """The numbers a tile plan depends on (the pipeline fills them from its settings and the loaded model)."""

    input_size: int = 352
    max_downscale: float = 2.0
    min_tile: int = 96
    max_tiles_per_component: int = 16
    overlap: float = 0.25
    context: float = 0.1
    complexity_split: float = 8.0

    @property
    def max_side(self) -> int:
        """The largest tile side (frame pixels) the downsampling bound allows."""
        return max(1, math.floor(self.input_size * self.max_downscale))


@dataclass(frozen=True)
class TilePlan:
    """One component's tiles; ``capped`` when ``max_tiles_per_component`` forced tiles larger than
    ``max_downscale`` allows."""

    tiles: list[Tile]
    capped: bool = False


def tiles_per_short_side(complexity: float, complexity_split: float) -> int:
    """``n = 2 ** floor(log2(1 + complexity / complexity_split))``: 1 below ``split``, 2 from ``split``,
    4 from ``3 * split``, 8 from ``7 * split``; the tile count per side doubles at each step."""
    if not math.isfinite(complexity):
        raise ValueError(f"complexity must be a finite number, got {complexity}; check the SAM masks")
    return 2 ** math.floor(math.log2(1.0 + max(0.0, complexity) / complexity_split))


def expand_box(bbox: tuple[int, int, int, int], image_hw: tuple[int, int], context: float) -> Box:
    """Component box ``(x, y, w, h)`` grown by ``context`` times its width/height on each side, clipped to
    the image, as a half-open ``(x0, y0, x1, y1)``."""
    x, y, w, h = bbox
    height, width = image_hw
    if w <= 0 or h <= 0 or height <= 0 or width <= 0:
        raise ValueError(f"bbox {bbox} and image size {image_hw} must have positive sides")
    mx, my = math.ceil(context * w), math.ceil(context * h)
    box = max(0, x - mx), max(0, y - my), min(width, x + w + mx), min(height, y + h + my)
    if box[0] >= box[2] or box[1] >= box[3]:
        raise ValueError(f"bbox {bbox} lies outside the {width}x{height} image")
    return box


def _axis_count(length: int, extent: int, side: int, overlap: float) -> int:
    tile_len = min(side, extent)
    if length <= tile_len:
        return 1
    return math.ceil((length - tile_len) / (tile_len * (1.0 - overlap))) + 1


def _axis_starts(start: int, length: int, extent: int, side: int, overlap: float) -> tuple[list[int], int]:
    """Tile starts along one axis and the tile length there (``side``, or the whole extent if smaller)."""
    tile_len = min(side, extent)
    count = _axis_count(length, extent, side, overlap)
    if count == 1:
        centred = start + (length - tile_len) // 2
        return [min(max(centred, 0), extent - tile_len)], tile_len
    return [start + round(i * (length - tile_len) / (count - 1)) for i in range(count)], tile_len


def count_tiles(region: Box, image_hw: tuple[int, int], side: int, overlap: float) -> int:
    """How many tiles of ``side`` cover ``region`` with at least ``overlap`` shared between neighbours."""
    x0, y0, x1, y1 = region
    return _axis_count(x1 - x0, image_hw[1], side, overlap) * _axis_count(y1 - y0, image_hw[0], side, overlap)


def layout_tiles(
    region: Box, image_hw: tuple[int, int], side: int, overlap: float, component: int
) -> list[Tile]:
    """Cover ``region`` with a grid of ``side`` squares spread evenly (neighbours share at least ``overlap``),
    a single tile centred on it when it fits, shifted to stay inside the image.

    Tiles are square unless ``side`` exceeds an image dimension; there they span that whole dimension.
    """
    x0, y0, x1, y1 = region
    xs, tw = _axis_starts(x0, x1 - x0, image_hw[1], side, overlap)
    ys, th = _axis_starts(y0, y1 - y0, image_hw[0], side, overlap)
    return [Tile(x, y, x + tw, y + th, component) for y in ys for x in xs]


def smallest_side(region: Box, image_hw: tuple[int, int], side: int, overlap: float, max_tiles: int) -> int:
    """The smallest side >= ``side`` whose grid over ``region`` has at most ``max_tiles`` tiles.

    The count never grows with the side and a side of the image's long dimension gives one tile, so a
    bisection finds it.
    """
    low, high = side, max(side, *image_hw)
    if count_tiles(region, image_hw, low, overlap) <= max_tiles:
        return low
    while high - low > 1:
        middle = (low + high) // 2
        if count_tiles(region, image_hw, middle, overlap) <= max_tiles:
            high = middle
        else:
            low = middle
    return high


def plan_tiles(
    bbox: tuple[int, int, int, int],
    image_hw: tuple[int, int],
    complexity: float,
    params: TilingParams,
    component: int = 0,
) -> TilePlan:
    """Square tiles of one side covering a component's box ``(x, y, w, h)`` grown by ``params.context``.

    ``n`` tiles across the short side for the complexity (:func:`tiles_per_short_side`), neighbours sharing
    ``overlap``, give ``side = ceil(short / (1 + (n - 1) * (1 - overlap)))``; the side is then at most
    ``params.max_side`` (the downsampling bound: a larger component gets more tiles), at least ``min_tile``,
    and at most the image's short dimension. The long side gets as many tiles as its length needs (the aspect
    ratio). If that exceeds ``max_tiles_per_component`` the side grows until it fits (:func:`smallest_side`)
    and the plan is marked ``capped``.
    """
    region = expand_box(bbox, image_hw, params.context)
    short = min(region[2] - region[0], region[3] - region[1])
    n = tiles_per_short_side(complexity, params.complexity_split)
    side = math.ceil(short / (1.0 + (n - 1) * (1.0 - params.overlap)))
    side = max(params.min_tile, min(side, params.max_side))
    side = min(side, min(image_hw))
    fitted = smallest_side(region, image_hw, side, params.overlap, params.max_tiles_per_component)
    capped = fitted > side and fitted > params.max_side
    return TilePlan(layout_tiles(region, image_hw, fitted, params.overlap, component), capped)


def span(tiles: list[Tile]) -> Box:
    """The box ``(x0, y0, x1, y1)`` that ``tiles`` cover together (for a grid of tiles, their union)."""
    return (
        min(t.x0 for t in tiles),
        min(t.y0 for t in tiles),
        max(t.x1 for t in tiles),
        max(t.y1 for t in tiles),
    )


def limit_frame_tiles(
    plans: list[list[Tile]],
    max_tiles: int,
    overlap: float = 0.25,
    image_hw: tuple[int, int] | None = None,
) -> tuple[list[list[Tile]], list[int]]:
    """Fit a frame's tile plans (one list per component) into ``max_tiles`` in total.

    While over budget, the plan with the most tiles (the larger covered area on a tie) is replanned over the
    area it covered with the smallest larger side giving at least one tile fewer, so coverage is kept and only
    resolution is lost. When every plan is down to one tile and the frame is still over budget, the smallest
    components are dropped (their list becomes empty; their component indices are returned second, for the
    caller to report). Positions in the list are kept.
    Pass ``overlap`` and ``image_hw`` from the frame; without ``image_hw`` the frame is taken as the extent
    of the tiles given, which may make replanned tiles non-square sooner.
    """
    result = [list(plan) for plan in plans]
    if sum(len(plan) for plan in result) <= max_tiles:
        return result, []
    if image_hw is None:
        image_hw = (max(t.y1 for plan in result for t in plan), max(t.x1 for plan in result for t in plan))

    def area(plan: list[Tile]) -> int:
        x0, y0, x1, y1 = span(plan)
        return (x1 - x0) * (y1 - y0)

    while sum(len(plan) for plan in result) > max_tiles:
        i = max(range(len(result)), key=lambda k: (len(result[k]), area(result[k]) if result[k] else 0))
        plan = result[i]
        if len(plan) <= 1:
            break
        region = span(plan)
        side = smallest_side(region, image_hw, max(max(t.size) for t in plan), overlap, len(plan) - 1)
        result[i] = layout_tiles(region, image_hw, side, overlap, plan[0].component)
    excess = sum(len(plan) for plan in result) - max_tiles
    dropped: list[int] = []
    if excess > 0:
        kept = sorted((k for k in range(len(result)) if result[k]), key=lambda k: area(result[k]))
        for k in kept[:excess]:
            dropped.append(result[k][0].component)
            result[k] = []
    return result, dropped


def fit_to_input(width: int, height: int, size: int) -> tuple[int, int]:
    """``(width, height)`` a tile is resized to inside the square ``size`` model input: aspect ratio kept, longest
    side ``size``. A tile spanning a narrow frame is not square, and squashing it would thin out defects a few
    pixels wide along its long side; the rest of the input is padded (:func:`input_region` cuts it back off)."""
    if width <= 0 or height <= 0 or size <= 0:
        raise ValueError(f"tile {width}x{height} and input size {size} must be positive")
    scale = size / max(width, height)
    return max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))


def input_region(map_hw: tuple[int, int], fitted: tuple[int, int], size: int) -> tuple[int, int]:
    """``(rows, cols)`` of a model-resolution map (``map_hw``) that hold the tile placed top-left at ``fitted``
    (:func:`fit_to_input`) in the ``size`` input; the rest is padding."""
    width, height = fitted
    return max(1, round(height * map_hw[0] / size)), max(1, round(width * map_hw[1] / size))
