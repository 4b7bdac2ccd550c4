"""Image bytes and arrays in, RGB uint8 out: the one place that knows about encodings, bit depths and limits.

Conventions: 16-bit images are reduced to 8 bits by ``>> 8`` (the top byte; a 12-bit camera stored in 16 bits
therefore looks dark, which is what its data says); float images are taken as [0, 1] and clipped.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from inspectd.errors import ImageError, ImageTooLargeError

LIMIT_KEY = "pipeline.max_image_pixels"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def _where(source: str) -> str:
    return f"{source}: " if source else ""


def to_rgb8(arr: np.ndarray, source: str = "", *, bgr: bool = False) -> np.ndarray:
    """Normalise gray, 16-bit, float, RGBA or (with ``bgr=True``) OpenCV BGR/BGRA arrays to RGB uint8 (H, W, 3)."""
    if not isinstance(arr, np.ndarray):
        raise ImageError(f"{_where(source)}expected a numpy array, got {type(arr).__name__}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(
            f"{_where(source)}unsupported image shape {arr.shape}: expected HxW, HxWx1, HxWx3 or HxWx4"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{_where(source)}empty image of shape {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.uint16:
        out = (arr >> 8).astype(np.uint8)
    elif arr.dtype == np.bool_:
        out = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        out = np.rint(np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise ImageError(
            f"{_where(source)}unsupported pixel type {arr.dtype}: expected uint8, uint16 or float"
        )
    if out.ndim == 2:
        return np.ascontiguousarray(np.repeat(out[:, :, None], 3, axis=2))
    out = out[:, :, :3]
    if bgr:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def header_size(data: bytes, source: str = "") -> tuple[int, int]:
    """(width, height) from the image's header, read by Pillow without decoding the pixels.

    Raises ImageTooLargeError for sizes Pillow itself refuses, ImageError when no known format's header is
    there: such bytes are never handed to a decoder whose memory use nobody bounded.
    """
    try:
        with warnings.catch_warnings():
            # the caller applies pipeline.max_image_pixels to this size; Pillow's own warning would only add noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{_where(source)}{exc}; over {LIMIT_KEY}") from None
    except Exception as exc:  # Pillow raises many types for bad headers (OSError, SyntaxError, ValueError...)
        raise ImageError(
            f"{_where(source)}cannot decode {len(data)} bytes as an image: no readable header of a known "
            f"format ({type(exc).__name__})"
        ) from None
    return int(width), int(height)


def check_pixels(width: int, height: int, max_pixels: int | None, source: str = "") -> None:
    """Refuse an image larger than the configured pixel limit (None: no limit), naming the key that raises it."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{_where(source)}image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} ({LIMIT_KEY}); raise {LIMIT_KEY} in the config or send smaller images"
        )


def decode_image(data: bytes, max_pixels: int | None, source: str = "") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, BMP, TIFF...) to RGB uint8, refusing images over ``max_pixels``."""
    if not data:
        raise ImageError(f"{_where(source)}no image data (0 bytes)")
    if data.startswith(b"\xff\xd8") and b"\xff\xd9" not in data[-64:]:
        raise ImageError(f"{_where(source)}JPEG data is truncated (no end-of-image marker); resend the image")
    width, height = header_size(data, source)
    check_pixels(width, height, max_pixels, source)
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(
            f"{_where(source)}cannot decode {len(data)} bytes as an image (corrupt or unknown format)"
        )
    check_pixels(arr.shape[1], arr.shape[0], max_pixels, source)
    return to_rgb8(arr, source, bgr=True)


def collect_images(inputs: list[str]) -> list[Path]:
    """Image files named on a command line: folders give their image files (sorted), files pass as given.

    A missing or unreadable file is kept, so the caller reports it with the rest instead of dropping it.
    """
    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        else:
            files.append(p)
    return files


def read_image(path: Path, max_pixels: int | None) -> np.ndarray:
    """Read an image file to RGB uint8 with an ImageError naming the file when it is missing or corrupt.

    The one reader for files, used by `inspect`, the folder source, calibration and evaluation alike, so a
    16-bit, grey or RGBA image means the same everywhere. ``max_pixels`` None: no size limit (data sets).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: file does not exist") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path}: is a directory, not an image file") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror})") from exc
    return decode_image(data, max_pixels, str(path))


def encode_image(
    rgb: np.ndarray, fmt: Literal["jpeg", "png"] = "jpeg", quality: int = 90, png_level: int = 3
) -> bytes:
    """Encode an RGB uint8 image as JPEG (``quality`` 1-100) or PNG (lossless; ``quality`` is ignored;
    ``png_level`` 0-9 trades speed for size: 1 encodes a 1280x960 frame in about 60 % of the default 3's time)."""
    bgr = to_rgb8(rgb)[:, :, ::-1]
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    else:
        raise ImageError(f"unknown image format {fmt!r}: expected 'jpeg' or 'png'")
    if not ok:
        raise ImageError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return buf.tobytes()
