"""A dataset's health, counted while it is built: what a person checks before training on it.

Per split its records, objects and objects per class; over all records how many objects each has and
how large its boxes are (the longer side in the record's pixels, in octave buckets), so that an empty
split, a missing class or boxes too small for the model show at a glance.
"""

from __future__ import annotations

from collections import Counter

from handlers.records import Record

BOX_BUCKETS = ((16, "<16"), (32, "16-32"), (64, "32-64"), (128, "64-128"), (256, "128-256"), (None, ">=256"))


def box_bucket(longer_side: float) -> str:
    for limit, label in BOX_BUCKETS:
        if limit is None or longer_side < limit:
            return label
    raise AssertionError("unreachable")


class HealthCounter:
    def __init__(self, splits: tuple[str, ...], names):
        self._names = names  # label -> class name
        self.records = {s: 0 for s in splits}
        self.objects = {s: Counter() for s in splits}
        self.per_image: Counter = Counter()
        self.sizes: Counter = Counter()

    def add(self, record: Record) -> None:
        self.records[record.split] += 1
        self.objects[record.split].update(self._names(label) for label in record.labels)
        self.per_image[len(record.labels)] += 1
        for x0, x1, y0, y1 in zip(record.xmin, record.xmax, record.ymin, record.ymax):
            self.sizes[box_bucket(max((x1 - x0) * record.width, (y1 - y0) * record.height))] += 1

    def summary(self) -> dict:
        return {
            "splits": {s: {"records": self.records[s], "objects": sum(self.objects[s].values()),
                           "classes": dict(sorted(self.objects[s].items()))} for s in self.records},
            "objects_per_image": {str(n): c for n, c in sorted(self.per_image.items())},
            "box_sizes": {label: self.sizes[label] for _, label in BOX_BUCKETS if self.sizes[label]},
        }
