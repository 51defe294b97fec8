"""Schemas of the model side: architectures, the checkpoint tree, training requests."""

from __future__ import annotations

from marshmallow import Schema, fields, missing, validate

from api.data_schemas import AnnotationOut, QueryId
from api.inputs import File, Files, Text
from api.schemas import Id, JobOut, Name, PageQuery, Strict, UserOut, page_of
from models.architectures import ARCHITECTURES, get_architecture
from store.schema import CheckpointStatus, DeploymentStatus, DeploymentTask
from services.checkpoints import preprocessing
from services.datasets import handler_ref

SEED = validate.Range(min=0, max=2**31 - 1)
INPUT_SIZE = validate.Range(min=min(a.min_size for a in ARCHITECTURES.values()),
                            max=max(a.max_size for a in ARCHITECTURES.values()))


class ArchitectureList(Schema):
    items = fields.List(fields.Dict())


class CheckpointIn(Strict):
    """A root from an architecture's fresh weights (JSON). Upload a `.keras` file instead as
    multipart/form-data with `file`, `architecture`, `label_map_id` and optionally `name`."""

    architecture = Text(required=True, validate=validate.OneOf(sorted(ARCHITECTURES)),
                        metadata={"description": "GET /api/architectures"})
    label_map_id = Id(required=True, metadata={"description": "sizes the class head; its classes, in order"})
    name = Name(load_default="")
    input_size = fields.Integer(strict=True, validate=INPUT_SIZE, metadata={
        "multipleOf": 16, "description": "side of the square input (a multiple of 16 within the architecture's range); "
                                         "default: the architecture's"})
    seed = fields.Integer(strict=True, load_default=0, validate=SEED,
                          metadata={"description": "of the initial weights: the same seed gives the same weights"})


class CheckpointUploadForm(Strict):
    architecture = Text(required=True, validate=validate.OneOf(sorted(ARCHITECTURES)))
    label_map_id = QueryId(required=True)  # form fields are text
    name = Name(load_default="")


class CheckpointUpload(CheckpointUploadForm):
    """The multipart body: the form and the `.keras` file."""

    file = File(required=True, metadata={"description": "a `.keras` file"})


class ForkIn(Strict):
    name = Name(load_default="")


class EarlyStoppingIn(Strict):
    patience = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=1000),
                              metadata={"description": "epochs without improvement of val_loss before stopping"})
    min_delta = fields.Float(load_default=0.0, allow_nan=False, validate=validate.Range(min=0))
    restore_best = fields.Boolean(load_default=True, metadata={"description": "keep the best epoch's weights"})


class TrainIn(Strict):
    dataset_key = Text(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$", error="a 64-hex dataset key"))
    epochs = fields.Integer(strict=True, load_default=10, validate=validate.Range(min=1, max=10_000))
    batch_size = fields.Integer(strict=True, load_default=32, validate=validate.Range(min=1, max=4096))
    learning_rate = fields.Float(load_default=1e-3, allow_nan=False, metadata={"exclusiveMinimum": True},
                                 validate=validate.Range(min=0, max=10, min_inclusive=False))
    early_stopping = fields.Nested(EarlyStoppingIn, load_default=None, allow_none=True)
    reinit_head = fields.Boolean(load_default=False, metadata={
        "description": "replace the class head with a fresh one sized for the dataset's label map (required when "
                       "it differs from the checkpoint's classes)"})
    report_every_steps = fields.Integer(strict=True, load_default=20, validate=validate.Range(min=1, max=100_000))
    seed = fields.Integer(strict=True, load_default=0, validate=SEED, metadata={"description": "of the shuffling"})


class CheckpointQuery(PageQuery):
    status = fields.Enum(CheckpointStatus, by_value=True)
    architecture = Text(validate=validate.Length(max=64))
    dataset_key = Text(validate=validate.Length(max=64))
    parent_id = QueryId()
    class_id = QueryId(metadata={"description": "checkpoints whose label map holds this class"})


class TrainedOnOut(Schema):
    """Dumps `services.checkpoints.TrainedOn`: the dataset's key and, while the cache holds it, what it was."""

    key = fields.String()
    cached = fields.Function(lambda t: t.dataset is not None)
    name = fields.String(attribute="dataset.name")
    handler = fields.Function(lambda t: missing if t.dataset is None else handler_ref(t.dataset))
    config = fields.Dict(attribute="dataset.config")
    data_revision = fields.String(attribute="dataset.data_revision")
    subset = fields.String(attribute="dataset.subset")
    records = fields.Function(lambda t: missing if t.dataset is None else t.dataset.manifest.get("records"))


class LineageClassOut(Schema):
    """Dumps a LabelMapEntry as the project's class it names."""

    id = fields.Integer(attribute="label_class.id")
    name = fields.String(attribute="label_class.name")
    group = fields.String(attribute="label_class.group", allow_none=True)


class LineageMapOut(Schema):
    """Dumps a LabelMap with its classes in order."""

    id = fields.Integer()
    name = fields.String()
    classes = fields.List(fields.Nested(LineageClassOut), attribute="entries")


class LineageOut(Schema):
    """Dumps `services.checkpoints.Lineage`."""

    ancestors = fields.List(fields.Nested(lambda: CheckpointOut(only=("id", "name", "status", "dataset_key"))))
    children = fields.List(fields.Integer())
    dataset = fields.Nested(TrainedOnOut, allow_none=True)
    label_map = fields.Nested(LineageMapOut, allow_none=True)
    created_by = fields.Nested(UserOut, only=("id", "name"), allow_none=True)


class DumpedObject(fields.Dict):
    """An object dumped by its own schema, stated in the document as the plain object it has always been there
    (the dashboard's types are generated from the document)."""

    def __init__(self, schema: type[Schema], **kwargs):
        super().__init__(**kwargs)
        self.object_schema = schema()

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else self.object_schema.dump(value)


class CheckpointOut(Schema):
    """Dumps a Checkpoint row; `lineage` and `job` where the view adds them (`api.blueprint.Extended`)."""

    id = fields.Integer()
    project_id = fields.Integer()
    name = fields.String()
    architecture = fields.String()
    task = fields.Function(lambda c: get_architecture(c.architecture).task, metadata={"type": "string"})
    status = fields.Enum(CheckpointStatus, by_value=fields.String)
    parent_id = fields.Integer(allow_none=True)
    source = fields.Function(lambda c: c.config.get("source"),
                             metadata={"type": "string", "description": "architecture | upload | fork"})
    input_size = fields.Function(lambda c: c.config.get("input_size"), metadata={"type": "integer"})
    seed = fields.Function(lambda c: c.config.get("seed"), allow_none=True, metadata={"type": "integer"})
    preprocessing = fields.Function(preprocessing, metadata={"type": "object"})
    classes = fields.List(fields.String())
    label_map_id = fields.Integer(allow_none=True)
    dataset_key = fields.String(allow_none=True)
    has_weights = fields.Function(lambda c: c.weights_key is not None, metadata={
        "type": "boolean", "description": "false: the architecture's initial weights for `seed`"})
    params = fields.Dict()
    metrics = fields.Dict()
    curve = fields.List(fields.Dict())
    epochs_done = fields.Function(lambda c: c.state.get("epochs_done", 0), metadata={"type": "integer"})
    device = fields.Function(lambda c: c.state.get("device"), allow_none=True, metadata={"type": "object"})
    job_id = fields.String(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    trained_at = fields.DateTime(allow_none=True)
    lineage = DumpedObject(LineageOut, metadata={
        "description": "one checkpoint's answer: ancestors, children, dataset, label map"})
    job = fields.Nested(JobOut, metadata={"description": "the training job (train)"})


class CheckpointNode(CheckpointOut):
    children = fields.List(fields.Nested(lambda: CheckpointNode()))


class CheckpointTree(Schema):
    roots = fields.List(fields.Nested(CheckpointNode), metadata={"description": "nested: each node has `children`"})


CheckpointPage = page_of(CheckpointOut, "CheckpointPage")


class DeploymentIn(Strict):
    checkpoint_id = Id(required=True)
    activate = fields.Boolean(load_default=True, metadata={"description": "make it the active model once verified"})


class DeploymentQuery(PageQuery):
    task = Text(validate=validate.OneOf(["suggestion", "classification", "detection"]))
    checkpoint_id = QueryId(metadata={"description": "the deployments of this checkpoint"})
    active = fields.Boolean()
    status = fields.Enum(DeploymentStatus, by_value=True)


class DeploymentOut(Schema):
    """Dumps a Deployment row; `job` where the view adds it (`api.blueprint.Extended`)."""

    id = fields.Integer()
    project_id = fields.Integer()
    checkpoint_id = fields.Integer()
    task = fields.Enum(DeploymentTask, by_value=fields.String)
    status = fields.Enum(DeploymentStatus, by_value=fields.String)
    active = fields.Boolean()
    preprocessing = fields.Dict()
    label_map = fields.List(fields.Dict(), metadata={"description": "class ids and names, in class-score order"})
    max_abs_diff = fields.Float(allow_none=True, metadata={"description": "largest |ONNX - Keras| on sample inputs"})
    error = fields.String(allow_none=True)
    job_id = fields.String(allow_none=True)
    has_model = fields.Function(lambda d: d.model_key is not None, metadata={"type": "boolean"})
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    activated_at = fields.DateTime(allow_none=True)
    job = fields.Nested(JobOut, metadata={"description": "the deployment job (deploy)"})


DeploymentPage = page_of(DeploymentOut, "DeploymentPage")


class RegionIn(Strict):
    x = fields.Float(required=True, allow_nan=False)
    y = fields.Float(required=True, allow_nan=False)
    w = fields.Float(required=True, allow_nan=False)
    h = fields.Float(required=True, allow_nan=False)


class PointIn(Strict):
    x = fields.Float(required=True, allow_nan=False)
    y = fields.Float(required=True, allow_nan=False)


class SuggestionIn(Strict):
    """Send either `region` (the rough box the annotator dragged) or `point` (a click on the object)."""

    region = fields.Nested(RegionIn)
    point = fields.Nested(PointIn)


class SuggestionOut(Schema):
    annotation = fields.Nested(AnnotationOut, metadata={"description": "the stored proposal (source model, "
                                                                      "status proposed)"})
    revision = fields.Integer(metadata={"description": "the image's annotation revision after storing it"})
    region = fields.Dict(metadata={"description": "the region the model looked at, in image pixels"})
    class_name = fields.String()
    deployment_id = fields.Integer()
    timings = fields.Dict(metadata={"description": "ms: queue_wait, image_load, model, worker (inference process), store (the proposal's write), total (in the API)"})


class PipelineItemIn(Strict):
    url = Text(required=True, validate=validate.Length(min=1, max=4096))
    region = fields.Nested(RegionIn, metadata={"description": "the part of the image to look at (suggest: the "
                                                             "rough box); default the whole image"})


class PipelineRunIn(Strict):
    project_id = Id(required=True, metadata={"description": "whose active deployment the model stage uses"})
    items = fields.List(fields.Nested(PipelineItemIn), required=True, validate=validate.Length(min=1, max=64))
    then = fields.List(Text(validate=validate.Length(min=1, max=64)), load_default=list,
                       validate=validate.Length(max=16),
                       metadata={"description": "stages to hand the output on to, in order"})
    threshold = fields.Float(validate=validate.Range(min=0, max=1), allow_nan=False,
                             metadata={"description": "detect: the score a detection needs (default 0.3)"})


class PipelineRunForm(Strict):
    project_id = QueryId(required=True)
    threshold = fields.Float(validate=validate.Range(min=0, max=1), allow_nan=False,
                             metadata={"description": "detect: the score a detection needs (default 0.3)"})
    then = Text(load_default="", validate=validate.Length(max=1024), metadata={"description": "comma-separated stages"})
    regions = Text(load_default="", validate=validate.Length(max=65_536),
                   metadata={"description": "JSON list of {x, y, w, h} or null per file"})


class PipelineRunUpload(PipelineRunForm):
    """The multipart body: the form and the images."""

    files = Files(64, required=True, metadata={"description": "JPEG, PNG, WebP or GIF"})


class PipelineRunOut(Schema):
    pipeline = fields.String()
    stages = fields.List(fields.String())
    deployment_id = fields.Integer(allow_none=True)
    items = fields.List(fields.Dict(), metadata={"description": "per item: `result` or `error` {reason, message}"})
    timings = fields.Dict(metadata={"description": "ms per stage, model, total"})


class PipelineList(Schema):
    pipelines = fields.Dict()
    stages = fields.Dict()
