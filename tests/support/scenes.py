"""Images with known objects: coloured rectangles on a grey ground, and the boxes that frame them."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

COLOURS = {"cat": (220, 30, 30), "dog": (30, 30, 220)}


def scene(w: int, h: int, objects: list[tuple[str, int, int, int, int]]) -> bytes:
    """A PNG with each (class, x, y, w, h) drawn as a filled rectangle of the class's colour."""
    img = Image.new("RGB", (w, h), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    for name, x, y, bw, bh in objects:
        draw.rectangle([x, y, x + bw - 1, y + bh - 1], fill=COLOURS[name])
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def layout(i: int, w: int = 160, h: int = 120) -> list[tuple[str, int, int, int, int]]:
    """Two objects per image at places that differ from image to image (never mirror-symmetric)."""
    return [("cat", 8 + (i * 13) % 40, 10 + (i * 7) % 30, 40, 30), ("dog", 95 + (i * 5) % 20, 60, 30 + i % 10, 40)]
