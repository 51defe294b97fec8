"""`Loopline` methods for models: architectures, checkpoints and training, deployments, suggestions,
pipelines, evaluations and pre-annotation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from loopline_client import types as t
from loopline_client._files import _bytes_bar, _Multipart
from loopline_client._http import _body, _Http, Box4, PathLike
from loopline_client.errors import JobFailed


class _Models(_Http):
    """Checkpoints, training, deployments, suggestions, pipelines, evaluations, pre-annotation."""

    # --- checkpoints and training --------------------------------------------------------------
    def architectures(self) -> list[dict]:
        return self._json("GET", "/api/architectures")["items"]

    def checkpoints(self, project_id: int, limit: int | None = None, **filters) -> Iterator[t.Checkpoint]:
        """Oldest first; filters: status, architecture, dataset_key, parent_id, class_id."""
        return self._pages(f"/api/projects/{project_id}/checkpoints", filters, limit)

    def checkpoint_tree(self, project_id: int) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/checkpoints/tree")

    def checkpoint(self, project_id: int, checkpoint_id: int) -> t.Checkpoint:
        return self._json("GET", f"/api/projects/{project_id}/checkpoints/{checkpoint_id}")

    def create_checkpoint(self, project_id: int, architecture: str, label_map_id: int, name: str | None = None,
                          input_size: int | None = None, seed: int | None = None) -> t.Checkpoint:
        """A root with fresh weights (a function of architecture, classes, size and seed)."""
        return self._json("POST", f"/api/projects/{project_id}/checkpoints", json=_body(
            architecture=architecture, label_map_id=label_map_id, name=name, input_size=input_size, seed=seed))

    def upload_checkpoint(self, project_id: int, file: PathLike, architecture: str, label_map_id: int,
                          name: str | None = None, progress: bool = False) -> t.Checkpoint:
        """A root from a `.keras` file (Keras 3), checked by the server before it is stored."""
        path = Path(file)
        fields = [("architecture", architecture), ("label_map_id", str(label_map_id))] + (
            [("name", name)] if name else [])
        with _bytes_bar(progress, "upload", path.stat().st_size) as bar:
            body = _Multipart(fields, [("file", path.name, path)], bar)
            return self._json("POST", f"/api/projects/{project_id}/checkpoints", data=body,
                              headers={"Content-Type": body.content_type}, timeout=max(self.timeout, 600))

    def fork(self, project_id: int, checkpoint_id: int, name: str | None = None) -> t.Checkpoint:
        return self._json("POST", f"/api/projects/{project_id}/checkpoints/{checkpoint_id}/fork", json=_body(name=name))

    def train(self, project_id: int, checkpoint_id: int, dataset_key: str, *, epochs: int | None = None,
              batch_size: int | None = None, learning_rate: float | None = None,
              early_stopping: dict | None = None, reinit_head: bool | None = None,
              report_every_steps: int | None = None, seed: int | None = None, wait: bool = False,
              timeout: float = 7 * 86400, on_event: Callable[[t.Job], None] | None = None,
              progress: bool = False) -> t.Checkpoint:
        """Start training a fresh (or failed) checkpoint; with `wait`, follow the run (`on_event` gets every
        state of the job: `details.step`, `details.epoch_summary`, `details.curve`) and return the checkpoint
        as it ended; JobFailed when the run failed or was cancelled."""
        ck = self._json("POST", f"/api/projects/{project_id}/checkpoints/{checkpoint_id}/train", json=_body(
            dataset_key=dataset_key, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            early_stopping=early_stopping, reinit_head=reinit_head, report_every_steps=report_every_steps, seed=seed))
        if wait:
            return self.follow_training(project_id, checkpoint_id, timeout=timeout, on_event=on_event,
                                        progress=progress)
        return ck

    def follow_training(self, project_id: int, checkpoint_id: int, *, timeout: float = 7 * 86400,
                        on_event: Callable[[t.Job], None] | None = None, progress: bool = False) -> t.Checkpoint:
        ck = self.checkpoint(project_id, checkpoint_id)
        if ck.get("job_id"):
            job = self.wait_job(ck["job_id"], timeout, on_event=on_event, progress=progress, label="train")
            ck = self.checkpoint(project_id, checkpoint_id)
            if job["status"] != "succeeded":
                raise JobFailed(f"training checkpoint {checkpoint_id} {job['status']}: "
                                f"{job.get('error') or job.get('message')}", job)
        return ck

    def download_weights(self, project_id: int, checkpoint_id: int, dest: PathLike, progress: bool = False) -> Path:
        return self._save(f"/api/projects/{project_id}/checkpoints/{checkpoint_id}/weights", Path(dest), progress)

    # --- deployments, suggestions, pipelines ---------------------------------------------------
    def deployments(self, project_id: int, limit: int | None = None, **filters) -> Iterator[t.Deployment]:
        """Newest first; filters: task, active, status."""
        return self._pages(f"/api/projects/{project_id}/deployments", filters, limit)

    def deployment(self, project_id: int, deployment_id: int) -> t.Deployment:
        return self._json("GET", f"/api/projects/{project_id}/deployments/{deployment_id}")

    def deploy(self, project_id: int, checkpoint_id: int, activate: bool = True, *, wait: bool = True,
               timeout: float = 3600, progress: bool = False) -> t.Deployment:
        """Export the checkpoint to ONNX, check it against Keras and (with `activate`) make it the active one;
        with `wait`, the ready deployment (JobFailed with the reason when the check refused it)."""
        dep = self._json("POST", f"/api/projects/{project_id}/deployments",
                         json={"checkpoint_id": checkpoint_id, "activate": activate})
        if not wait or not dep.get("job_id"):
            return dep
        job = self.wait_job(dep["job_id"], timeout, progress=progress, label="deploy")
        dep = self.deployment(project_id, dep["id"])
        if job["status"] != "succeeded" or dep["status"] != "ready":
            raise JobFailed(f"deployment {dep['id']} {dep['status']}: {dep.get('error') or job.get('error')}", job)
        return dep

    def activate(self, project_id: int, deployment_id: int) -> t.Deployment:
        return self._json("POST", f"/api/projects/{project_id}/deployments/{deployment_id}/activate")

    def download_model(self, project_id: int, deployment_id: int, dest: PathLike, progress: bool = False) -> Path:
        return self._save(f"/api/projects/{project_id}/deployments/{deployment_id}/model", Path(dest), progress)

    def suggest(self, project_id: int, image_id: int, region: Box4 | dict | None = None,
                point: tuple[float, float] | dict | None = None) -> t.Suggestion:
        """The active suggester's box around a rough `region` (x, y, w, h) or a `point` (x, y), stored as a
        proposed model box."""
        if (region is None) == (point is None):
            raise ValueError("give a region or a point")
        body = {"region": _xywh(region)} if region is not None else {
            "point": point if isinstance(point, dict) else dict(zip(("x", "y"), point))}
        return self._json("POST", f"/api/projects/{project_id}/images/{image_id}/suggestions", json=body)

    def pipelines(self) -> dict:
        return self._json("GET", "/api/pipelines")

    def run_pipeline(self, name: str, project_id: int, *, urls: Iterable[str] = (), files: Iterable[PathLike] = (),
                     regions: Sequence[Box4 | dict | None] | None = None, then: Sequence[str] = ()) -> t.PipelineRun:
        """Run a pipeline (`suggest`, `classify`) or one stage (plus `then`) on up to 64 images: URLs, or
        files sent as bytes; `regions[i]` is the rough box of item i (for `suggest`)."""
        urls, files = list(urls), [Path(f) for f in files]
        if bool(urls) == bool(files):
            raise ValueError("give URLs or files, not both")
        regs = [None if r is None else _xywh(r) for r in regions] if regions is not None else None
        path = f"/api/pipelines/{name}/runs"
        if urls:
            items = [_body(url=u, region=regs[i] if regs and i < len(regs) else None) for i, u in enumerate(urls)]
            return self._json("POST", path, json=_body(project_id=project_id, items=items, then=list(then) or None))
        fields = [("project_id", str(project_id))] + ([("then", ",".join(then))] if then else []) + (
            [("regions", json.dumps(regs))] if regs is not None else [])
        body = _Multipart(fields, [("files", f.name, f) for f in files], None)
        return self._json("POST", path, data=body, headers={"Content-Type": body.content_type})

    # --- detectors: evaluation and pre-annotation --------------------------------------------
    def evaluate(self, project_id: int, *, checkpoint_id: int | None = None, deployment_id: int | None = None,
                 label_map_id: int | None = None, subset: str | None = None, image_ids: Sequence[int] | None = None,
                 wait: bool = True, timeout: float = 3600, progress: bool = False) -> dict:
        """Score a detector checkpoint or deployment (COCO mAP) on a label map's selection or on image ids;
        with `wait`, the finished evaluation (its `metrics`), JobFailed when the job did not succeed."""
        ev = self._json("POST", f"/api/projects/{project_id}/evaluations", json=_body(
            checkpoint_id=checkpoint_id, deployment_id=deployment_id, label_map_id=label_map_id, subset=subset,
            image_ids=list(image_ids) if image_ids is not None else None))
        if not wait or not ev.get("job_id"):
            return ev
        job = self.wait_job(ev["job_id"], timeout, progress=progress, label="evaluate")
        ev = self.evaluation(project_id, ev["id"])
        if job["status"] != "succeeded":
            raise JobFailed(f"evaluation {ev['id']} {job['status']}: {ev.get('error') or job.get('error')}", job)
        return ev

    def evaluations(self, project_id: int, limit: int | None = None, **filters) -> Iterator[dict]:
        """Newest first; filters: checkpoint_id, status."""
        return self._pages(f"/api/projects/{project_id}/evaluations", filters, limit)

    def evaluation(self, project_id: int, evaluation_id: int) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/evaluations/{evaluation_id}")

    def preannotate(self, project_id: int, *, image_ids: Sequence[int] | None = None, ingest_job_id: str | None = None,
                    unannotated: bool | None = None, threshold: float | None = None, wait: bool = True,
                    timeout: float = 3600, progress: bool = False) -> t.Job:
        """The active detector's detections over a selection, stored as proposed model boxes (one job)."""
        job = self._json("POST", f"/api/projects/{project_id}/pre-annotations", json=_body(
            image_ids=list(image_ids) if image_ids is not None else None, ingest_job_id=ingest_job_id,
            unannotated=unannotated, threshold=threshold))
        if wait:
            job = self.wait_job(job["id"], timeout, progress=progress, label="pre-annotate")
            if job["status"] != "succeeded":
                raise JobFailed(f"pre-annotation job {job['id']} {job['status']}: {job.get('error')}", job)
        return job

    def preannotation_settings(self, project_id: int) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/pre-annotation")

    def set_preannotation(self, project_id: int, *, after_ingest: bool | None = None,
                          threshold: float | None = None) -> dict:
        return self._json("PUT", f"/api/projects/{project_id}/pre-annotation",
                          json=_body(after_ingest=after_ingest, threshold=threshold))


def _xywh(box: Box4 | dict) -> dict:
    return dict(box) if isinstance(box, dict) else dict(zip(("x", "y", "w", "h"), box))
