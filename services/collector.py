"""The collector: deletes what no catalog row names any more — blobs, staging folders, job scratch folders.

Rows reference blobs, and nothing deletes a blob inline: deleting an image or a dataset, evicting a
dataset and replacing a training run's epoch file only change rows. A pass (`collect`; the reaper's loop
runs one every `collect_interval` seconds through `collect_if_due`, `loopline collect` runs one now):

1. **Blobs.** It reads every key the catalog names (`NAMING`: images' file and thumbnail, datasets' zip,
   checkpoints' weights and the epoch files their `state` names, deployments' ONNX file), lists the
   stored blobs, and hands those no row names and older than `blob_grace_seconds` to
   `BlobStore.delete_unreferenced`, which checks age and references again, under the keys' locks,
   before it deletes. Epoch files of a failed run stay while its checkpoint's `state` names them (until
   it trains again or goes with its project).
2. **Temp files** of interrupted blob writes older than the grace.
3. **Staging folders** (`store/staging.py`) that no queued or running job names: those of jobs that
   ended (a reaped or cancelled ingest never removed its own), and those no job names at all once nothing
   was written to them for the grace (the API stages the files before it writes the job row).
4. **Scratch folders** (`store/scratch.py`) of jobs that ended or are no longer in the catalog. Folders
   named without a job id are left alone.

Why no row ever names a deleted blob (LocalBlobStore: the locks are flocks of the key's folder):

- A writer stores or reuses blob k under a shared lock of k: `put_*` writes k or, when k is there,
  refreshes its mtime (`touch`). Either way k is present when the lock goes, with an mtime no older than
  the moment the writer looked. Then the writer commits the row naming k.
- The collector deletes k only while it holds k's exclusive lock (it never waits for one), and only if,
  under that lock, (a) k's mtime is older than now − grace and (b) a catalog read begun under the lock
  finds no row naming k. A read begun after a commit sees it (a new SQLite read transaction; a new
  PostgreSQL statement).
- The two lock sections exclude each other. If the collector's comes first, k is gone when the writer
  looks, and the writer stores it again: its row names a present file. If the writer's comes first, then
  either the writer committed before (b) began, and (b) sees the row, or it has not, and (a) holds only if
  the writer looked more than the grace ago. So the collector deletes only what no committed row names
  and no writer looked at within the grace without having committed since.
- `BlobStore.hold` removes that last timing assumption where blobs are shared most: the ingest keeps the
  shared locks of its blobs until its rows are committed, so a collector section comes wholly before its
  look (case one) or wholly after its commit (seen by (b)), whatever the grace. The other writers (dataset
  build, training epochs, ONNX export, checkpoint upload) commit seconds after their put, well inside an
  hour.
- A row that names k without putting it copies k from a row that keeps naming it until the copy is
  committed (a fork copies its parent's weights; checkpoints go only with their project, forks included).

Staging and scratch have no such locks; the rules above are safe because a job that ended never runs
again (its context skips it), a live job keeps its folders, and the API writes into a staging folder
until the job naming it is committed (an upload that writes nothing for the whole grace loses it).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from store.schema import Checkpoint, Dataset, Deployment, Image, Job
from store.scratch import scratch_job
from store.staging import Staging

log = logging.getLogger(__name__)

IN_BATCH = 500  # bound parameters per IN list


def naming_columns() -> tuple:
    """Every catalog expression that names a blob. A new column that names one belongs here."""
    return (
        Image.blob_key, Image.thumb_key, Dataset.blob_key, Checkpoint.weights_key,
        Checkpoint.state["state_key"].as_string(), Checkpoint.state["best_key"].as_string(),
        Deployment.model_key,
    )


@dataclass
class CollectReport:
    blobs: list[str] = field(default_factory=list)
    temporary: int = 0
    staging: list[str] = field(default_factory=list)
    scratch: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.blobs or self.temporary or self.staging or self.scratch)

    def summary(self) -> str:
        return (f"collected {len(self.blobs)} blobs, {self.temporary} temp files, {len(self.staging)} staging "
                f"folders, {len(self.scratch)} scratch folders")


def collect(runtime, *, grace: float | None = None) -> CollectReport:
    """One pass over blobs, temp files, staging and scratch folders. `grace` defaults to the setting."""
    grace = runtime.settings.blob_grace_seconds if grace is None else grace
    report = CollectReport(blobs=collect_blobs(runtime, grace=grace))
    report.temporary = runtime.blobs.sweep_temporary(time.time() - grace)
    report.staging = collect_staging(runtime, grace=grace)
    report.scratch = collect_scratch(runtime)
    if report:
        log.info("collector: %s", report.summary())
    return report


def collect_if_due(runtime) -> CollectReport | None:
    """A pass if none started in the last `collect_interval` seconds in any process (a Redis key says)."""
    interval = runtime.settings.collect_interval
    if not runtime.redis.set(runtime.keys.collector_pass, str(time.time()), nx=True, ex=max(1, round(interval))):
        return None
    return collect(runtime)


def collect_blobs(runtime, *, grace: float) -> list[str]:
    """Delete the blobs no row names that are older than `grace` seconds; return their keys. A negative
    grace makes every blob count as old (the ingest's holds keep it safe even so)."""
    cutoff = time.time() - grace
    with runtime.sessions() as session:
        named = named_keys(session)
    candidates = [key for key, mtime in runtime.blobs.list_keys() if mtime < cutoff and key not in named]
    if not candidates:
        return []
    return runtime.blobs.delete_unreferenced(candidates, cutoff, lambda keys: referenced(runtime, keys))


def named_keys(session) -> set[str]:
    names: set[str] = set()
    for column in naming_columns():
        names.update(k for k in session.scalars(select(column).where(column.is_not(None)).distinct()) if k)
    return names


def referenced(runtime, keys: set[str]) -> set[str]:
    """Those of `keys` some row names, read in a transaction of its own (begun now)."""
    found: set[str] = set()
    ordered = sorted(keys)
    with runtime.sessions() as session:
        for start in range(0, len(ordered), IN_BATCH):
            chunk = ordered[start:start + IN_BATCH]
            for column in naming_columns():
                found.update(session.scalars(select(column).where(column.in_(chunk)).distinct()))
    return found


def collect_staging(runtime, *, grace: float) -> list[str]:
    """Remove the staging folders no queued or running job names: a job's that ended at once, one no job
    names once nothing in it changed for `grace` seconds. Returns the upload ids removed."""
    staging = Staging(runtime.settings.staging_dir)
    try:
        with os.scandir(staging.root) as entries:
            folders = [e.name for e in entries if e.is_dir(follow_symlinks=False) and _upload_id(staging, e.name)]
    except FileNotFoundError:
        return []
    if not folders:
        return []
    live, ended = set(), set()
    named = Job.params["staging"].as_string()
    with runtime.sessions() as session:
        for start in range(0, len(folders), IN_BATCH):
            for upload, status in session.execute(
                    select(named, Job.status).where(named.in_(folders[start:start + IN_BATCH]))):
                (ended if status.terminal else live).add(upload)
    cutoff = time.time() - grace
    removed = []
    for upload in folders:
        if upload in live:
            continue
        if upload in ended or _last_change(staging.folder(upload)) < cutoff:
            staging.remove(upload)
            removed.append(upload)
    return removed


def collect_scratch(runtime) -> list[str]:
    """Remove the scratch folders of jobs that ended or are gone from the catalog; return their names."""
    root = runtime.settings.work_dir
    try:
        with os.scandir(root) as entries:
            folders = {e.name: job for e in entries if e.is_dir(follow_symlinks=False)
                       and (job := scratch_job(e.name)) is not None}
    except FileNotFoundError:
        return []
    if not folders:
        return []
    ids = sorted(set(folders.values()))
    status = {}
    with runtime.sessions() as session:
        for start in range(0, len(ids), IN_BATCH):
            chunk = ids[start:start + IN_BATCH]
            status.update(session.execute(select(Job.id, Job.status).where(Job.id.in_(chunk))).all())
    removed = []
    for name, job in sorted(folders.items()):
        if job not in status or status[job].terminal:
            shutil.rmtree(root / name, ignore_errors=True)
            removed.append(name)
    return removed


def _upload_id(staging: Staging, name: str) -> bool:
    try:
        staging.folder(name)
        return True
    except ValueError:
        return False


def _last_change(folder: Path) -> float:
    """The newest mtime of the folder and its files (a file being streamed in is still changing)."""
    try:
        newest = folder.stat().st_mtime
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
                except FileNotFoundError:
                    continue
        return newest
    except FileNotFoundError:
        return time.time()
