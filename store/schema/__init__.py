"""The catalog: SQLAlchemy 2.0 typed models. The schema itself is made only by Alembic migrations."""

from store.schema.access import ApiToken, Membership, Project, Role, User, WebSession
from store.schema.base import Base
from store.schema.data import (
    Annotation,
    AnnotationSource,
    AnnotationStatus,
    Image,
    LabelClass,
    LabelMap,
    LabelMapEntry,
    Review,
    Verdict,
)
from store.schema.jobs import Job, JobStatus
from store.schema.ml import (
    Checkpoint, CheckpointStatus, Dataset, DatasetStatus, Deployment, DeploymentStatus, DeploymentTask, Evaluation,
    EvaluationStatus, LabelStudioImport, LabelStudioLink,
)

__all__ = [
    "Annotation", "AnnotationSource", "AnnotationStatus", "ApiToken", "Base", "Checkpoint",
    "CheckpointStatus", "Dataset", "DatasetStatus", "Deployment", "DeploymentStatus", "DeploymentTask", "Evaluation",
    "EvaluationStatus", "Image", "Job",
    "JobStatus", "LabelClass", "LabelStudioImport", "LabelStudioLink", "LabelMap", "LabelMapEntry", "Membership", "Project", "Review", "Role",
    "User", "Verdict", "WebSession",
]
