"""Image probing and thumbnailing with Pillow: pure functions, run in a thread.

https://spec.matrix.org/latest/client-server-api/#thumbnails

- The format is what the bytes are, never what the uploader claimed: an HTML file sent
  as ``image/png`` is "not an image", not a crash.
- Decompression bombs: the header says how many pixels the image will decode into; more
  than the configured limit (summed over the frames of an animation) is refused before
  anything is decoded. Pillow's own global limit is replaced by this per-call one.
- "scale" fits the image inside the box, "crop" fills the box and cuts the overflow;
  never upscaled (the spec forbids it): when the original is no larger than the box,
  the caller serves the original.
- EXIF orientation is applied, so phone photos are not sideways.
- Animated GIF/WebP keep their animation only when asked (``animated=true``).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# Pillow is imported on first use, not with the server: ~3.5 MiB of RSS that a server
# nobody sends pictures to need not carry.


@functools.cache
def _pillow() -> None:
    from PIL import Image

    # Our limit is checked per call (see probe); Pillow's global one would only warn
    # below twice its value.
    Image.MAX_IMAGE_PIXELS = None


FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
# Frames an animated thumbnail keeps at most (a 10 000-frame GIF is a CPU bomb).
MAX_ANIMATED_FRAMES = 200
# The spec's recommended sizes, made when an image is uploaded.
RECOMMENDED_SIZES: tuple[tuple[int, int, str], ...] = (
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
)


class NotAnImage(Exception):
    """The bytes are not an image we thumbnail (or are corrupt)."""


class ImageTooLarge(Exception):
    """The image would decode into more pixels than allowed."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name: JPEG, PNG, GIF, WEBP
    width: int  # as displayed (EXIF orientation applied)
    height: int
    frames: int

    @property
    def content_type(self) -> str:
        return FORMATS[self.format]

    @property
    def animated(self) -> bool:
        return self.frames > 1


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    content_type: str
    width: int
    height: int


def _open(data: bytes) -> Image.Image:
    _pillow()
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(f"not an image: {exc}") from None
    if image.format not in FORMATS:
        raise NotAnImage(f"{image.format} images are not thumbnailed")
    return image


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    # Only JPEG carries EXIF in its header; asking a PNG for it decodes the pixels.
    if image.format != "JPEG":
        return width, height
    orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def probe(data: bytes, max_pixels: int) -> ImageInfo:
    """Format, displayed size and frame count, from the headers; checks the pixel limit
    before anything is decoded."""
    image = _open(data)
    with image:
        if image.width * image.height > max_pixels:
            raise ImageTooLarge(f"{image.width}x{image.height} is more than {max_pixels} pixels")
        try:
            return _probe_opened(image, max_pixels)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise NotAnImage(f"cannot read the image: {exc}") from None


def _probe_opened(image: Image.Image, max_pixels: int) -> ImageInfo:
    width, height = _oriented_size(image)
    frames = 1
    if getattr(image, "is_animated", False):
        # n_frames walks the frame headers; the per-frame size is already bounded.
        frames = int(getattr(image, "n_frames", 1))
        if width * height * min(frames, MAX_ANIMATED_FRAMES) > max_pixels:
            raise ImageTooLarge(f"{frames} frames of {width}x{height} is too many pixels")
    return ImageInfo(str(image.format), width, height, frames)


def target_size(
    width: int, height: int, box_w: int, box_h: int, method: str
) -> tuple[tuple[int, int], tuple[int, int, int, int] | None] | None:
    """(resized size, crop box in the resized image) or None when the original already
    fits the box (serve the original: never upscale)."""
    if width <= box_w and height <= box_h:
        return None
    if method == "scale":
        ratio = min(box_w / width, box_h / height)
        return (max(1, round(width * ratio)), max(1, round(height * ratio))), None
    ratio = max(box_w / width, box_h / height)
    if ratio >= 1:
        # One side is already smaller than the box: cut the box's aspect out of the
        # original without resizing.
        crop_w = min(width, math.floor(height * box_w / box_h))
        crop_h = min(height, math.floor(crop_w * box_h / box_w))
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        return (width, height), (left, top, left + crop_w, top + crop_h)
    resized = (max(box_w, math.ceil(width * ratio)), max(box_h, math.ceil(height * ratio)))
    left, top = (resized[0] - box_w) // 2, (resized[1] - box_h) // 2
    return resized, (left, top, left + box_w, top + box_h)


def _transform(
    frame: Image.Image, size: tuple[int, int], crop: tuple[int, int, int, int] | None
) -> Image.Image:
    from PIL import Image

    if frame.size != size:
        frame = frame.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if crop is not None:
        frame = frame.crop(crop)
    return frame


def thumbnail(
    data: bytes, box_w: int, box_h: int, method: str, animated: bool, max_pixels: int
) -> Thumbnail | None:
    """A thumbnail for the box, or None when the original should be served as it is."""
    info = probe(data, max_pixels)
    if animated and info.animated:
        plan = target_size(info.width, info.height, box_w, box_h, method)
        if plan is None:
            return None
        image = _open(data)
        try:
            with image:
                return _animated(image, info, *plan)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise NotAnImage(f"cannot decode the image: {exc}") from None
    return still_thumbnails(data, [(box_w, box_h, method)], max_pixels, info)[0]


def still_thumbnails(
    data: bytes,
    boxes: list[tuple[int, int, str]],
    max_pixels: int,
    info: ImageInfo | None = None,
) -> list[Thumbnail | None]:
    """Still thumbnails for several boxes from ONE decode (None: serve the original).

    A JPEG is decoded at the smallest DCT scale that still covers the largest box
    (Pillow's draft mode): a 12-megapixel photo need not be decoded whole for 800x600.
    """
    info = info or probe(data, max_pixels)
    plans = [target_size(info.width, info.height, w, h, method) for w, h, method in boxes]
    if info.animated:
        # A still of an animation is never the original (which would move).
        plans = [p if p is not None else ((info.width, info.height), None) for p in plans]
    if all(p is None for p in plans):
        return [None] * len(boxes)
    image = _open(data)
    try:
        with image:
            if info.format == "JPEG":
                need_w = max(p[0][0] for p in plans if p is not None)
                need_h = max(p[0][1] for p in plans if p is not None)
                if (info.width, info.height) != image.size:  # EXIF turns it by 90 degrees
                    need_w, need_h = need_h, need_w
                image.draft("RGB", (need_w, need_h))
            image.seek(0)
            from PIL import ImageOps

            frame = ImageOps.exif_transpose(image)
            frame.load()
            return [None if p is None else _static(frame, info, *p) for p in plans]
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise NotAnImage(f"cannot decode the image: {exc}") from None


def _static(
    frame: Image.Image,
    info: ImageInfo,
    size: tuple[int, int],
    crop: tuple[int, int, int, int] | None,
) -> Thumbnail:
    if info.format == "JPEG":
        out = _transform(frame.convert("RGB"), size, crop)
        buffer = io.BytesIO()
        out.save(buffer, "JPEG", quality=80, optimize=True)
        content_type = "image/jpeg"
    else:
        mode = "RGBA" if frame.mode in ("RGBA", "LA", "P", "PA") else "RGB"
        out = _transform(frame.convert(mode), size, crop)
        buffer = io.BytesIO()
        out.save(buffer, "PNG", optimize=False)
        content_type = "image/png"
    return Thumbnail(buffer.getvalue(), content_type, out.width, out.height)


def _animated(
    image: Image.Image,
    info: ImageInfo,
    size: tuple[int, int],
    crop: tuple[int, int, int, int] | None,
) -> Thumbnail:
    from PIL import ImageSequence

    frames: list[Image.Image] = []
    durations: list[int] = []
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= MAX_ANIMATED_FRAMES:
            break
        durations.append(int(frame.info.get("duration", 100)))
        frames.append(_transform(frame.convert("RGBA"), size, crop))
    buffer = io.BytesIO()
    fmt = "WEBP" if info.format == "WEBP" else "GIF"
    frames[0].save(
        buffer,
        fmt,
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=int(image.info.get("loop", 0)),
        disposal=2,
    )
    return Thumbnail(buffer.getvalue(), FORMATS[fmt], frames[0].width, frames[0].height)
