"""Request and response schemas. They drive validation (unknown fields are refused, types are strict)
and the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

import re
from enum import Enum

from marshmallow import Schema, ValidationError, fields, validate, validates

from api.inputs import ID_MAX, INT64_MAX, NAME_PATTERN, Text
from store.schema import JobStatus, Role
from services.jobs import JobSchema
from services.queues import Queue
from services.registry import KINDS

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Strict(Schema):
    """Refuses unknown fields (marshmallow's default, stated so it is never lost)."""

    class Meta:
        unknown = "raise"
        ordered = True


def Name(max_len: int = 128, **kw) -> fields.String:  # noqa: N802 - a field factory reads like a type
    kw["metadata"] = {"pattern": NAME_PATTERN, **kw.get("metadata", {})}  # what _printable checks
    return Text(validate=[validate.Length(min=1, max=max_len), _printable], **kw)


def _printable(value: str) -> None:
    if value != value.strip():
        raise ValidationError("must not start or end with whitespace")
    if _CONTROL.search(value):
        raise ValidationError("must not contain control characters")


def Id(**kw) -> fields.Integer:  # noqa: N802
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=ID_MAX), **kw)


def Description(**kw) -> fields.String:  # noqa: N802
    return Text(validate=validate.Length(max=10_000), **kw)


class Value(fields.String):
    """A row's enum member (a status, a source, a verdict) dumped as its value: a plain string in the document."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(value.value if isinstance(value, Enum) else value, attr, obj, **kwargs)


class PageQuery(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=INT64_MAX))


def page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema)),
            "total": fields.Integer(),
            "limit": fields.Integer(),
            "offset": fields.Integer(),
        },
        name=name,
    )


# --- users and projects ------------------------------------------------------------------------
class UserOut(Schema):
    id = fields.Integer()
    name = fields.String()
    is_superuser = fields.Boolean()


class MembershipOut(Schema):
    project_id = fields.Integer()
    user = fields.Nested(UserOut)
    role = fields.Enum(Role, by_value=True)
    created_at = fields.DateTime()


class HealthOut(Schema):
    status = fields.String(metadata={"description": "ok"})


class MeOut(Schema):
    user = fields.Nested(UserOut)
    memberships = fields.List(fields.Dict())


class ProjectIn(Strict):
    name = Name(required=True)
    description = Description(load_default="")


class ProjectPatch(Strict):
    name = Name()
    description = Description()


class ProjectOut(Schema):
    """Dumps a Project row with the caller's `role` (`api.blueprint.Extended`)."""

    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    role = fields.Enum(Role, by_value=fields.String, metadata={"description": "the caller's role in the project"})
    stats = fields.Function(lambda p: p.stats or {}, metadata={
        "type": "object", "description": "counts from the last probe/recount job"})
    stats_updated_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class MemberIn(Strict):
    role = fields.Enum(Role, by_value=True, required=True)


# --- classes and label maps --------------------------------------------------------------------
class ClassIn(Strict):
    name = Name(required=True)
    group = Name(allow_none=True, load_default=None, metadata={"description": "e.g. the brand of a logo"})
    color = Text(allow_none=True, load_default=None, validate=validate.Regexp(r"^#[0-9a-fA-F]{6}$"))
    description = Description(load_default="")


class ClassPatch(Strict):
    name = Name()
    group = Name(allow_none=True)
    color = Text(allow_none=True, validate=validate.Regexp(r"^#[0-9a-fA-F]{6}$"))
    description = Description()


class ClassQuery(PageQuery):
    group = Text(validate=validate.Length(max=128))


class ClassOut(Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    name = fields.String()
    group = fields.String(allow_none=True)
    color = fields.String(allow_none=True)
    description = fields.String()
    created_at = fields.DateTime()


class LabelMapIn(Strict):
    name = Name(required=True)
    description = Description(load_default="")
    classes = fields.List(Id(), required=True, validate=validate.Length(min=1, max=10_000), metadata={
        "uniqueItems": True, "description": "class ids in order; class id in the map = position + 1"})

    @validates("classes")
    def _unique(self, value, **_):
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValidationError(f"class ids listed twice: {dupes}")


class LabelMapPatch(LabelMapIn):
    name = Name()
    description = Description()
    classes = fields.List(Id(), validate=validate.Length(min=1, max=10_000), metadata={"uniqueItems": True})


class LabelMapEntryOut(Schema):
    """Dumps a LabelMapEntry row."""

    id = fields.Function(lambda e: e.position + 1, metadata={
        "type": "integer", "description": "the class id inside this map (position + 1)"})
    class_id = fields.Integer()
    name = fields.String(attribute="label_class.name")
    group = fields.String(attribute="label_class.group", allow_none=True)


class LabelMapOut(Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    name = fields.String()
    description = fields.String()
    entries = fields.List(fields.Nested(LabelMapEntryOut))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


# --- jobs --------------------------------------------------------------------------------------
class JobIn(Strict):
    kind = Text(required=True, validate=validate.OneOf(sorted(KINDS)))
    queue = fields.Enum(Queue, by_value=True, metadata={"description": "required for kinds that run on any queue"})
    project_id = Id(allow_none=True, load_default=None)
    params = fields.Dict(load_default=dict)


class JobBatchIn(Strict):
    jobs = fields.List(fields.Nested(JobIn), required=True, validate=validate.Length(min=1, max=500))


class JobQuery(PageQuery):
    project_id = fields.Integer(validate=validate.Range(min=1, max=ID_MAX))
    kind = Text(validate=validate.Length(max=80))
    status = fields.Enum(JobStatus, by_value=True)
    queue = fields.Enum(Queue, by_value=True)


class JobOut(JobSchema):
    """`services.jobs.JobSchema` under its API name, with no field of its own: the REST answer and the
    Socket.IO `job` event are one shape."""


class RunningOut(Schema):
    job_id = fields.String(allow_none=True, metadata={"description": "null for a job of a project you are not in"})
    kind = fields.String()


class WorkerOut(Schema):
    name = fields.String(metadata={"description": "the worker's node name, e.g. training@host"})
    pool = fields.String(metadata={"description": "prefork, threads or solo"})
    concurrency = fields.Integer()
    active = fields.List(fields.Nested(RunningOut), metadata={"description": "what it runs now"})
    versions = fields.Dict(keys=fields.String(), values=fields.String())


class QueueOut(Schema):
    name = fields.String()
    description = fields.String()
    waiting = fields.Integer(metadata={"description": "messages waiting in the broker"})
    in_flight = fields.Integer(metadata={"description": "messages taken by a worker and not yet done"})
    workers = fields.List(fields.Nested(WorkerOut), metadata={"description": "the live workers consuming it"})
    finished_last_minute = fields.Integer(metadata={"description": "jobs of this queue that ended in the last minute"})
    finished_last_hour = fields.Integer()
    acks_late = fields.Boolean()
    time_limit = fields.Integer(allow_none=True)
    expires = fields.Integer(allow_none=True)
    visibility_timeout = fields.Integer()
    pool = fields.String()
    concurrency = fields.Integer(allow_none=True)


ProjectPage = page_of(ProjectOut, "ProjectPage")
ClassPage = page_of(ClassOut, "ClassPage")
LabelMapPage = page_of(LabelMapOut, "LabelMapPage")
JobPage = page_of(JobOut, "JobPage")
JobList = Schema.from_dict({"items": fields.List(fields.Nested(JobOut))}, name="JobList")
MemberPage = page_of(MembershipOut, "MemberPage")
