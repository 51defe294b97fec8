"""Classes and label maps: every write, in the caller's transaction.

A class's and a label map's name is unique in its project. A label map is an ordered list of the project's
classes (class id in the map = position + 1). A class in use (by a label map or a box) is not deleted; a
map that datasets or checkpoints were built from keeps its classes (their class ids must keep meaning the
same classes) and is not deleted.
"""

from __future__ import annotations

from sqlalchemy import func, select

from services.errors import CommandError
from services.projects import ensure_name_free
from store.schema import Annotation, Checkpoint, Dataset, LabelClass, LabelMap, LabelMapEntry


def _unique_name(session, model, project_id: int, name: str, exclude_id: int | None = None) -> None:
    what = "class" if model is LabelClass else "label map"
    ensure_name_free(session, model, name, f"a {what} named {name!r} already exists in project {project_id}",
                     exclude_id=exclude_id, project_id=project_id)


def create_class(session, project_id: int, data: dict) -> LabelClass:
    _unique_name(session, LabelClass, project_id, data["name"])
    label_class = LabelClass(project_id=project_id, **data)
    session.add(label_class)
    session.flush()
    return label_class


def change_class(session, label_class: LabelClass, changes: dict) -> LabelClass:
    if "name" in changes:
        _unique_name(session, LabelClass, label_class.project_id, changes["name"], exclude_id=label_class.id)
    for key, value in changes.items():
        setattr(label_class, key, value)
    session.flush()
    return label_class


def delete_class(session, label_class: LabelClass) -> None:
    """Refused while a label map or a box uses the class (saying which)."""
    maps = session.scalars(
        select(LabelMap.name).join(LabelMapEntry, LabelMapEntry.label_map_id == LabelMap.id)
        .where(LabelMapEntry.class_id == label_class.id)
    ).all()
    boxes = session.scalar(select(func.count()).select_from(Annotation).where(Annotation.class_id == label_class.id))
    if maps or boxes:
        raise CommandError(409, f"class {label_class.name!r} is in use: label maps {sorted(maps)}, {boxes} annotation(s)")
    session.delete(label_class)
    session.flush()


def _entries(session, project_id: int, class_ids: list[int]) -> list[LabelMapEntry]:
    found = set(session.scalars(
        select(LabelClass.id).where(LabelClass.project_id == project_id, LabelClass.id.in_(class_ids))
    ))
    missing = [c for c in class_ids if c not in found]
    if missing:
        raise CommandError(400, f"unknown class ids in project {project_id}: {missing}",
                           fields={"classes": [f"unknown: {missing}"]})
    return [LabelMapEntry(position=i, class_id=c) for i, c in enumerate(class_ids)]


def _map_users(session, map_id: int) -> list[str]:
    datasets = session.scalar(select(func.count()).select_from(Dataset).where(Dataset.label_map_id == map_id))
    checkpoints = session.scalar(select(func.count()).select_from(Checkpoint).where(Checkpoint.label_map_id == map_id))
    return [f"{n} {what}" for n, what in ((datasets, "dataset(s)"), (checkpoints, "checkpoint(s)")) if n]


def create_label_map(session, project_id: int, name: str, description: str, class_ids: list[int]) -> LabelMap:
    _unique_name(session, LabelMap, project_id, name)
    label_map = LabelMap(project_id=project_id, name=name, description=description)
    label_map.entries = _entries(session, project_id, class_ids)
    session.add(label_map)
    session.flush()
    return label_map


def change_label_map(session, label_map: LabelMap, changes: dict) -> LabelMap:
    """Rename it or change its class list. A map that datasets or checkpoints were built from is frozen:
    their class ids must keep meaning the same classes; create a new map instead."""
    if "name" in changes:
        _unique_name(session, LabelMap, label_map.project_id, changes["name"], exclude_id=label_map.id)
        label_map.name = changes["name"]
    if "description" in changes:
        label_map.description = changes["description"]
    if "classes" in changes:
        users = _map_users(session, label_map.id)
        if users and changes["classes"] != [e.class_id for e in label_map.entries]:
            raise CommandError(409, f"label map {label_map.id} is used by {', '.join(users)}; its classes are frozen")
        entries = _entries(session, label_map.project_id, changes["classes"])
        label_map.entries.clear()
        session.flush()  # positions are a primary key: old rows go before new ones arrive
        label_map.entries.extend(entries)
    session.flush()
    session.refresh(label_map)
    return label_map


def delete_label_map(session, label_map: LabelMap) -> None:
    """Refused while datasets or checkpoints were built from it."""
    users = _map_users(session, label_map.id)
    if users:
        raise CommandError(409, f"label map {label_map.id} is used by {', '.join(users)}")
    session.delete(label_map)
    session.flush()
