"""imagecodec: every array shape/depth to RGB uint8, bytes to RGB with limits, clear errors for bad files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspectd.errors import ImageError
from inspectd.imaging.codec import (
    ImageTooLargeError,
    decode_image,
    encode_image,
    header_size,
    read_image,
    to_rgb8,
)


def test_gray_becomes_three_equal_channels() -> None:
    gray = np.array([[0, 10], [200, 255]], dtype=np.uint8)
    out = to_rgb8(gray)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[1, 0].tolist() == [200, 200, 200]
    assert to_rgb8(gray[:, :, None])[0, 1].tolist() == [10, 10, 10]


def test_uint16_keeps_top_byte() -> None:
    arr = np.array([[0, 255, 256, 65535]], dtype=np.uint16)
    assert to_rgb8(arr)[0, :, 0].tolist() == [0, 0, 1, 255]


def test_float_is_scaled_from_unit_range_and_clipped() -> None:
    arr = np.array([[0.0, 0.5, 1.0, 2.0, -1.0]], dtype=np.float32)
    assert to_rgb8(arr)[0, :, 0].tolist() == [0, 128, 255, 255, 0]


def test_bgr_and_alpha_orders() -> None:
    bgra = np.zeros((1, 1, 4), np.uint8)
    bgra[0, 0] = [1, 2, 3, 99]
    assert to_rgb8(bgra, bgr=True)[0, 0].tolist() == [3, 2, 1]
    assert to_rgb8(bgra)[0, 0].tolist() == [1, 2, 3]


def test_bad_shapes_and_types_are_refused() -> None:
    with pytest.raises(ImageError, match="shape"):
        to_rgb8(np.zeros((2, 2, 2), np.uint8), "cam1")
    with pytest.raises(ImageError, match="int32"):
        to_rgb8(np.zeros((2, 2), np.int32))


def _png(rgb: np.ndarray) -> bytes:
    return encode_image(rgb, "png", 0)


def test_png_round_trip_is_exact_and_rgb() -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 250  # red
    rgb[1, 2] = [0, 0, 255]
    data = _png(rgb)
    assert header_size(data) == (5, 4)
    out = decode_image(data, 100)
    assert np.array_equal(out, rgb)


def test_jpeg_header_size_and_colour() -> None:
    rgb = np.full((16, 24, 3), (255, 0, 0), np.uint8)
    data = encode_image(rgb, "jpeg", 95)
    assert header_size(data) == (24, 16)
    out = decode_image(data, 10_000)
    assert out.shape == (16, 24, 3)
    assert out[8, 12, 0] > 240 and out[8, 12, 2] < 15


def test_too_large_names_the_config_key() -> None:
    data = _png(np.zeros((10, 10, 3), np.uint8))
    decode_image(data, 100)
    with pytest.raises(ImageTooLargeError, match=r"pipeline\.max_image_pixels") as err:
        decode_image(data, 99, "cam1")
    assert "10x10 = 100 pixels" in str(err.value) and "99" in str(err.value)


def test_sixteen_bit_png_decodes_via_top_byte() -> None:
    arr = np.full((2, 2), 0x1234, np.uint16)
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    assert decode_image(buf.tobytes(), 100)[0, 0].tolist() == [0x12, 0x12, 0x12]


def test_garbage_and_truncated_data_are_image_errors() -> None:
    with pytest.raises(ImageError, match="cannot decode"):
        decode_image(b"not an image at all", 100)
    with pytest.raises(ImageError, match="0 bytes"):
        decode_image(b"", 100)
    jpeg = encode_image(np.full((32, 32, 3), 128, np.uint8), "jpeg", 90)
    with pytest.raises(ImageError, match="truncated"):
        decode_image(jpeg[: len(jpeg) // 2], 10_000)


def test_read_image_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(ImageError, match="does not exist") as err:
        read_image(tmp_path / "missing.png", 100)
    assert "missing.png" in str(err.value)
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path, 100)
    bad = tmp_path / "bad.png"
    bad.write_bytes(_png(np.zeros((8, 8, 3), np.uint8))[:30])
    with pytest.raises(ImageError, match=r"bad\.png"):
        read_image(bad, 100)
    good = tmp_path / "good.png"
    good.write_bytes(_png(np.full((3, 3, 3), 7, np.uint8)))
    assert read_image(good, 100)[2, 2].tolist() == [7, 7, 7]


def _big_tiff(width: int, height: int) -> bytes:
    """A small TIFF file (deflate-compressed zeros) that decodes to ``width`` x ``height`` pixels."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="TIFF", compression="tiff_adobe_deflate")
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "WEBP", "PPM"])
def test_every_format_is_refused_from_its_header_before_decoding(fmt) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (300, 200)).save(buf, format=fmt)
    with pytest.raises(ImageTooLargeError, match="300x200"):
        decode_image(buf.getvalue(), 100 * 100, "cam")
    assert decode_image(buf.getvalue(), 300 * 200).shape == (200, 300, 3)


def test_compressed_tiff_bomb_is_refused_without_allocating_it(tmp_path) -> None:
    """In a fresh process, so the peak RSS it reports belongs to this refusal alone."""
    import subprocess
    import sys

    path = tmp_path / "bomb.tif"
    path.write_bytes(_big_tiff(12000, 12000))  # 144 MP of zeros in well under 1 MB
    assert path.stat().st_size < 1_000_000
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from inspectd.imaging.codec import decode_image\n"
        "from inspectd.errors import ImageTooLargeError\n"
        "data = Path(sys.argv[1]).read_bytes()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    decode_image(data, 4_000_000, 'cam')\n"
        "except ImageTooLargeError as exc:\n"
        "    print('refused', exc)\n"
        "print('grown_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "refused" in out and "12000x12000" in out, out
    grown_mb = int(out.split("grown_kb")[1]) / 1024
    assert grown_mb < 16, f"peak RSS grew {grown_mb:.0f} MB while refusing the image"


def test_header_beyond_pillows_own_bomb_limit_is_too_large() -> None:
    with pytest.raises(ImageTooLargeError, match=r"pipeline\.max_image_pixels"):
        decode_image(_big_tiff(16000, 16000), 4_000_000, "cam")


def test_bytes_without_a_known_header_are_a_decode_error() -> None:
    with pytest.raises(ImageError, match="no readable header"):
        decode_image(b"GIF89a-no-really-not", 10_000)


@given(st.binary(max_size=4096))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_decode_or_raise_a_clean_image_error(data: bytes) -> None:
    try:
        out = decode_image(data, 64 * 64)
    except ImageError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[0] * out.shape[1] <= 64 * 64


@given(st.integers(1, 5000), st.integers(1, 5000), st.sampled_from(["PNG", "TIFF", "BMP", "JPEG"]))
@settings(max_examples=25, deadline=None)
def test_header_size_matches_what_was_written(width: int, height: int, fmt: str) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format=fmt)
    assert header_size(buf.getvalue()) == (width, height)
