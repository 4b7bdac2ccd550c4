"""SAM complexity is a property of the product: one figure per component, computed once per camera, refreshed
every N frames."""

from __future__ import annotations

from inspectd.pipeline.inspector import ComplexityCache


def test_cache_misses_first_then_hits_until_refresh():
    cache = ComplexityCache(refresh_frames=3)
    assert cache.get("cam") is None
    cache.put("cam", [2.5, 1.0])
    hits = [cache.get("cam") for _ in range(2)]
    assert hits == [[2.5, 1.0], [2.5, 1.0]]
    assert cache.get("cam") is None  # the third frame after a measurement re-measures
    cache.put("cam", [4.0])
    assert cache.get("cam") == [4.0]


def test_zero_refresh_means_never_and_cameras_are_separate():
    cache = ComplexityCache(refresh_frames=0)
    cache.put("a", [1.0])
    assert all(cache.get("a") == [1.0] for _ in range(100))
    assert cache.get("b") is None
    cache.invalidate("a")
    assert cache.get("a") is None


def test_disabled_cache_always_misses():
    cache = ComplexityCache(refresh_frames=0, enabled=False)
    cache.put("a", [1.0])
    assert cache.get("a") is None
