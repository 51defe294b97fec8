"""Names of the Redis keys and channels loopline uses, all under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "loopline"

    @property
    def socketio_channel(self) -> str:
        return f"{self.prefix}:socketio"

    def job_heartbeat(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:alive"

    def job_cancel(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:cancel"

    def dataset_lock(self, key: str) -> str:
        return f"{self.prefix}:dataset:{key}:lock"

    @property
    def eviction_lock(self) -> str:
        return f"{self.prefix}:datasets:evict:lock"

    @property
    def reaper_lock(self) -> str:
        return f"{self.prefix}:reaper:lock"

    @property
    def collector_pass(self) -> str:
        """Set for `collect_interval` seconds by the process that starts a collector pass."""
        return f"{self.prefix}:collector:pass"

    def active_deployment(self, project_id: int, task: str) -> str:
        """The id of a project's active deployment for a task (set on activation; the catalog is the truth)."""
        return f"{self.prefix}:project:{project_id}:active:{task}"

    def reply(self, call_id: str) -> str:
        return f"{self.prefix}:reply:{call_id}"

    @property
    def worker_presence(self) -> str:
        """Hash: worker node name → what it says of itself, refreshed by the worker (`workers.monitor`)."""
        return f"{self.prefix}:workers"
