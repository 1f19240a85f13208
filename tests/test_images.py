from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from accessctl.errors import ImageError
from accessctl.frames.images import load_image, to_rgb8


def test_jpeg_loads_as_rgb_uint8(astronaut_path: Path) -> None:
    img = load_image(astronaut_path)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8 and img.flags["C_CONTIGUOUS"]
    bgr = cv2.imread(str(astronaut_path))
    assert np.array_equal(img, bgr[:, :, ::-1])


def test_grey_png(tmp_path: Path, astronaut: np.ndarray) -> None:
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    img = load_image(tmp_path / "g.png")
    assert img.shape == (512, 512, 3)
    assert np.array_equal(img[:, :, 0], grey) and np.array_equal(img[:, :, 2], grey)


def test_rgba_png_is_composited_on_white(tmp_path: Path, astronaut: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # a transparent corner
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (512, 512, 3)
    assert (img[:10, :10] == 255).all()
    assert np.array_equal(img[100:200, 100:200], astronaut[100:200, 100:200])


def test_16bit_png(tmp_path: Path, astronaut: np.ndarray) -> None:
    bgr16 = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "d.png"), bgr16)
    img = load_image(tmp_path / "d.png")
    assert img.dtype == np.uint8 and np.array_equal(img, astronaut)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotation_is_applied(tmp_path: Path, astronaut: np.ndarray, orientation: int) -> None:
    from PIL import ImageOps

    rect = astronaut[:, :400]  # not square, so a rotation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"r{orientation}.jpg"
    Image.fromarray(rect).save(path, exif=exif.tobytes(), quality=95)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    img = load_image(path)
    assert img.shape == expected.shape
    assert np.abs(img.astype(int) - expected.astype(int)).mean() < 2


def test_missing_empty_and_garbage_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("this is not a picture")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


def test_truncated_jpeg_is_refused_or_loaded_never_crashes(tmp_path: Path, astronaut_path: Path) -> None:
    data = astronaut_path.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:200])
    with pytest.raises(ImageError):
        load_image(tmp_path / "cut.jpg")


def test_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    Image.new("1", (12_000, 10_000)).save(tmp_path / "huge.png")  # 120 MP, a few kB on disk
    with pytest.raises(ImageError, match="megapixels"):
        load_image(tmp_path / "huge.png")


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few dozen bytes (a bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [15_000, 100_000])
def test_a_bomb_header_pillow_itself_refuses_is_never_decoded(tmp_path: Path, side: int) -> None:
    """Pillow raises its own bomb error above ~179 MP; that must mean "refused", not
    "size unknown, decode it anyway" (3.9 GB for a 15000x15000 claim)."""
    import resource

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(side, side))
    assert bomb.stat().st_size < 200
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match=f"image is {side * side // 1_000_000} megapixels"):  # its real size
        load_image(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing was decoded


def test_a_format_whose_size_cannot_be_read_is_refused(tmp_path: Path) -> None:
    hdr = tmp_path / "x.hdr"  # Radiance HDR: OpenCV decodes it, Pillow cannot size it
    cv2.imwrite(str(hdr), np.ones((64, 64, 3), np.float32))
    assert cv2.imread(str(hdr), cv2.IMREAD_UNCHANGED) is not None
    with pytest.raises(ImageError, match="size cannot be read"):
        load_image(hdr)


def test_tiny_image_is_refused(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "t.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        load_image(tmp_path / "t.png")


def test_to_rgb8_arrays() -> None:
    f = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    assert to_rgb8(f).dtype == np.uint8
    assert to_rgb8(np.zeros((32, 32, 2), np.uint8)).shape == (32, 32, 3)
    with pytest.raises(ImageError):
        to_rgb8(np.zeros((32, 32, 5), np.uint8))
    with pytest.raises(ImageError):
        to_rgb8(np.zeros((0, 3), np.uint8))
