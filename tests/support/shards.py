"""Small TFRecord datasets made in the test, with the real handlers and writer (no catalog, no worker)."""

from __future__ import annotations

from pathlib import Path

from handlers.records import Box, LabelMapSpec, Sample
from handlers.registry import default_registry
from handlers.tfrecord import ShardedWriter, example_bytes, record_features
from tests.support.scenes import layout, scene

CLASSES = ("cat", "dog")


def write_shards(folder: Path, handler: str, config: dict, images: int = 24) -> dict[str, tuple[list[str], int]]:
    """{split: (shard files, records)} of `handler` run over `images` scenes (two objects each)."""
    h = default_registry().get(handler)
    config = h.config(config)
    labels = LabelMapSpec(CLASSES)
    writers = {s: ShardedWriter(folder, s, target_shard_bytes=200_000) for s in ("train", "validation")}
    counts = {s: 0 for s in writers}
    for i in range(images):
        objects = layout(i, 160, 120)
        boxes = tuple(Box(CLASSES.index(name) + 1, x, y, w, h_) for name, x, y, w, h_ in objects)
        sample = Sample(i + 1, scene(160, 120, objects), 160, 120, boxes)
        for record in h.build([sample], config, labels):
            writers[record.split].write(example_bytes(record_features(record)))
            counts[record.split] += 1
    return {s: ([str(folder / name) for name, _, _ in w.close()], counts[s]) for s, w in writers.items()}
