"""Schemas of the data side: images, boxes, reviews, queries, COCO interop."""

from __future__ import annotations

from flask import url_for
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from api.inputs import ID_MAX, File, Files, Text
from api.schemas import Id, JobOut, PageQuery, Strict, Value, page_of
from store.schema import AnnotationSource, AnnotationStatus, DatasetStatus, Verdict
from services.datasets import handler_ref

_COORD = {"allow_nan": False, "validate": validate.Range(min=0)}
_SIZE = {"allow_nan": False, "validate": validate.Range(min=0, min_inclusive=False),
         "metadata": {"exclusiveMinimum": True}}


def QueryId(**kw) -> fields.Integer:  # noqa: N802 - a field factory reads like a type
    return fields.Integer(validate=validate.Range(min=1, max=ID_MAX), **kw)  # not strict: query strings are text


class Revision(fields.Integer):
    def __init__(self, strict: bool = True, **kw):
        kw.setdefault("metadata", {"description": "the image's annotation revision you last read; 409 if it moved on"})
        super().__init__(strict=strict, required=True, validate=validate.Range(min=0, max=ID_MAX), **kw)


# --- images ------------------------------------------------------------------------------------
class UrlsIn(Strict):
    urls = fields.List(Text(validate=validate.Length(min=1, max=4096)), required=True,
                       validate=validate.Length(min=1, max=10_000))


class ImageUpload(Strict):
    files = Files(required=True, metadata={"description": "images, or zips of images"})


class CocoImportUpload(Strict):
    annotations = File(required=True, metadata={"description": "the COCO detection JSON"})
    files = Files(required=True, metadata={"description": "the images (or zips of them), matched to the JSON by "
                                                          "file name"})


class ImageQuery(PageQuery):
    annotated = fields.Boolean(metadata={"description": "has at least one box (any status) or none"})
    class_id = QueryId(metadata={"description": "has a box of this class (class_id, source and status match one box)"})
    source = fields.Enum(AnnotationSource, by_value=True, metadata={"description": "has a box from this source"})
    status = fields.Enum(AnnotationStatus, by_value=True, metadata={"description": "has a box with this status"})
    reviewed = fields.Boolean(metadata={"description": "true: some prediction was reviewed; false: some prediction awaits review"})
    failed = fields.Boolean(metadata={"description": "true: in the failed-cases set (a prediction was judged invalid)"})
    job_id = Text(validate=validate.Length(max=36), metadata={"description": "added by this ingest job"})
    order = Text(load_default="newest", validate=validate.OneOf(["newest", "oldest"]))


class ImageUrl(fields.String):
    """The URL of one of the image's routes (`endpoint`), for the Image row being dumped."""

    def __init__(self, endpoint: str, **kwargs):
        super().__init__(**kwargs)
        self.endpoint = endpoint

    def serialize(self, attr, obj, accessor=None, **kwargs):
        return url_for(self.endpoint, project_id=obj.project_id, image_id=obj.id)


class ImageOut(Schema):
    """Dumps an Image row with its number of `boxes` (`api.blueprint.Extended`)."""

    id = fields.Integer()
    project_id = fields.Integer()
    original_name = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    format = fields.String(metadata={"description": "of the stored RGB image: JPEG or PNG"})
    source_format = fields.String(metadata={"description": "of the uploaded file"})
    size_bytes = fields.Integer()
    sha256 = fields.String(metadata={"description": "of the uploaded bytes (duplicates are found by it)"})
    revision = fields.Integer(attribute="annotation_revision")
    boxes = fields.Integer(metadata={"description": "number of boxes, any status"})
    job_id = fields.String(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    file_url = ImageUrl("images.ImageFile")
    thumbnail_url = ImageUrl("images.ImageThumbnail")


class ImageFormatsOut(Schema):
    formats = fields.List(fields.String(), metadata={"description": "accepted upload formats (Pillow names)"})
    mime_types = fields.List(fields.String())
    zip = fields.Boolean(metadata={"description": "zips of images are accepted too"})
    max_image_bytes = fields.Integer()
    max_image_pixels = fields.Integer()
    max_upload_items = fields.Integer()
    max_request_bytes = fields.Integer()


class ImageDeleted(Schema):
    image_id = fields.Integer()
    annotations_deleted = fields.Integer()
    reviews_deleted = fields.Integer()


# --- boxes -------------------------------------------------------------------------------------
class BoxIn(Strict):
    class_id = Id(required=True)
    x = fields.Float(required=True, **_COORD)
    y = fields.Float(required=True, **_COORD)
    w = fields.Float(required=True, **_SIZE)
    h = fields.Float(required=True, **_SIZE)
    source = fields.Enum(AnnotationSource, by_value=True, load_default=AnnotationSource.human)
    status = fields.Enum(AnnotationStatus, by_value=True,
                         metadata={"description": "default: accepted for human boxes, proposed for model boxes"})
    score = fields.Float(allow_none=True, load_default=None, allow_nan=False, validate=validate.Range(min=0, max=1))
    deployment_id = Id(allow_none=True, load_default=None)

    @validates_schema
    def _source_fields(self, data, **_):
        if data.get("source") is AnnotationSource.human and (data.get("score") is not None or data.get("deployment_id")):
            raise ValidationError("only model boxes carry a score or a deployment", "source")

    @post_load
    def _default_status(self, data, **_):
        if "source" in data:
            human = data["source"] is AnnotationSource.human
            data.setdefault("status", AnnotationStatus.accepted if human else AnnotationStatus.proposed)
        return data


class BoxCreate(BoxIn):
    revision = Revision()


class BoxPatch(Strict):
    revision = Revision()
    class_id = Id()
    x = fields.Float(**_COORD)
    y = fields.Float(**_COORD)
    w = fields.Float(**_SIZE)
    h = fields.Float(**_SIZE)
    status = fields.Enum(AnnotationStatus, by_value=True)


class BoxReplace(Strict):
    revision = Revision()
    items = fields.List(fields.Nested(BoxIn), required=True, validate=validate.Length(max=10_000))


class RevisionQuery(Strict):
    revision = Revision(strict=False)  # query strings are text


class ReviewOut(Schema):
    """Dumps a Review row."""

    id = fields.Integer()
    verdict = Value()
    corrected_box = fields.Dict(allow_none=True)
    corrected_class_id = fields.Integer(allow_none=True)
    note = fields.String()
    reviewer_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class AnnotationOut(Schema):
    """Dumps an Annotation row (or the values a proposal was inserted with) with its `review` where the view
    adds it (`api.blueprint.Extended`); null otherwise."""

    id = fields.Integer()
    image_id = fields.Integer()
    class_id = fields.Integer()
    x = fields.Float()
    y = fields.Float()
    w = fields.Float()
    h = fields.Float()
    source = Value()
    status = Value()
    score = fields.Float(allow_none=True)
    deployment_id = fields.Integer(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    review = fields.Nested(ReviewOut, allow_none=True, dump_default=None)


class ImageBoxes(Schema):
    """Dumps an Image row with its boxes as `items` (`api.blueprint.Extended`)."""

    image_id = fields.Integer(attribute="id")
    revision = fields.Integer(attribute="annotation_revision")
    items = fields.List(fields.Nested(AnnotationOut))


class BoxWritten(Schema):
    revision = fields.Integer(metadata={"description": "the image's new annotation revision"})
    annotation = fields.Nested(AnnotationOut, allow_none=True)


class AnnotationQuery(PageQuery):
    image_id = QueryId()
    class_id = QueryId()
    source = fields.Enum(AnnotationSource, by_value=True)
    status = fields.Enum(AnnotationStatus, by_value=True)
    reviewed = fields.Boolean()
    verdict = fields.Enum(Verdict, by_value=True)


# --- review ------------------------------------------------------------------------------------
class CorrectedBox(Strict):
    x = fields.Float(required=True, **_COORD)
    y = fields.Float(required=True, **_COORD)
    w = fields.Float(required=True, **_SIZE)
    h = fields.Float(required=True, **_SIZE)


class ReviewIn(Strict):
    verdict = fields.Enum(Verdict, by_value=True, required=True)
    corrected_box = fields.Nested(CorrectedBox, allow_none=True, load_default=None,
                                  metadata={"description": "where the object really is (invalid verdicts only)"})
    corrected_class_id = Id(allow_none=True, load_default=None,
                            metadata={"description": "what the object really is (invalid verdicts only)"})
    note = Text(load_default="", validate=validate.Length(max=10_000))

    @validates_schema
    def _corrections_need_invalid(self, data, **_):
        if data["verdict"] is Verdict.valid and (data.get("corrected_box") or data.get("corrected_class_id")):
            raise ValidationError("a valid prediction needs no correction", "verdict")


class FailedCase(Schema):
    review = fields.Nested(ReviewOut)
    prediction = fields.Nested(AnnotationOut)
    image = fields.Nested(ImageOut)


# --- queries -----------------------------------------------------------------------------------
class StatusQuery(Strict):
    status = fields.Enum(AnnotationStatus, by_value=True, load_default=AnnotationStatus.accepted)


class ExamplesQuery(StatusQuery):
    per_class = fields.Integer(load_default=5, validate=validate.Range(min=1, max=100))


class SubsetQuery(Strict):
    subset = Text(load_default="all", validate=validate.OneOf(["all", "failed"]),
                           metadata={"description": "all selected images, or only the failed cases"})


class ClassCountOut(Schema):
    class_id = fields.Integer()
    name = fields.String()
    group = fields.String(allow_none=True)
    boxes = fields.Integer()
    images = fields.Integer()


class ClassCountsOut(Schema):
    status = fields.String()
    images = fields.Integer(metadata={"description": "images in the project"})
    images_without_boxes = fields.Integer()
    classes = fields.List(fields.Nested(ClassCountOut))


class ExampleOut(Schema):
    annotation_id = fields.Integer()
    image_id = fields.Integer()
    box = fields.List(fields.Float(), metadata={"description": "x, y, w, h in pixels"})


class ClassExamplesOut(Schema):
    class_id = fields.Integer()
    name = fields.String()
    examples = fields.List(fields.Nested(ExampleOut))


class ExamplesOut(Schema):
    status = fields.String()
    per_class = fields.Integer()
    classes = fields.List(fields.Nested(ClassExamplesOut))


class DistributionClassOut(Schema):
    id = fields.Integer(metadata={"description": "the class id inside the map"})
    class_id = fields.Integer()
    name = fields.String()
    boxes = fields.Integer()
    images = fields.Integer()


class DistributionOut(Schema):
    label_map_id = fields.Integer()
    subset = fields.String()
    data_revision = fields.String()
    images = fields.Integer(metadata={"description": "images a dataset of this map would hold"})
    classes = fields.List(fields.Nested(DistributionClassOut))


class CocoExportQuery(StatusQuery):
    label_map_id = QueryId(metadata={"description": "category ids = the map's class ids; boxes of other classes are left out"})


ImagePage = page_of(ImageOut, "ImagePage")
AnnotationPage = page_of(AnnotationOut, "AnnotationPage")
FailedCasePage = page_of(FailedCase, "FailedCasePage")


# --- datasets ----------------------------------------------------------------------------------
class DatasetIn(Strict):
    project_id = Id(required=True)
    name = Text(required=True, validate=[validate.Length(min=1, max=128),
                                                  validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                                                  error="letters, digits, '.', '_' and '-' only")])
    handler = Text(required=True, validate=validate.Length(min=1, max=80),
                            metadata={"description": "name@version, e.g. detection@1 (GET /api/handlers)"})
    label_map_id = Id(required=True)
    subset = Text(load_default="all", validate=validate.OneOf(["all", "failed"]),
                  metadata={"description": "all selected images, or only the failed cases"})
    config = fields.Dict(keys=Text(validate=validate.Length(max=80)), load_default=dict,
                         metadata={"description": "handler options; defaults fill the rest"})


class DatasetQuery(PageQuery):
    project_id = QueryId()
    status = Text(validate=validate.OneOf(["building", "ready", "failed"]))
    name = Text(validate=validate.Length(max=128))


class DatasetCacheOut(Schema):
    used_bytes = fields.Integer(metadata={"description": "bytes of every ready dataset's zip"})
    quota_bytes = fields.Integer(metadata={"description": "LOOPLINE_DATASET_CACHE_BYTES"})
    datasets = fields.Integer(metadata={"description": "ready datasets"})


class DatasetOut(Schema):
    """Dumps a Dataset row."""

    key = fields.String(metadata={"description": "SHA-256 of the canonical definition"})
    project_id = fields.Integer()
    name = fields.String()
    handler = fields.Function(handler_ref, metadata={"type": "string", "description": "name@version"})
    config = fields.Dict()
    label_map_id = fields.Integer(allow_none=True)
    subset = fields.String()
    data_revision = fields.String()
    status = fields.Enum(DatasetStatus, by_value=fields.String)
    job_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    sha256 = fields.String(allow_none=True)
    size_bytes = fields.Integer()
    manifest = fields.Dict()
    hits = fields.Integer()
    downloads = fields.Integer()
    bytes_served = fields.Integer()
    created_at = fields.DateTime()
    last_access_at = fields.DateTime()


class DatasetRequested(Schema):
    dataset = fields.Nested(DatasetOut)
    cached = fields.Boolean(metadata={"description": "true: built before, served from the cache"})
    job = fields.Nested(JobOut, allow_none=True, metadata={"description": "the build job (202)"})


class HandlerList(Schema):
    items = fields.List(fields.Dict())


DatasetPage = page_of(DatasetOut, "DatasetPage")
