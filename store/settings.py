"""Settings from `LOOPLINE_*` environment variables, with embedded defaults that run on one laptop.

Every process (API, each worker pool, the CLI) builds the same `Settings` from its environment,
so pointing a deployment at PostgreSQL or a remote Redis is one variable each.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("var"), description="local folder for the SQLite file and blobs")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="broker, events, locks, cache")
    key_prefix: str = Field(default="loopline", description="prefix of every Redis key loopline writes")
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0, description="largest accepted HTTP body")
    max_json_bytes: int = Field(default=1024 * 1024, gt=0, description="largest accepted JSON body")
    progress_write_interval: float = Field(default=1.0, ge=0, description="seconds between job progress DB writes")
    progress_emit_interval: float = Field(default=0.1, ge=0, description="seconds between job progress events")
    heartbeat_interval: float = Field(default=5.0, gt=0, description="seconds between a running job's heartbeats")
    heartbeat_ttl: float = Field(default=30.0, gt=0, description="a job whose heartbeat is older is presumed dead")
    dispatch_grace: float = Field(
        default=10.0, gt=0, description="seconds a queued job's message may be out of sight before it is sent again"
    )
    max_attempts: int = Field(default=5, ge=1, le=100, description="runs of a job whose worker keeps dying before it fails")
    max_image_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="largest accepted image file")
    max_image_pixels: int = Field(default=64_000_000, gt=0, description="width*height above this is refused (decompression bombs)")
    thumbnail_size: int = Field(default=256, ge=16, le=2048, description="longest side of stored thumbnails")
    max_upload_items: int = Field(default=10_000, gt=0, description="files, zip members and URLs in one upload")
    max_zip_bytes: int = Field(default=4 * 1024**3, gt=0, description="total uncompressed size of one uploaded zip")
    fetch_timeout: float = Field(default=20.0, gt=0, description="seconds for one URL fetch, redirects included")
    fetch_allow_networks: list[str] = Field(
        default_factory=list, description='CIDRs URL fetches may reach although not public, JSON: ["10.1.2.0/24"]'
    )
    blob_grace_seconds: float = Field(
        default=3600.0, ge=0, description="unreferenced blobs, staging and temp files younger than this are kept"
    )
    collect_interval: float = Field(default=600.0, gt=0, description="seconds between the collector's passes")
    dataset_cache_bytes: int = Field(
        default=50 * 1024**3, gt=0, description="disk quota of built datasets; least recently used go first"
    )
    deploy_tolerance: float = Field(
        default=1e-4, gt=0, description="largest |ONNX - Keras| output difference a deployment may show"
    )
    image_cache_bytes: int = Field(
        default=256 * 1024**2, ge=0, description="decoded images each inference process keeps (LRU)"
    )
    suggestion_timeout: float = Field(default=5.0, gt=0, description="seconds a suggestion request waits for a worker")
    pipeline_timeout: float = Field(default=60.0, gt=0, description="seconds a pipeline run request waits for its answer")
    session_ttl_hours: float = Field(default=168.0, gt=0, le=24 * 366, description="hours a dashboard sign-in lasts")
    trusted_origins: list[str] = Field(
        default_factory=list,
        description='origins besides the server\'s own whose cookie-authenticated writes are accepted, JSON: ["https://cv.example.org"]',
    )
    visibility_timeouts: dict[str, int] = Field(
        default_factory=dict, description='per-queue override of the broker visibility timeout, JSON: {"augmentation": 600}'
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'loopline.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def work_dir(self) -> Path:
        """Scratch space for builds, on the same file system as the blobs (so publishing is a rename)."""
        return self.data_dir / "work"

    @property
    def staging_dir(self) -> Path:
        """Uploads wait here, one folder per upload, until their ingest job has read them."""
        return self.data_dir / "staging"

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.staging_dir.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides) -> Settings:
    """Settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)
