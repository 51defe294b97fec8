"""Class examples as pictures: a box cut out of its stored image and scaled to fit a square, as JPEG.

A crop is not stored: it is cut from the image's bytes when asked (one decode, JPEGs decoded at a reduced
scale when the box is large). Its ETag is the SHA-256 of what determines its pixels (the image's blob key,
the box, the size), so a page that holds it revalidates for the cost of one query and a 304, and a moved
box gets a new ETag. The command reads only; it never commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PIL import Image as PILImage

from handlers.imaging import thumbnail_jpeg
from services.annotations import get_annotation
from services.errors import CommandError
from store.schema import Image

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 16, 512, 128
MARGIN = 0.1  # of the box's sides, around it: a logo seen with a little of what surrounds it


@dataclass
class Crop:
    annotation_id: int
    etag: str
    image_key: str
    box: tuple[float, float, float, float]  # left, top, right, bottom in image pixels, margin included
    size: int
    full: tuple[int, int]  # the stored image's width and height

    def jpeg(self, blobs) -> bytes:
        """Cut and scale (longest side = size, never upscaled)."""
        left, top, right, bottom = self.box
        with blobs.open(self.image_key) as fh, PILImage.open(fh) as img:
            scale = max(right - left, bottom - top) / self.size
            if img.format == "JPEG" and scale >= 2:  # let libjpeg scale while decoding
                img.draft("RGB", (max(1, int(img.width / scale)), max(1, int(img.height / scale))))
            fx, fy = img.width / self.full[0], img.height / self.full[1]
            region = img.crop((int(left * fx), int(top * fy), max(int(left * fx) + 1, round(right * fx)),
                               max(int(top * fy) + 1, round(bottom * fy))))
            region.load()
        return thumbnail_jpeg(region, self.size)


def example_crop(session, project_id: int, annotation_id: int, size: int) -> Crop:
    """The crop of box `annotation_id` of the project: 404 for a box of another project, 400 for a size
    outside [MIN_SIZE, MAX_SIZE]."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise CommandError(400, f"size {size} is outside [{MIN_SIZE}, {MAX_SIZE}]",
                           fields={"size": [f"between {MIN_SIZE} and {MAX_SIZE}"]})
    a = get_annotation(session, project_id, annotation_id)
    image = session.get(Image, a.image_id)
    mx, my = a.w * MARGIN, a.h * MARGIN
    box = (max(0.0, a.x - mx), max(0.0, a.y - my), min(float(image.width), a.x + a.w + mx),
           min(float(image.height), a.y + a.h + my))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        raise CommandError(409, f"box {annotation_id} has no area inside its image")
    digest = hashlib.sha256(f"{image.blob_key}|{box}|{size}".encode()).hexdigest()
    return Crop(annotation_id=a.id, etag=digest, image_key=image.blob_key, box=box, size=size,
                full=(image.width, image.height))
