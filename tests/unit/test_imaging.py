"""handlers.imaging: every image here is made with Pillow (or by hand, for headers Pillow would refuse to
write), plus one real photograph that matplotlib ships. Pure functions: no services are needed."""

from __future__ import annotations

import importlib.resources
import io
import pickle
import random
import struct
import time
import warnings
import zlib

import pytest
from PIL import Image, ImageDraw

from handlers.imaging import (
    ACCEPTED_FORMATS,
    ImageLimits,
    ImageRejected,
    NormalizedImage,
    normalize,
    thumbnail_jpeg,
)

PHOTO = importlib.resources.files("matplotlib") / "mpl-data/sample_data/grace_hopper.jpg"
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
DEFAULT_LIMITS = ImageLimits()


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def close(actual, expected, tolerance=12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def assert_stored(result: NormalizedImage, fmt: str, size: tuple[int, int]) -> Image.Image:
    """`data` really is an RGB image of the claimed format and size; the thumbnail is a fitting RGB JPEG."""
    assert result.format == fmt
    stored = decode(result.data)
    assert (stored.format, stored.mode, stored.size) == (fmt, "RGB", size)
    assert (result.width, result.height) == size
    thumb = decode(result.thumbnail)
    assert (thumb.format, thumb.mode) == ("JPEG", "RGB")
    assert max(thumb.size) == min(256, max(size))
    return stored


def rejected(data: bytes, reason: str, limits: ImageLimits = DEFAULT_LIMITS) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        normalize(data, limits)
    exc = info.value
    assert exc.reason == reason
    assert isinstance(exc, ValueError)
    assert len(str(exc).split()) >= 3 and str(exc).endswith((".", "?"))  # a sentence for people, not a code
    return exc


def png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def png_1bit(width: int, height: int) -> bytes:
    """A 1-bit grey PNG of zeros, built row by row so that a huge one costs no memory to make."""
    rows = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed pixels
    idat = b"".join(rows.compress(row) for _ in range(height)) + rows.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but carries (almost) no pixels: what a bomb looks like to the parser."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def gradient(size: tuple[int, int]) -> Image.Image:
    """A smooth RGB picture: realistic entropy-coded data, unlike a flat colour."""
    grey = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (grey, grey.transpose(Image.Transpose.ROTATE_180), Image.new("L", size, 128)))


# -- images that are accepted ---------------------------------------------------------------------------


def test_real_photograph_is_stored_unchanged():
    data = PHOTO.read_bytes()
    result = normalize(data)
    assert result.data == data and not result.reencoded
    assert result.source_format == "JPEG"
    assert_stored(result, "JPEG", (512, 600))
    assert decode(result.thumbnail).size == (218, 256)


def test_png_with_alpha_is_flattened_onto_white():
    img = Image.new("RGBA", (64, 32), (0, 0, 0, 0))  # transparent black: dropping alpha would show black
    ImageDraw.Draw(img).rectangle((32, 0, 63, 31), fill=RED + (255,))
    img.putpixel((0, 31), BLUE + (128,))  # half transparent blue over white
    result = normalize(encode(img, "PNG"))
    assert result.reencoded and result.source_format == "PNG"
    stored = assert_stored(result, "PNG", (64, 32))
    assert stored.getpixel((5, 5)) == WHITE
    assert stored.getpixel((40, 5)) == RED
    assert close(stored.getpixel((0, 31)), (127, 127, 255), 2)


def test_palette_png_with_transparency_is_flattened_onto_white():
    img = Image.new("P", (40, 40), 0)
    img.putpalette([0, 0, 0, 255, 0, 0])  # index 0 black (transparent), index 1 red
    ImageDraw.Draw(img).rectangle((20, 0, 39, 39), fill=1)
    data = encode(img, "PNG", transparency=0)
    assert decode(data).mode == "P"
    stored = assert_stored(normalize(data), "PNG", (40, 40))
    assert stored.getpixel((5, 5)) == WHITE
    assert stored.getpixel((30, 5)) == RED


def test_plain_rgb_png_is_stored_unchanged():
    data = encode(gradient((64, 48)), "PNG")
    result = normalize(data)
    assert result.data == data and not result.reencoded
    assert_stored(result, "PNG", (64, 48))


def test_lossy_webp_becomes_jpeg():
    result = normalize(encode(gradient((120, 80)), "WEBP", quality=80))
    assert result.source_format == "WEBP" and result.reencoded
    assert_stored(result, "JPEG", (120, 80))


def test_lossless_webp_becomes_png():
    img = gradient((120, 80))
    result = normalize(encode(img, "WEBP", lossless=True))
    assert result.source_format == "WEBP" and result.reencoded
    stored = assert_stored(result, "PNG", (120, 80))
    assert stored.tobytes() == img.tobytes()  # lossless all the way


@pytest.mark.parametrize(("lossless", "fmt"), [(True, "PNG"), (False, "JPEG")])
def test_animated_webp_first_frame_keeps_its_compression_kind(lossless, fmt):
    frames = [Image.new("RGB", (30, 20), RED), Image.new("RGB", (30, 20), BLUE)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=lossless, duration=100)
    assert data[12:16] == b"VP8X" and decode(data).n_frames == 2  # the kind is inside the ANMF chunks
    stored = assert_stored(normalize(data), fmt, (30, 20))
    assert close(stored.getpixel((10, 10)), RED, 5)


def test_lossy_webp_with_alpha_becomes_jpeg_on_white():
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((32, 0, 63, 63), fill=RED + (255,))
    stored = assert_stored(normalize(encode(img, "WEBP", quality=90)), "JPEG", (64, 64))
    assert close(stored.getpixel((8, 8)), WHITE) and close(stored.getpixel((50, 32)), RED, 40)


def test_grayscale_jpeg_is_reencoded_as_rgb():
    data = encode(gradient((80, 60)).convert("L"), "JPEG")
    result = normalize(data)
    assert result.reencoded and result.source_format == "JPEG"
    assert_stored(result, "JPEG", (80, 60))


def test_cmyk_jpeg_is_converted_to_rgb_without_its_profile():
    data = encode(Image.new("CMYK", (50, 40), (0, 255, 255, 0)), "JPEG", quality=95, icc_profile=b"cmyk profile")
    assert decode(data).mode == "CMYK"
    result = normalize(data)
    assert result.reencoded
    stored = assert_stored(result, "JPEG", (50, 40))
    assert close(stored.getpixel((25, 20)), RED, 20)
    assert "icc_profile" not in stored.info  # a CMYK profile would mislabel RGB pixels


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (300, 200), WHITE)
    ImageDraw.Draw(img).rectangle((0, 0, 29, 29), fill=RED)  # marks the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    result = normalize(encode(img, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=b"rgb profile"))
    assert result.reencoded
    stored = assert_stored(result, "JPEG", (200, 300))
    assert close(stored.getpixel((200 - 15, 15)), RED)  # clockwise: top-left goes to top-right
    assert close(stored.getpixel((15, 15)), WHITE)
    assert stored.getexif().get(0x0112) is None  # no second rotation by viewers
    assert stored.info.get("icc_profile") == b"rgb profile"  # colours stay as they were
    assert decode(result.thumbnail).size == (171, 256)


def test_gif_first_frame_becomes_png():
    frames = [Image.new("P", (30, 20), 0), Image.new("P", (30, 20), 1)]
    for frame in frames:
        frame.putpalette([255, 0, 0, 0, 0, 255])
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert decode(data).n_frames == 2
    result = normalize(data)
    assert result.source_format == "GIF"
    assert assert_stored(result, "PNG", (30, 20)).getpixel((10, 10)) == RED


def test_multi_picture_jpeg_counts_as_jpeg():
    data = encode(gradient((64, 48)), "MPO", save_all=True, append_images=[Image.new("RGB", (64, 48))])
    assert decode(data).format == "MPO"
    result = normalize(data)
    assert (result.format, result.source_format, result.reencoded) == ("JPEG", "JPEG", False)
    assert result.data == data and (result.width, result.height) == (64, 48)
    assert decode(result.thumbnail).size == (64, 48)


def test_16_bit_grey_png_is_scaled_not_clipped():
    img = Image.new("I;16", (4, 1))
    img.putdata([0, 0x4000, 0x8000, 0xFFFF])
    stored = assert_stored(normalize(encode(img, "PNG")), "PNG", (4, 1))
    assert [stored.getpixel((x, 0))[0] for x in range(4)] == [0, 64, 128, 255]


def test_large_image_thumbnail_is_256x192():
    result = normalize(encode(gradient((4000, 3000)), "JPEG", quality=80))
    assert not result.reencoded and (result.width, result.height) == (4000, 3000)
    thumb = decode(result.thumbnail)
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (256, 192))
    assert close(thumb.getpixel((128, 96)), gradient((4000, 3000)).getpixel((2000, 1500)))


def test_thumbnail_jpeg_keeps_aspect_and_never_upscales():
    assert decode(thumbnail_jpeg(Image.new("RGB", (4000, 3000)), 256)).size == (256, 192)
    assert decode(thumbnail_jpeg(Image.new("LA", (100, 50)), 256)).size == (100, 50)
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    thumb = decode(thumbnail_jpeg(img, 5))
    assert (thumb.mode, thumb.size) == ("RGB", (5, 5)) and close(thumb.getpixel((2, 2)), WHITE, 3)
    assert img.size == (10, 10)  # the caller's image is left alone


def test_accepted_formats_are_jpeg_png_webp_gif():
    assert ACCEPTED_FORMATS == {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


# -- files that are refused -----------------------------------------------------------------------------


def test_empty_file():
    assert "empty" in str(rejected(b"", "empty"))


def test_file_over_max_bytes_is_refused_before_decoding():
    exc = rejected(b"\xff\xd8" + bytes(2000), "too_large", ImageLimits(max_bytes=1024))
    assert "1.0 KB" in str(exc)


def test_random_noise_is_corrupt():
    exc = rejected(random.Random(7).randbytes(4096), "corrupt")
    assert "JPEG, PNG, WEBP, GIF" in str(exc)


def test_text_file_is_corrupt():
    rejected(b"name,width,height\nphoto.jpg,640,480\n" * 20, "corrupt")


def test_garbled_png_is_corrupt_not_truncated():
    data = bytearray(encode(gradient((400, 300)), "PNG"))
    data[len(data) // 2:len(data) // 2 + 500] = random.Random(0).randbytes(500)
    exc = rejected(bytes(data), "corrupt")
    assert "broken data stream" in str(exc.__cause__)  # Pillow's words for bad data, not for a cut


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO"])
def test_formats_pillow_knows_but_we_do_not_accept(fmt):
    exc = rejected(encode(Image.new("RGB", (32, 32), RED), fmt), "unsupported_format")
    assert str(exc).startswith(f"{fmt} images are not accepted")
    assert all(name in str(exc) for name in ACCEPTED_FORMATS)


def test_truncated_jpeg():
    data = PHOTO.read_bytes()
    rejected(data[: len(data) // 2], "truncated")


def test_truncated_large_jpeg_decoded_at_reduced_scale():
    data = encode(gradient((4000, 3000)), "JPEG", quality=80)
    rejected(data[: len(data) * 9 // 10], "truncated")


def test_truncated_png():
    data = encode(gradient((200, 150)), "PNG")
    rejected(data[: len(data) // 2], "truncated")


def test_truncated_webp():
    data = encode(gradient((200, 150)), "WEBP")
    rejected(data[: len(data) // 2], "truncated")


def test_compact_pixel_bomb_is_refused_before_decoding():
    data = png_1bit(9000, 8000)  # 72 megapixels in ~10 KB, under Pillow's own limit but over ours
    assert len(data) < 100_000
    start = time.perf_counter()
    exc = rejected(data, "pixel_limit")
    assert time.perf_counter() - start < 0.05  # no pixel was decoded
    assert "9000x8000" in str(exc) and "64 megapixels" in str(exc)


def test_pixel_limit_is_configurable():
    rejected(encode(Image.new("RGB", (400, 300)), "PNG"), "pixel_limit", ImageLimits(max_pixels=100_000))
    assert normalize(encode(Image.new("RGB", (400, 300)), "PNG"), ImageLimits(max_pixels=120_000)).width == 400


def test_webp_pixel_bomb_is_refused_before_the_decoder_allocates():
    payload = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (9000 - 1).to_bytes(3, "little") + (8000 - 1).to_bytes(3, "little")
    data = b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload
    assert "9000x8000" in str(rejected(data, "pixel_limit"))


def test_pillow_decompression_bomb_error_is_mapped():
    limits = ImageLimits(max_pixels=10**12)  # our own limit out of the way: Pillow's is what stops it
    pixels = 100_000 * 100_000
    assert pixels > 2 * Image.MAX_IMAGE_PIXELS
    exc = rejected(png_header_only(100_000, 100_000), "pixel_limit", limits)
    assert isinstance(exc.__cause__, Image.DecompressionBombError)


def test_pillow_decompression_bomb_warning_as_error_is_mapped():
    limits = ImageLimits(max_pixels=10**12)
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        exc = rejected(png_header_only(10_000, 10_000), "pixel_limit", limits)
    assert isinstance(exc.__cause__, Image.DecompressionBombWarning)


def test_rejection_survives_pickling():
    exc = pickle.loads(pickle.dumps(ImageRejected("corrupt", "The image data is damaged.")))
    assert (exc.reason, str(exc)) == ("corrupt", "The image data is damaged.")
