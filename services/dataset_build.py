"""Building one dataset: samples from the catalog → handler records → TFRecord shards, label map and
manifest → one zip, published atomically.

Everything is written in a temporary folder next to the blob store. The zip becomes a content-addressed
blob (durable before the catalog names it), and only then does the Dataset row flip to `ready` in one
UPDATE: a half-built dataset is never listed or served. The build is deterministic (seeded handlers,
sorted inputs, fixed zip timestamps), so a redelivered build produces the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from itertools import groupby
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import select

from handlers.health import HealthCounter
from handlers.records import Box, LabelMapSpec, Sample
from handlers.registry import default_registry
from handlers.tfrecord import ShardedWriter, example_bytes, label_map_pbtxt, record_features
from store.schema import Dataset, Image, LabelMap
from store.scratch import fresh_scratch
from store.selection import data_revision, selected_boxes, selected_image_ids

SPLITS = ("train", "validation")
_EPOCH = (2020, 1, 1, 0, 0, 0)  # zip entry timestamps: fixed, so equal content gives equal bytes


class DataChanged(RuntimeError):
    """The selected data changed between the request and the build: the key no longer describes it."""


def sample_stream(session, blobs, dataset: Dataset) -> tuple[int, Iterator[Sample]]:
    """(image count, samples in image id order). Boxes come from one query; images are read lazily."""
    rows = session.execute(selected_boxes(dataset.label_map_id, dataset.subset)).all()
    by_image = {image_id: tuple(Box(r.label, r.x, r.y, r.w, r.h) for r in group)
                for image_id, group in groupby(rows, key=lambda r: r.image_id)}
    images = {i.id: i for i in session.execute(  # the same images, by subquery: no bound parameter per image
        select(Image.id, Image.blob_key, Image.width, Image.height)
        .where(Image.id.in_(selected_image_ids(dataset.label_map_id, dataset.subset))))}

    def stream() -> Iterator[Sample]:
        for image_id in by_image:  # in image id order, as the boxes query sorts them
            image = images[image_id]
            yield Sample(image_id, blobs.read_bytes(image.blob_key), image.width, image.height, by_image[image_id])

    return len(by_image), stream()


def build(session, blobs, dataset: Dataset, work_root: Path, progress: Callable[[int, int], None]) -> dict:
    """Build `dataset` and store its zip; return {"blob_key", "sha256", "size_bytes", "manifest"}.
    Raises DataChanged when the selection no longer has the revision the key was made from."""
    label_map = session.get(LabelMap, dataset.label_map_id)
    if label_map is None:
        raise DataChanged("the label map this dataset was requested from has been deleted")
    now = data_revision(session, label_map, dataset.subset)
    if now != dataset.data_revision:
        raise DataChanged(f"the selected images or boxes changed since the request (data revision "
                          f"{dataset.data_revision} → {now}); request the dataset again to build the current data")
    handler = default_registry().get(f"{dataset.handler}@{dataset.handler_version}")
    labels = LabelMapSpec(tuple(e.label_class.name for e in label_map.entries))
    total, samples = sample_stream(session, blobs, dataset)
    work = fresh_scratch(work_root, f"dataset-{dataset.key[:16]}-", dataset.job_id)
    try:
        return _write(work, blobs, dataset, handler, labels, total, samples, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(work, blobs, dataset, handler, labels, total, samples, progress) -> dict:
    shards = work / "data"
    shards.mkdir()
    writers = {split: ShardedWriter(shards, split) for split in SPLITS}
    health = HealthCounter(SPLITS, labels.name)
    done = 0
    for sample in samples:
        for record in handler.build([sample], dataset.config, labels):
            writers[record.split].write(example_bytes(record_features(record)))
            health.add(record)
        done += 1
        progress(done, total)
    files = {}
    for writer in writers.values():
        for name, n, size in writer.close():
            files[f"data/{name}"] = {"records": n, "bytes": size, "sha256": _sha256(shards / name)}
    (work / "label_map.pbtxt").write_text(label_map_pbtxt(labels), encoding="utf-8")
    files["label_map.pbtxt"] = {"bytes": (work / "label_map.pbtxt").stat().st_size,
                                "sha256": _sha256(work / "label_map.pbtxt")}
    manifest = {
        "format": "loopline-dataset/1", "key": dataset.key, "name": dataset.name,
        "handler": f"{handler.name}@{handler.version}", "task": handler.task, "config": dataset.config,
        "label_map": {"id": dataset.label_map_id, "classes": list(labels.names)},
        "subset": dataset.subset, "data_revision": dataset.data_revision, "images": total,
        "records": dict(health.records),
        "objects": {split: dict(sorted(health.objects[split].items())) for split in SPLITS},
        "health": health.summary(),
        "files": files,
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    archive = work / "dataset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # JPEGs inside: compressing gains nothing
        for name in ["manifest.json", "label_map.pbtxt", *sorted(n for n in files if n.startswith("data/"))]:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            with open(work / name, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
    with open(archive, "rb") as fh:
        key, size = blobs.put_stream(fh)
    return {"blob_key": key, "sha256": key, "size_bytes": size, "manifest": manifest}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
