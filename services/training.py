"""The training job (training queue): fit a checkpoint on a cached dataset, in place, resumably.

Every finished epoch is saved (weights and optimizer state, one `.keras` blob) and named in the
checkpoint's `state` in one conditional UPDATE, so a job redelivered after its worker died loads that
file and continues with the next epoch: the same checkpoint, never a second one. Before the first epoch
the starting weights are evaluated on the validation split, so the curve starts with the untrained
figures. A cancel stops between two steps and leaves the checkpoint `cancelled` with the weights of its
last finished epoch. TensorFlow is imported inside the job: other pools load this module without it.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import update

from models.architectures import Architecture, get_architecture
from store.schema import Checkpoint, CheckpointStatus, Dataset, DatasetStatus
from store.scratch import fresh_scratch
from services.settle import checkpoint_end_values


@dataclass
class TrainingPlan:
    """What the job reads from the catalog once, before TensorFlow starts."""

    checkpoint_id: int
    architecture: Architecture
    size: int
    seed: int
    classes: list[str]
    weights_key: str | None
    dataset_blob: str
    records: dict[str, int]
    params: dict
    state: dict
    curve: list = field(default_factory=list)


def train(ctx, checkpoint_id: int) -> dict:
    plan = _training_plan(ctx, checkpoint_id)
    if isinstance(plan, dict):
        return plan  # finished by an earlier delivery of this job
    work = fresh_scratch(ctx.rt.settings.work_dir, f"train-{checkpoint_id}-", ctx.id)
    try:
        return Run(ctx, plan, work).run()  # a run that raises is settled by the job's end (services.settle)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _training_plan(ctx, checkpoint_id: int) -> TrainingPlan | dict:
    with ctx.rt.sessions() as session:
        ck = session.get(Checkpoint, checkpoint_id)
        if ck is None:
            raise RuntimeError(f"checkpoint {checkpoint_id} was deleted")
        if ck.job_id == ctx.id and ck.status is CheckpointStatus.trained:
            return {"checkpoint_id": ck.id, "metrics": ck.metrics, "epochs": ck.state.get("epochs_done", 0)}
        if ck.job_id != ctx.id or ck.status is not CheckpointStatus.training:
            raise RuntimeError(f"checkpoint {ck.id} is {ck.status.value} for job {ck.job_id}, not training in this job")
        dataset = session.get(Dataset, ck.dataset_id) if ck.dataset_id else None
        if dataset is None or dataset.key != ck.dataset_key or dataset.status is not DatasetStatus.ready:
            raise RuntimeError(f"dataset {ck.dataset_key} left the cache before training read it; request the "
                               "dataset again and train a new fork on it")
        return TrainingPlan(ck.id, get_architecture(ck.architecture), int(ck.config["input_size"]),
                            int(ck.config["seed"]), list(ck.classes), ck.weights_key, dataset.blob_key,
                            dict(dataset.manifest["records"]), dict(ck.params), dict(ck.state), list(ck.curve))


class Run:
    def __init__(self, ctx, plan: TrainingPlan, work: Path):
        self.ctx, self.plan, self.work = ctx, plan, work
        self.blobs = ctx.rt.blobs
        self.params = plan.params
        self.state = plan.state
        self.curve = plan.curve

    def run(self) -> dict:
        try:
            from models import data, training  # TensorFlow: only the training pool gets here
        except ImportError as exc:
            raise RuntimeError(f"this worker cannot train: {exc}; install loopline[train]") from None

        plan, params = self.plan, self.params
        device = training.device()
        self.ctx.progress(0, 1, f"preparing on {device['name']}", force=True, device=device)
        files = self._unpack()
        spec = plan.architecture.spec(plan.size)
        batch, epochs = params["batch_size"], params["epochs"]
        classes = len(plan.classes)
        train_ds = data.make_dataset(files["train"], plan.architecture, spec, batch, records=plan.records["train"],
                                     shuffle=True, seed=params["seed"], classes=classes)
        val_ds = (data.make_dataset(files["validation"], plan.architecture, spec, batch,
                                    records=plan.records["validation"], shuffle=False, classes=classes)
                  if plan.records.get("validation") else None)
        epoch_metrics = None
        if val_ds is not None and plan.architecture.task == "detection":  # COCO mAP after every epoch
            examples = list(data.examples(files["validation"], plan.size))

            def epoch_metrics():
                return training.detection_metrics(model, examples, plan.classes, spec, batch)
        done = int(self.state.get("epochs_done", 0))
        if done:
            model = self._load(self.state["state_key"], compile=True)
            self.ctx.progress(done / epochs, None, f"resuming after epoch {done} of {epochs} on {device['name']}",
                              force=True, resumed_from_epoch=done)
        else:
            model = self._starting_model()
            if val_ds is not None:
                initial = {**training.evaluate(model, val_ds), **(epoch_metrics() if epoch_metrics else {})}
                self.curve = [{"epoch": 0, **_rounded(initial)}]
                self._save_state({**self.state, "device": device, "initial": _rounded(initial)})
        stopper = (training.EarlyStopping(**{k: v for k, v in params["early_stopping"].items() if k != "restore_best"},
                                          **self.state.get("early_stopping_state", {}))
                   if params.get("early_stopping") else None)
        steps = training.steps_per_epoch(plan.records["train"], batch)
        if done < epochs and not self.state.get("stopped_early"):
            reporter = training.Reporter(
                epochs=epochs, steps=steps, batch_size=batch, every=params["report_every_steps"],
                on_step=self._on_step, on_epoch=lambda *a: self._on_epoch(model, stopper, *a),
                tick=self.ctx.poll_cancel, early_stopping=stopper, epoch_metrics=epoch_metrics)
            self.ctx.progress(done / epochs, None, f"training on {device['name']}", force=True, device=device)
            training.fit(model, train_ds, val_ds, epochs=epochs, initial_epoch=done, reporter=reporter)
        return self._finish(stopper)

    # --- the steps of a run ----------------------------------------------------------------------
    def _unpack(self) -> dict[str, list[str]]:
        """The dataset's shards in the work folder (the zip is read member by member)."""
        folder = self.work / "dataset"
        files: dict[str, list[str]] = {"train": [], "validation": []}
        with self.blobs.open(self.plan.dataset_blob) as fh, zipfile.ZipFile(fh) as archive:
            for info in archive.infolist():
                split = info.filename.removeprefix("data/").split("-", 1)[0]
                if not info.filename.startswith("data/") or split not in files:
                    continue
                target = folder / Path(info.filename).name
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                files[split].append(str(target))
        return {split: sorted(names) for split, names in files.items()}

    def _load(self, key: str, *, compile: bool):
        from models import training

        path = self.work / f"load-{key[:16]}.keras"
        self.blobs.save_as(key, path)
        try:
            return training.load(str(path), compile=compile)
        except Exception as exc:  # a broken upload surfaces here, named
            raise RuntimeError(f"the starting weights ({key[:12]}…) do not load: {exc}") from None
        finally:
            path.unlink(missing_ok=True)

    def _starting_model(self):
        from models import networks

        plan, params = self.plan, self.params
        classes = len(plan.classes)
        if plan.weights_key:
            model = self._load(plan.weights_key, compile=False)
            if params.get("reinit_head"):
                model = networks.with_new_head(model, classes, seed=plan.seed)
        else:
            model = networks.build(plan.architecture, classes, plan.size, seed=plan.seed)
        if networks.output_classes(model) != classes:
            raise RuntimeError(f"the starting weights predict {networks.output_classes(model)} classes, the dataset's "
                               f"label map has {classes}; train with reinit_head")
        if networks.input_size(model) != plan.size:
            raise RuntimeError(f"the starting weights take {networks.input_size(model)} px inputs, not {plan.size}")
        return networks.compile_for(model, plan.architecture, params["learning_rate"])

    def _on_step(self, report) -> None:
        logs = _rounded(report.logs)
        loss = f" · loss {logs['loss']:.4f}" if "loss" in logs else ""
        self.ctx.progress(report.fraction, None,
                          f"epoch {report.epoch}/{report.epochs} · step {report.step}/{report.steps}{loss}",
                          step={"epoch": report.epoch, "epochs": report.epochs, "step": report.step,
                                "steps": report.steps, **logs, "samples_per_s": report.samples_per_s,
                                "eta_s": report.eta_s})

    def _on_epoch(self, model, stopper, epoch: int, logs: dict, seconds: float, rate: float, stop: bool) -> None:
        path = self.work / "epoch.keras"
        model.save(path)
        with open(path, "rb") as fh:
            key, _ = self.blobs.put_stream(fh)
        path.unlink()
        entry = {"epoch": epoch, **_rounded(logs), "seconds": round(seconds, 2), "samples_per_s": round(rate, 1)}
        self.curve.append(entry)
        state = {**self.state, "epochs_done": epoch, "state_key": key, "stopped_early": stop}
        if stopper is not None:
            state["early_stopping_state"] = {k: v for k, v in stopper.to_dict().items()
                                             if k in ("best", "best_epoch", "wait")}
            if stopper.best_epoch == epoch:
                state["best_key"] = key
        self._save_state(state)
        epochs = self.params["epochs"]
        self.ctx.progress(epoch / epochs, None, f"epoch {epoch}/{epochs} done"
                          + (f" · val_loss {entry['val_loss']:.4f}" if "val_loss" in entry else "")
                          + (" · stopping early" if stop else ""), force=True, epoch_summary=entry, curve=self.curve)

    def _save_state(self, state: dict) -> None:
        """Name the new epoch file in one conditional UPDATE; the file it replaces is left to the blob
        collector (services/collector.py), which deletes it once no row names it."""
        with self.ctx.rt.sessions() as session:
            done = session.execute(
                update(Checkpoint).where(Checkpoint.id == self.plan.checkpoint_id, Checkpoint.job_id == self.ctx.id,
                                         Checkpoint.status == CheckpointStatus.training)
                .values(state=state, curve=self.curve)).rowcount
            session.commit()
            if not done:
                raise RuntimeError(f"checkpoint {self.plan.checkpoint_id} no longer trains in this job")
            self.state = state

    def _finish(self, stopper) -> dict:
        state, params = self.state, self.params
        use_best = bool(stopper and params["early_stopping"].get("restore_best", True) and state.get("best_key"))
        final_key = state["best_key"] if use_best else state["state_key"]
        final_epoch = state["early_stopping_state"]["best_epoch"] if use_best else state["epochs_done"]
        final = next((e for e in self.curve if e["epoch"] == final_epoch), {})
        metrics = {**{k: v for k, v in final.items() if k not in ("epoch", "seconds", "samples_per_s")},
                   "epoch": final_epoch, "epochs_trained": state["epochs_done"],
                   "stopped_early": bool(state.get("stopped_early")), "initial": state.get("initial", {})}
        trained = [e for e in self.curve if e["epoch"] > 0]
        if trained:
            metrics["samples_per_s"] = round(sum(e["samples_per_s"] for e in trained) / len(trained), 1)
        with self.ctx.rt.sessions() as session:
            done = session.execute(
                update(Checkpoint).where(Checkpoint.id == self.plan.checkpoint_id, Checkpoint.job_id == self.ctx.id,
                                         Checkpoint.status == CheckpointStatus.training)
                .values(**checkpoint_end_values(CheckpointStatus.trained, weights_key=final_key, metrics=metrics,
                                        curve=self.curve, state=_without_epoch_files(state)))).rowcount
            session.commit()
            if not done:
                raise RuntimeError(f"checkpoint {self.plan.checkpoint_id} no longer trains in this job")
        return {"checkpoint_id": self.plan.checkpoint_id, "metrics": metrics, "epochs": state["epochs_done"],
                "device": state.get("device")}


def _without_epoch_files(state: dict) -> dict:
    """A trained checkpoint's state: the epoch files stop being named (the weights name the one kept), so
    the collector deletes the others."""
    return {k: v for k, v in state.items() if k not in ("state_key", "best_key")}


def _rounded(logs: dict) -> dict:
    return {k: round(float(v), 5) for k, v in logs.items()}
