"""Thumbnail geometry and Pillow handling on real images made in memory."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from dendrite_lite.media import images


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("size", "box", "method", "expected"),
    [
        ((1000, 500), (320, 240), "scale", ((320, 160), None)),
        ((500, 1000), (320, 240), "scale", ((120, 240), None)),
        ((1000, 500), (96, 96), "crop", ((192, 96), (48, 0, 144, 96))),
        ((100, 100), (320, 240), "scale", None),
        ((100, 100), (100, 100), "crop", None),
        # One side already smaller: cut the box's aspect out, no resize.
        ((50, 200), (96, 96), "crop", ((50, 200), (0, 75, 50, 125))),
    ],
)
def test_target_size(
    size: tuple[int, int],
    box: tuple[int, int],
    method: str,
    expected: tuple[tuple[int, int], tuple[int, int, int, int] | None] | None,
) -> None:
    assert images.target_size(*size, *box, method) == expected


def test_probe_reads_headers_only_and_limits_pixels() -> None:
    data = encode(Image.new("RGB", (300, 200)), "PNG")
    info = images.probe(data, 1_000_000)
    assert (info.format, info.width, info.height, info.frames) == ("PNG", 300, 200, 1)
    with pytest.raises(images.ImageTooLarge):
        images.probe(data, 300 * 200 - 1)


def test_animation_pixels_count_every_frame() -> None:
    frames = [Image.new("RGB", (100, 100), (i * 40, 0, 0)) for i in range(5)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert images.probe(data, 100_000).frames == 5
    with pytest.raises(images.ImageTooLarge):
        images.probe(data, 40_000)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_non_images(data: bytes) -> None:
    with pytest.raises(images.NotAnImage):
        images.probe(data, 1_000_000)


def test_unsupported_formats_are_not_images() -> None:
    with pytest.raises(images.NotAnImage, match="BMP"):
        images.probe(encode(Image.new("RGB", (10, 10)), "BMP"), 1_000_000)


def test_exif_orientation_swaps_the_displayed_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encode(Image.new("RGB", (400, 100)), "JPEG", exif=exif)
    info = images.probe(data, 1_000_000)
    assert (info.width, info.height) == (100, 400)
    thumb = images.thumbnail(data, 50, 50, "scale", False, 1_000_000)
    assert thumb is not None and (thumb.width, thumb.height) == (12, 50)


def test_transparent_png_keeps_alpha() -> None:
    data = encode(Image.new("RGBA", (200, 200), (0, 0, 0, 0)), "PNG")
    thumb = images.thumbnail(data, 32, 32, "crop", False, 1_000_000)
    assert thumb is not None and thumb.content_type == "image/png"
    with Image.open(io.BytesIO(thumb.data)) as image:
        assert image.mode == "RGBA" and image.size == (32, 32)
