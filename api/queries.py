"""Questions about a project's data, answered by SQL aggregates (nothing is loaded row by row):
boxes and images per class, example images per class, and a label map's class distribution with its
data revision."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import distinct, exists, func, select

from api.auth import require_role
from api.blueprint import Blueprint
from api.data_schemas import ClassCountsOut, DistributionOut, ExamplesOut, ExamplesQuery, StatusQuery, SubsetQuery
from api.extensions import db
from api.labels import get_label_map
from store.schema import Annotation, AnnotationStatus, Image, LabelClass, LabelMapEntry
from store.selection import fingerprint, selected_image_ids

bp = Blueprint("queries", __name__, url_prefix="/api/projects/<int:project_id>",
               description="Counts and examples per class, label map distribution, data revision")


def _images(project_id: int):
    return select(Image.id).where(Image.project_id == project_id)


@bp.route("/stats/classes")
class ClassCounts(MethodView):
    @bp.arguments(StatusQuery, location="query")
    @bp.response(200, ClassCountsOut)
    def get(self, args, project_id):
        """Boxes and images per class (boxes with the given status, accepted by default), and how many
        images have no box at all."""
        require_role(project_id)
        counts = (
            select(Annotation.class_id, func.count(Annotation.id).label("boxes"),
                   func.count(distinct(Annotation.image_id)).label("images"))
            .where(Annotation.image_id.in_(_images(project_id)), Annotation.status == args["status"])
            .group_by(Annotation.class_id).subquery()
        )
        rows = db.session.execute(
            select(LabelClass.id, LabelClass.name, LabelClass.group, func.coalesce(counts.c.boxes, 0),
                   func.coalesce(counts.c.images, 0))
            .outerjoin(counts, counts.c.class_id == LabelClass.id)
            .where(LabelClass.project_id == project_id).order_by(LabelClass.id)
        ).all()
        total = db.session.scalar(select(func.count()).select_from(Image).where(Image.project_id == project_id))
        unannotated = db.session.scalar(
            select(func.count()).select_from(Image).where(
                Image.project_id == project_id, ~exists().where(Annotation.image_id == Image.id)))
        return {
            "status": args["status"].value, "images": total, "images_without_boxes": unannotated,
            "classes": [{"class_id": c, "name": n, "group": g, "boxes": b, "images": i} for c, n, g, b, i in rows],
        }


@bp.route("/stats/examples")
class ClassExamples(MethodView):
    @bp.arguments(ExamplesQuery, location="query")
    @bp.response(200, ExamplesOut)
    def get(self, args, project_id):
        """Up to `per_class` example boxes of every class (newest first), picked by a window function."""
        require_role(project_id)
        ranked = (
            select(Annotation.id, Annotation.image_id, Annotation.class_id, Annotation.x, Annotation.y,
                   Annotation.w, Annotation.h,
                   func.row_number().over(partition_by=Annotation.class_id, order_by=Annotation.id.desc()).label("n"))
            .where(Annotation.image_id.in_(_images(project_id)), Annotation.status == args["status"])
            .subquery()
        )
        rows = db.session.execute(
            select(ranked).where(ranked.c.n <= args["per_class"]).order_by(ranked.c.class_id, ranked.c.n)
        ).all()
        classes = {c: {"class_id": c, "name": n, "examples": []} for c, n in db.session.execute(
            select(LabelClass.id, LabelClass.name).where(LabelClass.project_id == project_id).order_by(LabelClass.id))}
        for r in rows:
            classes[r.class_id]["examples"].append(
                {"annotation_id": r.id, "image_id": r.image_id, "box": [r.x, r.y, r.w, r.h]})
        return {"status": args["status"].value, "per_class": args["per_class"], "classes": list(classes.values())}


@bp.route("/label-maps/<int:map_id>/distribution")
class LabelMapDistribution(MethodView):
    @bp.arguments(SubsetQuery, location="query")
    @bp.response(200, DistributionOut)
    def get(self, args, project_id, map_id):
        """What a dataset built from this map would hold: accepted boxes and images per class id of the
        map, the number of images selected, and the data revision (it changes whenever any of them does)."""
        require_role(project_id)
        label_map = get_label_map(project_id, map_id)
        selected = selected_image_ids(map_id, args["subset"])
        selection = fingerprint(db.session, label_map, args["subset"])
        per_class = dict((cid, (b, i)) for cid, b, i in db.session.execute(
            select(Annotation.class_id, func.count(Annotation.id), func.count(distinct(Annotation.image_id)))
            .join(LabelMapEntry, (LabelMapEntry.class_id == Annotation.class_id) & (LabelMapEntry.label_map_id == map_id))
            .where(Annotation.image_id.in_(selected), Annotation.status == AnnotationStatus.accepted)
            .group_by(Annotation.class_id)
        ).all())
        return {
            "label_map_id": map_id, "subset": args["subset"],
            "data_revision": selection.revision, "images": selection.images,
            "classes": [{"id": e.position + 1, "class_id": e.class_id, "name": e.label_class.name,
                         "boxes": per_class.get(e.class_id, (0, 0))[0], "images": per_class.get(e.class_id, (0, 0))[1]}
                        for e in label_map.entries],
        }
