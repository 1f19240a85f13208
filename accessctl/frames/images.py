"""Turning files and arrays into the one image format the pipeline uses.

Inside accessctl an image is always an ``H x W x 3`` ``uint8`` RGB array (MediaPipe and
the dlib network both want RGB). Files arrive as anything a phone, a scanner or an
admin's folder holds: grey, RGBA, 16-bit, EXIF-rotated JPEGs, 8K photos. All of them
are normalised here, once, and everything that cannot be becomes an :class:`ImageError`
that names the file and the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from struct import error as struct_error

import cv2
import numpy as np

from accessctl.errors import ImageError

# An 8K photo is 33 MP; a 100 MP limit leaves room for any camera and refuses
# decompression bombs before they allocate gigabytes.
MAX_PIXELS = 100_000_000
MAX_FILE_BYTES = 200 * 1024 * 1024
MIN_SIDE = 16
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".pbm", ".tif", ".tiff", ".webp"})

# EXIF orientation -> (rotation by k*90 degrees counter-clockwise, mirror first)
_ORIENTATION = {
    2: (0, True),
    3: (2, False),
    4: (2, True),
    5: (1, True),
    6: (3, False),
    7: (3, True),
    8: (1, False),
}


def _probe(path: Path) -> tuple[int, int, int]:
    """Size and EXIF orientation from the header, without decoding the pixels.

    Nothing is decoded whose size is not known first: a header Pillow cannot read, or
    one it calls a decompression bomb itself, is refused here (a 219 KB PNG can claim
    15000x15000 pixels, 3.9 GB once decoded)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # We refuse oversized images ourselves, with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                try:
                    orientation = int(im.getexif().get(0x0112, 1))
                except Exception:  # malformed EXIF must not make a good image unreadable
                    orientation = 1
                return width, height, orientation
    except Image.DecompressionBombError as exc:
        # Pillow's message carries the real pixel count ("Image size (N pixels) exceeds ...")
        got = re.search(r"\((\d+) pixels\)", str(exc))
        size = (
            f"{int(got.group(1)) // 1_000_000} megapixels"
            if got
            else f"over {2 * (Image.MAX_IMAGE_PIXELS or 0) // 1_000_000} megapixels"
        )
        raise ImageError(
            f"{path}: image is {size}; images over {MAX_PIXELS // 1_000_000} megapixels are refused"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct_error):
        raise ImageError(f"{path}: not an image, or a damaged or unsupported one (its size cannot be read)") from None


def to_rgb8(image: np.ndarray, *, channel_order: str = "RGB") -> np.ndarray:
    """Normalise any decoded array (grey, grey+alpha, RGB(A), 16-bit, float) to RGB uint8.

    ``channel_order`` says what a 3/4-channel array holds: ``"BGR"`` for OpenCV's decoders
    and video frames, ``"RGB"`` for arrays handed to the public API.
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected an image array, got {type(image).__name__}")
    if image.size == 0 or image.ndim not in (2, 3):
        raise ImageError(f"not an image: array of shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"not an image: {image.shape[2]} channels")
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        raise ImageError(f"image is too small ({image.shape[1]}x{image.shape[0]} pixels)")

    if image.dtype == np.uint8:
        img8 = image
    elif image.dtype == np.uint16:
        img8 = (image >> 8).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        finite = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if float(finite.max(initial=0.0)) <= 1.0 else 1.0
        img8 = np.clip(finite * scale, 0, 255).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.integer) or image.dtype == np.bool_:
        img8 = np.clip(image, 0, 255).astype(np.uint8)
    else:
        raise ImageError(f"unsupported pixel type {image.dtype}")

    if img8.ndim == 3 and img8.shape[2] == 1:
        img8 = img8[:, :, 0]
    if img8.ndim == 2:
        return np.ascontiguousarray(np.repeat(img8[:, :, None], 3, axis=2))
    channels = img8.shape[2]
    if channels == 2:  # grey + alpha: composite on white like a viewer would show it
        grey = _composite(img8[:, :, :1], img8[:, :, 1])
        return np.ascontiguousarray(np.repeat(grey, 3, axis=2))
    if channels == 4:
        img8 = _composite(img8[:, :, :3], img8[:, :, 3])
    if channel_order == "BGR":
        img8 = img8[:, :, ::-1]
    return np.ascontiguousarray(img8)


def _composite(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    if int(alpha.min()) == 255:
        return colour
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    return (colour.astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file into RGB uint8, upright as its EXIF orientation says."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"{path}: file is empty")
    if size > MAX_FILE_BYTES:
        raise ImageError(
            f"{path}: file is {size / 2**20:.0f} MiB; images over {MAX_FILE_BYTES // 2**20} MiB are refused"
        )

    width, height, orientation = _probe(path)
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{path}: image is {width}x{height} pixels; images over {MAX_PIXELS // 1_000_000} megapixels are refused"
        )
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        decoded = None
    if decoded is None:
        raise ImageError(f"{path}: not an image, or a damaged or unsupported one")
    image = to_rgb8(decoded, channel_order="BGR")

    rotate, mirror = _ORIENTATION.get(orientation, (0, False))
    if mirror:
        image = image[:, ::-1]
    if rotate:
        image = np.rot90(image, k=rotate)
    return np.ascontiguousarray(image)
