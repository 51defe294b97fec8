"""Images made in the tests with Pillow, archives of them, and a real photograph an installed package ships."""

from __future__ import annotations

import io
import zipfile
from importlib import resources

from PIL import Image, ImageDraw


def photograph() -> bytes:
    """A real photograph (JPEG) that matplotlib ships as sample data."""
    return (resources.files("matplotlib") / "mpl-data/sample_data/grace_hopper.jpg").read_bytes()


def picture(w: int = 64, h: int = 48, color=(200, 30, 30), seed: int = 0) -> Image.Image:
    """A picture with a coloured rectangle whose place depends on `seed`, so every seed gives other bytes."""
    img = Image.new("RGB", (w, h), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    x = (seed * 7) % max(1, w // 2)
    draw.rectangle([x, h // 4, x + w // 3, h // 2], fill=color)
    draw.point((seed % w, (seed // w) % h), fill=(seed % 256, 0, 0))
    return img


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(w: int = 64, h: int = 48, seed: int = 0, **kw) -> bytes:
    return encode(picture(w, h, seed=seed), "JPEG", quality=90, **kw)


def png(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    return encode(picture(w, h, seed=seed), "PNG")


def webp(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    return encode(picture(w, h, seed=seed), "WEBP", quality=80)


def rotated_jpeg(w: int = 60, h: int = 40) -> bytes:
    """A w x h JPEG whose EXIF says 'rotate 90° clockwise to view' (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(picture(w, h), "JPEG", exif=exif.tobytes())


def truncated_jpeg() -> bytes:
    data = jpeg(200, 150, seed=3)
    return data[: len(data) // 2]


def pixel_bomb(side: int = 20000) -> bytes:
    """A tiny file that decodes to side x side pixels (a 1-bit PNG compresses almost to nothing)."""
    return encode(Image.new("1", (side, side)), "PNG")


def bmp() -> bytes:
    return encode(picture(), "BMP")


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
