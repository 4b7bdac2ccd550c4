"""Tile plans: hand-computed layouts plus seeded properties over random boxes, aspects and complexities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inspectd.config import TilingConfig
from inspectd.method.tiling import (
    Tile,
    count_tiles,
    expand_box,
    fit_to_input,
    input_region,
    limit_frame_tiles,
    plan_tiles,
    tiles_per_short_side,
)
from inspectd.method.tiling import TilingParams as TP

DEFAULT = TP()


def tiles_of(*args, **kwargs) -> list[Tile]:
    return plan_tiles(*args, **kwargs).tiles


def _coverage(tiles: list[Tile], image_hw: tuple[int, int]) -> np.ndarray:
    covered = np.zeros(image_hw, bool)
    for t in tiles:
        covered[t.y0 : t.y1, t.x0 : t.x1] = True
    return covered


def _random_case(rng: np.random.Generator) -> tuple[tuple[int, int, int, int], tuple[int, int], TP]:
    height, width = (int(v) for v in rng.integers(20, 700, size=2))
    w = int(rng.integers(1, width + 1))
    h = int(rng.integers(1, height + 1))
    x = int(rng.integers(0, width - w + 1))
    y = int(rng.integers(0, height - h + 1))
    cfg = TP(
        min_tile=int(rng.integers(16, 257)),
        max_tiles_per_component=int(rng.integers(1, 33)),
        overlap=float(rng.uniform(0.0, 0.85)),
        context=float(rng.uniform(0.0, 0.5)),
        complexity_split=float(rng.uniform(0.5, 16.0)),
    )
    return (x, y, w, h), (height, width), cfg


def test_tile_size_and_box() -> None:
    tile = Tile(10, 20, 110, 70, component=3)
    assert (tile.width, tile.height, tile.size, tile.box) == (100, 50, (100, 50), (10, 20, 110, 70))


@pytest.mark.parametrize(
    ("complexity", "n"), [(0.0, 1), (7.9, 1), (8.0, 2), (23.9, 2), (24.0, 4), (55.9, 4), (56.0, 8), (-3.0, 1)]
)
def test_tiles_per_short_side_doubles_at_split_steps(complexity: float, n: int) -> None:
    assert tiles_per_short_side(complexity, 8.0) == n


def test_tiles_per_short_side_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        tiles_per_short_side(float("nan"), 8.0)


def test_expand_box_adds_context_on_each_side_and_clips() -> None:
    # context 0.1 of 100 x 50 -> 10 px left/right, 5 px top/bottom; left edge clipped at 0
    assert expand_box((5, 20, 100, 50), (480, 640), 0.1) == (0, 15, 115, 75)
    assert expand_box((600, 450, 40, 30), (480, 640), 0.5) == (580, 435, 640, 480)


def test_expand_box_refuses_empty_box() -> None:
    with pytest.raises(ValueError, match="positive"):
        expand_box((0, 0, 0, 10), (100, 100), 0.1)


def test_small_simple_object_gets_one_centred_tile() -> None:
    # box grown to (96, 97)-(144, 133), 48 x 36; side = min_tile 96 centred: x 96 - 24, y 97 - 30
    tiles = tiles_of((100, 100, 40, 30), (480, 640), 0.0, DEFAULT, component=2)
    assert tiles == [Tile(72, 67, 168, 163, 2)]


def test_small_object_at_the_corner_is_shifted_inside() -> None:
    assert tiles_of((0, 0, 20, 20), (480, 640), 0.0, DEFAULT) == [Tile(0, 0, 96, 96, 0)]
    assert tiles_of((630, 470, 10, 10), (480, 640), 0.0, DEFAULT) == [Tile(544, 384, 640, 480, 0)]


def test_elongated_box_gets_tiles_along_the_long_side() -> None:
    cfg = TP(context=0.0, overlap=0.25, min_tile=96)
    # side = short side 200; along x: ceil((400 - 200) / 150) + 1 = 3 tiles at 0, 100, 200
    assert tiles_of((0, 0, 400, 200), (480, 640), 0.0, cfg) == [
        Tile(0, 0, 200, 200, 0),
        Tile(100, 0, 300, 200, 0),
        Tile(200, 0, 400, 200, 0),
    ]


def test_complex_object_gets_smaller_tiles() -> None:
    cfg = TP(context=0.0, overlap=0.25, min_tile=96, complexity_split=8.0)
    # complexity 16 -> n = 2; side = ceil(200 / 1.75) = 115
    # columns: ceil(285 / 86.25) + 1 = 5, rows: ceil(85 / 86.25) + 1 = 2
    tiles = tiles_of((0, 0, 400, 200), (480, 640), 16.0, cfg)
    assert len(tiles) == 10
    assert {t.size for t in tiles} == {(115, 115)}
    assert sorted({t.x0 for t in tiles}) == [0, 71, 142, 214, 285]
    assert sorted({t.y0 for t in tiles}) == [0, 85]


def test_component_budget_grows_the_side() -> None:
    cfg = TP(context=0.0, overlap=0.25, min_tile=96, complexity_split=8.0, max_tiles_per_component=4)
    # every side below 200 needs 2 rows and >= 3 columns; at 200: one row of 3 tiles
    tiles = tiles_of((0, 0, 400, 200), (480, 640), 16.0, cfg)
    assert [t.box for t in tiles] == [(0, 0, 200, 200), (100, 0, 300, 200), (200, 0, 400, 200)]


def test_image_smaller_than_min_tile_gives_the_whole_image() -> None:
    assert tiles_of((5, 5, 10, 10), (40, 60), 0.0, DEFAULT) == [Tile(0, 0, 40, 40, 0)]


def test_properties_over_random_boxes() -> None:
    rng = np.random.default_rng(2024)
    for _ in range(400):
        bbox, image_hw, cfg = _random_case(rng)
        height, width = image_hw
        complexity = float(rng.choice([0.0, rng.uniform(0, 200)]))
        tiles = tiles_of(bbox, image_hw, complexity, cfg, component=5)
        context = (bbox, image_hw, complexity, cfg)
        assert 1 <= len(tiles) <= cfg.max_tiles_per_component, context
        x, y, w, h = bbox
        assert _coverage(tiles, image_hw)[y : y + h, x : x + w].all(), context
        assert len({t.size for t in tiles}) == 1, context
        for t in tiles:
            assert t.component == 5
            assert 0 <= t.x0 < t.x1 <= width and 0 <= t.y0 < t.y1 <= height, (t, context)
            square = t.width == t.height
            spans_short_dimension = (t.height == height < t.width) or (t.width == width < t.height)
            assert square or spans_short_dimension, (t, context)


def test_count_grows_with_complexity() -> None:
    rng = np.random.default_rng(11)
    levels = [0.0, 0.5, 1.0, 4.0, 8.0, 16.0, 24.0, 50.0, 100.0, 400.0]
    for _ in range(200):
        bbox, image_hw, cfg = _random_case(rng)
        counts = [len(tiles_of(bbox, image_hw, c, cfg)) for c in levels]
        assert counts == sorted(counts), (bbox, image_hw, cfg, counts)


def test_small_simple_boxes_always_get_one_tile() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        cfg = TP(min_tile=int(rng.integers(32, 200)), context=float(rng.uniform(0, 0.3)))
        height, width = (int(v) for v in rng.integers(cfg.min_tile, 1000, size=2))
        limit = int(cfg.min_tile / (1 + 2 * cfg.context)) - 1  # box plus context stays within min_tile
        w, h = (int(v) for v in rng.integers(1, max(2, limit), size=2))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        complexity = float(rng.uniform(0, cfg.complexity_split * 0.99))
        assert len(tiles_of((x, y, w, h), (height, width), complexity, cfg)) == 1


def test_count_tiles_matches_layout() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        bbox, image_hw, cfg = _random_case(rng)
        tiles = tiles_of(bbox, image_hw, 0.0, cfg)
        side = max(tiles[0].size)
        region = expand_box(bbox, image_hw, cfg.context)
        assert count_tiles(region, image_hw, side, cfg.overlap) == len(tiles)


def test_limit_frame_tiles_leaves_plans_within_budget_alone() -> None:
    plans = [[Tile(0, 0, 96, 96, 0)], [Tile(100, 100, 196, 196, 1), Tile(150, 100, 246, 196, 1)]]
    assert limit_frame_tiles(plans, 3) == (plans, [])


def test_limit_frame_tiles_replans_the_largest_coarser() -> None:
    wide = [Tile(0, 0, 200, 200, 0), Tile(100, 0, 300, 200, 0), Tile(200, 0, 400, 200, 0)]
    small = [Tile(500, 300, 596, 396, 1)]
    # wide needs one tile fewer over (0, 0)-(400, 200): side 229 gives ceil(171 / 171.75) + 1 = 2 columns
    limited, dropped = limit_frame_tiles([wide, small], 3, overlap=0.25, image_hw=(480, 640))
    assert dropped == []
    assert limited == [[Tile(0, 0, 229, 229, 0), Tile(171, 0, 400, 229, 0)], small]


def test_limit_frame_tiles_drops_smallest_components_last() -> None:
    plans = [[Tile(0, 0, 100, 100, 0)], [Tile(200, 0, 250, 50, 1)], [Tile(300, 0, 380, 80, 2)]]
    assert limit_frame_tiles(plans, 2, image_hw=(480, 640)) == ([plans[0], [], plans[2]], [1])


def test_limit_frame_tiles_keeps_coverage_and_budget_over_random_frames() -> None:
    rng = np.random.default_rng(99)
    for _ in range(60):
        image_hw = (int(rng.integers(200, 700)), int(rng.integers(200, 700)))
        cfg = TP(min_tile=int(rng.integers(16, 96)), overlap=float(rng.uniform(0, 0.6)))
        plans = []
        for k in range(int(rng.integers(1, 6))):
            w, h = int(rng.integers(20, image_hw[1])), int(rng.integers(20, image_hw[0]))
            x, y = int(rng.integers(0, image_hw[1] - w + 1)), int(rng.integers(0, image_hw[0] - h + 1))
            plans.append(tiles_of((x, y, w, h), image_hw, float(rng.uniform(0, 60)), cfg, component=k))
        budget = int(rng.integers(1, 20))
        limited, _ = limit_frame_tiles(plans, budget, overlap=cfg.overlap, image_hw=image_hw)
        assert len(limited) == len(plans)
        assert sum(len(p) for p in limited) <= budget
        for before, after in zip(plans, limited, strict=True):
            assert len(after) <= len(before)
            if after:
                assert not (_coverage(before, image_hw) & ~_coverage(after, image_hw)).any()
                assert {t.component for t in after} == {before[0].component}


def test_params_match_the_config_fields() -> None:
    # The pipeline builds TilingParams from TilingConfig by name: every plan knob must exist on both sides.
    fields = set(TilingConfig.model_fields) - {"max_tiles_per_frame"}
    assert TP(input_size=352, **TilingConfig().model_dump(exclude={"max_tiles_per_frame"})).max_side == 704
    assert fields == set(TP.__dataclass_fields__) - {"input_size"}


def test_large_simple_part_gets_more_tiles_than_the_bound_allows_one() -> None:
    # A 1200 x 900 simple part: one tile would be shrunk 3.4x to 352 px; the 2x bound gives 704 px tiles.
    plan = plan_tiles((0, 0, 1200, 900), (960, 1280), 0.0, TP(context=0.0))
    assert not plan.capped and len(plan.tiles) == 4
    assert {t.size for t in plan.tiles} == {(704, 704)}


def test_cap_is_reported_when_it_breaks_the_bound() -> None:
    plan = plan_tiles((0, 0, 1200, 900), (960, 1280), 0.0, TP(context=0.0, max_tiles_per_component=2))
    assert plan.capped and len(plan.tiles) <= 2
    assert max(plan.tiles[0].size) > TP().max_side


PARAMS = st.builds(
    TP,
    input_size=st.sampled_from([224, 352]),
    max_downscale=st.floats(1.0, 4.0),
    min_tile=st.integers(16, 128),
    max_tiles_per_component=st.integers(1, 64),
    overlap=st.floats(0.0, 0.6),
    context=st.floats(0.0, 0.3),
    complexity_split=st.floats(1.0, 16.0),
)


@settings(max_examples=150, deadline=None)
@given(
    w=st.integers(8, 1500),
    h=st.integers(8, 1500),
    complexity=st.floats(0.0, 100.0),
    params=PARAMS,
)
def test_twice_as_large_never_gets_fewer_tiles(w: int, h: int, complexity: float, params: TP) -> None:
    # No context margin: it is rounded up to whole pixels, so a box twice as large would not have a region
    # exactly twice as large; with it the count can differ by the rounding alone.
    params = TP(**{**params.__dict__, "context": 0.0})
    image_hw = (4 * 1500, 4 * 1500)  # room for both, so only the part's size differs
    small = plan_tiles((10, 10, w, h), image_hw, complexity, params)
    large = plan_tiles((10, 10, 2 * w, 2 * h), image_hw, complexity, params)
    assume(not large.capped and not small.capped)
    assert len(large.tiles) >= len(small.tiles)


@settings(max_examples=150, deadline=None)
@given(
    w=st.integers(8, 3000),
    h=st.integers(8, 3000),
    complexity=st.floats(0.0, 100.0),
    params=PARAMS,
)
def test_downsampling_stays_within_the_bound_unless_capped(
    w: int, h: int, complexity: float, params: TP
) -> None:
    image_hw = (3200, 3200)
    plan = plan_tiles((50, 50, w, h), image_hw, complexity, params)
    assert 1 <= len(plan.tiles) <= params.max_tiles_per_component
    largest = max(max(t.size) for t in plan.tiles)
    bound = max(params.max_side, params.min_tile)
    assert plan.capped or largest <= bound
    if plan.capped:
        assert largest > params.max_side


def test_a_tile_spanning_a_narrow_frame_keeps_its_aspect_in_the_model_input() -> None:
    assert fit_to_input(490, 300, 352) == (352, 216)  # 300 * 352 / 490 = 215.51
    assert fit_to_input(200, 669, 352) == (105, 352)
    assert fit_to_input(352, 352, 352) == (352, 352) and fit_to_input(96, 96, 352) == (352, 352)
    assert input_region((352, 352), (352, 216), 352) == (216, 352)
    assert input_region((88, 88), (352, 216), 352) == (54, 88)  # a map at a quarter of the input's resolution
    with pytest.raises(ValueError, match="must be positive"):
        fit_to_input(0, 10, 352)


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(8, 1024))
def test_fitted_tiles_fill_the_input_on_their_long_side_and_keep_their_aspect(
    w: int, h: int, size: int
) -> None:
    fw, fh = fit_to_input(w, h, size)
    assert max(fw, fh) == size and 1 <= min(fw, fh) <= size
    # within half a pixel of the exact aspect on the short side (or clamped to 1 px)
    exact = min(w, h) * size / max(w, h)
    assert abs(min(fw, fh) - exact) <= 0.5 or min(fw, fh) == 1
