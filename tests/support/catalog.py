"""A labelled project written straight into a catalog, for tests that run without the API (crash tests)."""

from __future__ import annotations

from store.accounts import create_user
from store.schema import Annotation, AnnotationSource, AnnotationStatus, LabelClass, LabelMap, LabelMapEntry, Project
from tests.support.scenes import layout, scene
from services.ingest import Ingestor, Report


def labelled_project(iso, runtime, images: int) -> tuple[int, int, int]:
    """(project, user, label map [cat, dog]) with `images` 320x240 scenes boxed exactly, written directly."""
    with runtime.sessions() as session:
        user = create_user(session, "builder")
        project = Project(name="crash", description="", created_by=user.id, stats={})
        session.add(project)
        session.flush()
        classes = {n: LabelClass(project_id=project.id, name=n) for n in ("cat", "dog")}
        session.add_all(classes.values())
        session.flush()
        label_map = LabelMap(project_id=project.id, name="pets")
        label_map.entries = [LabelMapEntry(position=i, class_id=classes[n].id) for i, n in enumerate(("cat", "dog"))]
        session.add(label_map)
        session.commit()
        pid, uid, lm = project.id, user.id, label_map.id
    report = Report()
    ingestor = Ingestor(runtime.sessions, runtime.blobs, iso, project_id=pid, job_id="setup", user_id=uid)
    ingestor.store([(f"s{i}.png", scene(320, 240, layout(i, 320, 240))) for i in range(images)], report)
    with runtime.sessions() as session:
        for entry in report.files:
            i = int(entry["name"][1:-4])
            for name, x, y, w, h in layout(i, 320, 240):
                session.add(Annotation(image_id=entry["image_id"], class_id=classes[name].id, x=x, y=y, w=w, h=h,
                                       source=AnnotationSource.human, status=AnnotationStatus.accepted))
        session.commit()
    return pid, uid, lm
