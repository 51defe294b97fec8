"""Validate and normalise uploaded images before they are stored.

Every upload goes through :func:`normalize`. It refuses anything that is not a complete image of
acceptable size in an accepted format, applies the EXIF orientation, flattens to RGB and makes a JPEG
thumbnail. Pure Pillow and stdlib, so any worker can run it. It runs once per ingested image, so it is
written for speed: the pixels are decoded once, and a file that already is what we store (an upright
RGB JPEG, or a plain 8-bit RGB PNG) is kept byte for byte instead of being re-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageFile, UnidentifiedImageError

# Shown to users. TIFF is left out on purpose: its 16-bit, float, multi-band and multi-page variants do
# not map faithfully onto 8-bit RGB, and its many codecs are a large decoder surface for little gain.
ACCEPTED_FORMATS: dict[str, str] = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_OPEN_FORMATS = tuple(ACCEPTED_FORMATS)  # Pillow opens MPO (multi-picture JPEG) through "JPEG" too
_ACCEPTED_TEXT = ", ".join(ACCEPTED_FORMATS)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose does).
_T = Image.Transpose
_UPRIGHT = {2: _T.FLIP_LEFT_RIGHT, 3: _T.ROTATE_180, 4: _T.FLIP_TOP_BOTTOM, 5: _T.TRANSPOSE,
            6: _T.ROTATE_270, 7: _T.TRANSVERSE, 8: _T.ROTATE_90}
_RGB_SPACE_MODES = ("RGB", "RGBA", "RGBa", "P", "PA")  # their ICC profile still describes the RGB output
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 50 * 1024 * 1024  # larger files are refused before decoding
    max_pixels: int = 64_000_000  # width*height above this is a decompression bomb: refused before decoding
    thumbnail_size: int = 256  # longest side of the thumbnail


class ImageRejected(ValueError):
    """A file that is not an acceptable image; `reason` is a short machine code, str(exc) a sentence
    for people. Reasons: too_large, empty, unsupported_format, corrupt, truncated, pixel_limit."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # survives pickling (Celery results), which replays __init__ with self.args
        return (type(self), (self.reason, str(self)))


@dataclass(frozen=True)
class NormalizedImage:
    data: bytes  # what is stored: RGB image bytes
    format: str  # "JPEG" or "PNG": the format of `data`
    source_format: str  # the uploaded file's format, e.g. "WEBP" (a multi-picture JPEG counts as "JPEG")
    width: int  # after EXIF orientation
    height: int
    thumbnail: bytes  # JPEG, longest side <= thumbnail_size, RGB
    reencoded: bool  # False when `data` is the uploaded bytes unchanged


def normalize(data: bytes, limits: ImageLimits = ImageLimits()) -> NormalizedImage:
    """Check an upload and turn it into what is stored; raises ImageRejected for anything unusable.

    Cheap checks come first (size, header, pixel count), so hostile files cost almost nothing."""
    _check_bytes(data, limits)
    with _open(data) as img:
        width, height = img.size
        _check_pixels(width, height, limits)
        source = "JPEG" if img.format == "MPO" else img.format
        if source == "JPEG" and img.mode == "RGB" and _orientation(img) == 1:
            # Stored as uploaded, so only the thumbnail needs pixels: let libjpeg scale while decoding
            # (DCT scaling). Every byte is still entropy-decoded, so a truncated file is still caught.
            fit = _fit(width, height, limits.thumbnail_size)
            img.draft("RGB", (2 * fit[0], 2 * fit[1]))
            _load(img)
            return NormalizedImage(data, "JPEG", source, width, height, _thumbnail(img, fit), False)
        _load(img)
        orientation = _orientation(img)  # PNG keeps EXIF after the pixels: read it after load()
        upright = img.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else img
        width, height = upright.size
        thumb_fit = _fit(width, height, limits.thumbnail_size)
        if orientation == 1 and _is_plain_png(img, data):
            return NormalizedImage(data, "PNG", source, width, height, _thumbnail(img, thumb_fit), False)
        rgb = _to_rgb(upright)
        icc = img.info.get("icc_profile") if img.mode in _RGB_SPACE_MODES else None
        if source == "JPEG" or (source == "WEBP" and _webp_is_lossy(data)):
            fmt, options = "JPEG", {"quality": 95}
        else:  # lossless sources stay lossless; level 1 because speed matters more than size here
            fmt, options = "PNG", {"compress_level": 1}
        out = BytesIO()
        rgb.save(out, fmt, icc_profile=icc, **options)  # explicit: PNG would reuse a stale info profile
        return NormalizedImage(out.getvalue(), fmt, source, width, height, _thumbnail(rgb, thumb_fit), True)


def upright_rgb(data: bytes, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """The checks of `normalize` (size, format, pixel limits, completeness) and its EXIF orientation, without
    making anything to store: the pixels as RGB, for images that are only looked at (inference)."""
    _check_bytes(data, limits)
    with _open(data) as img:
        _check_pixels(*img.size, limits)
        _load(img)
        orientation = _orientation(img)
        upright = img.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else img
        rgb = _to_rgb(upright)
        return rgb.copy() if rgb is img else rgb  # the opened image is closed on leaving


def _check_bytes(data: bytes, limits: ImageLimits) -> None:
    if not data:
        raise ImageRejected("empty", "The file is empty.")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            "too_large", f"The file is {_human(len(data))}; files up to {_human(limits.max_bytes)} are accepted."
        )
    _check_webp(data, limits)


def thumbnail_jpeg(img: Image.Image, size: int) -> bytes:
    """JPEG (quality 85, RGB) of `img` scaled to fit a size x size box, like Image.thumbnail: keeps the
    aspect ratio and never upscales. Does not modify `img`."""
    return _thumbnail(_to_rgb(img), _fit(img.width, img.height, size))


def _thumbnail(rgb: Image.Image, fit: tuple[int, int]) -> bytes:
    if rgb.size != fit:  # reducing_gap: a cheap integer box reduction first, then a short bicubic pass
        rgb = rgb.resize(fit, Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = BytesIO()
    rgb.save(out, "JPEG", quality=85)
    return out.getvalue()


def _fit(width: int, height: int, size: int) -> tuple[int, int]:
    """The size that fits a size x size box keeping the aspect ratio, never larger than the original."""
    longest = max(width, height)
    if longest <= size:
        return width, height
    return max(1, round(width * size / longest)), max(1, round(height * size / longest))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten to 8-bit RGB; transparent areas become white (dropping alpha would expose whatever
    colour the transparent pixels happen to hold, often black)."""
    if img.mode.startswith("I") or img.mode == "F":  # 16-bit grey: convert() would clip, so scale
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", img.size, _WHITE)
        flat.paste(rgba, (0, 0), rgba)  # blends by alpha
        return flat
    return img if img.mode == "RGB" else img.convert("RGB")


def _open(data: bytes) -> ImageFile.ImageFile:
    """Parse the header only (no pixels yet), mapping failures to reasons."""
    try:
        return Image.open(BytesIO(data), formats=_OPEN_FORMATS)
    except _BOMB_ERRORS as exc:
        raise _too_many_pixels() from exc
    except UnidentifiedImageError:
        pass
    except MemoryError:
        raise
    except Exception as exc:  # any plugin error on hostile bytes means "not readable"
        raise _decode_error(exc) from exc
    try:  # Not one of ours. Ask Pillow what it is (header only) to give a useful message.
        with Image.open(BytesIO(data)) as other:
            known = other.format
    except Exception:
        known = None
    if known:
        raise ImageRejected("unsupported_format", f"{known} images are not accepted; use one of {_ACCEPTED_TEXT}.")
    raise ImageRejected("corrupt", f"The file is not an image that can be read; use one of {_ACCEPTED_TEXT}.")


def _load(img: Image.Image) -> None:
    """Decode all pixel data: proves the file is complete and intact."""
    try:
        img.load()
    except _BOMB_ERRORS as exc:
        raise _too_many_pixels() from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise _decode_error(exc) from exc


def _decode_error(exc: Exception) -> ImageRejected:
    """Pillow says "image file is truncated" (or "Truncated File Read") when the data runs out.
    "broken data stream" is not a cut: the codec met invalid data (seen for garbled, complete files)."""
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return _truncated()
    return ImageRejected("corrupt", "The image data is damaged and cannot be decoded.")


def _truncated() -> ImageRejected:
    return ImageRejected("truncated", "The image file is incomplete: its data ends early (was the upload cut off?).")


def _too_many_pixels() -> ImageRejected:
    return ImageRejected("pixel_limit", "The image has too many pixels to be decoded safely.")


def _check_pixels(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise ImageRejected(
            "pixel_limit",
            f"The image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"at most {limits.max_pixels / 1e6:g} megapixels are accepted.",
        )


def _orientation(img: Image.Image) -> int:
    """EXIF (or XMP) orientation, 1 when absent or unreadable: broken metadata is no reason to refuse pixels."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if value in _UPRIGHT else 1


def _is_plain_png(img: Image.Image, data: bytes) -> bool:
    """An 8-bit RGB PNG (IHDR bit depth 8, colour type 2), no transparency, one frame: already what we store."""
    return (img.format == "PNG" and img.mode == "RGB" and data[24:26] == b"\x08\x02"
            and "transparency" not in img.info and getattr(img, "n_frames", 1) == 1)


def _webp_chunks(data: bytes, pos: int = 12, end: int | None = None):
    """(fourcc, payload offset, payload size) of the RIFF chunks from `pos` (12: after the file header)."""
    end = len(data) if end is None else min(end, len(data))
    while pos + 8 <= end:
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        yield data[pos:pos + 4], pos + 8, size
        pos += 8 + size + (size & 1)


def _check_webp(data: bytes, limits: ImageLimits) -> None:
    """WebP needs checks before Pillow opens it: the decoder allocates its whole canvas on open, and on a
    cut file libwebp only says "could not create decoder object", while RIFF states the exact length."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return
    if int.from_bytes(data[4:8], "little") + 8 > len(data):
        raise _truncated()
    if size := _webp_size(data):
        _check_pixels(*size, limits)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (VP8X, lossy VP8 or lossless VP8L), None if it cannot be read."""
    if len(data) < 30:
        return None
    kind = data[12:16]
    if kind == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if kind == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _webp_is_lossy(data: bytes) -> bool:
    """The first image bitstream decides: "VP8 " is lossy (with an optional ALPH chunk), "VP8L" lossless."""
    for fourcc, start, size in _webp_chunks(data):
        if fourcc == b"ANMF":  # animation frame: 16 bytes of frame header, then the frame's own chunks
            for inner, _, _ in _webp_chunks(data, start + 16, start + size):
                if inner in (b"VP8 ", b"VP8L"):
                    return inner == b"VP8 "
        elif fourcc in (b"VP8 ", b"VP8L"):
            return fourcc == b"VP8 "
    return True


def _human(n: int) -> str:
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
