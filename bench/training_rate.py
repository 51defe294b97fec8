"""Samples per second of the real training job, against a plain `model.fit` of the same model on the same shards.

Input, made here: a labelled project of N 320x240 scenes written straight into a throwaway SQLite catalog
(`tests.support.catalog.labelled_project`), and one `suggest@1` dataset ({"size": S, "regions": R}) built
by a real augmentation worker, which is stopped once the dataset is ready. Same zip on both sides.

* baseline: this process. The dataset's zip is extracted once; each round builds the same model
  (`networks.build(box_suggester, 2 classes, S, seed 0)`, `networks.compile_for`, Adam 1e-3), the same
  train and validation pipelines (`models.data.make_dataset`, same batch size, seed and record counts)
  and runs a plain `model.fit(train, validation_data=val, epochs=E, steps_per_epoch=steps, verbose=0)`
  with one callback that only times each epoch (on_epoch_begin -> on_epoch_end, validation included).
* loopline: ONE training worker (`loopline worker training`, the solo pool, started as the tests start it
  by `tests.support.procs.Worker`) seen ready before any job is sent; Redis db 14 (the only db flushed,
  at start and end). Each round creates a root and a fork checkpoint and starts `checkpoint.train` on the
  dataset with `start_training`; the job's per-epoch `samples_per_s` come from its checkpoint's curve
  (timed by `models.training.Reporter` over the same span: on_epoch_begin -> on_epoch_end, before the
  epoch's file is saved). Curve entry 0 (the evaluation before training) is skipped. A one-epoch job
  first warms the worker (TensorFlow import).

Samples/s of an epoch = steps * batch / epoch seconds. Epoch 1 is left out on both sides (tracing, the
pipeline's cache filling); a round's figure is the median of epochs 2..E, and next to it all of epochs 2..E
together (their samples / their seconds: the harmonic mean), which does not hide a slow epoch. TensorFlow
is imported here only for the baseline, which never runs while the worker trains; both use TensorFlow's
default threading. Rounds alternate baseline / job; medians over rounds and the ratios job / baseline are
printed (target: >= 0.9), and for information the end-to-end rate: samples trained / the job's
started_at -> finished_at (unpacking, model build, the evaluation before training, the per-epoch saves).

    .venv/bin/python bench/training_rate.py [--scenes 40] [--size 128] [--regions 8] [--epochs 4]
                                            [--batch 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
import warnings
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handlers.registry import default_registry
from models.architectures import get_architecture
from store.schema import Checkpoint, CheckpointStatus, Dataset, Job, LabelMap
from tests.support.catalog import labelled_project
from tests.support.procs import Worker, wait_for_workers
from tests.support.waiting import wait_until
from workers.celery_app import create_celery
from services.checkpoints import start_training
from services.datasets import define, request_dataset
from services.runtime import Runtime
from throwaway import throwaway  # bench/throwaway.py (a script's folder is on sys.path)

REDIS_URL = "redis://127.0.0.1:6379/14"
ARCH = "box_suggester"
LR = 1e-3
POLL = 0.5  # s between polls: each is one small SQLite read; keep this process off the worker's cores


def build_dataset(settings, runtime, celery, log_dir: Path, scenes: int, size: int, regions: int):
    pid, uid, lm = labelled_project(settings, runtime, scenes)
    builder = Worker(settings, "augmentation", log_dir)
    try:
        wait_for_workers(celery, [builder])
        with runtime.sessions() as session:
            definition = define(session, project_id=pid, name="suggest", handler=default_registry().get("suggest@1"),
                                config={"size": size, "regions": regions}, label_map=session.get(LabelMap, lm))
            request_dataset(celery, runtime, session, definition, uid)
            session.commit()
            key = definition.key

        def ready():
            with runtime.sessions() as session:
                d = session.query(Dataset).filter_by(key=key).one()
                if d.status.value == "failed":
                    raise SystemExit(f"dataset build failed: {d.error}")
                return d if d.status.value == "ready" else None

        return pid, uid, wait_until(ready, 300, "the dataset was not built", every=POLL)
    finally:
        builder.stop()  # it takes no CPU from the measurements


def extract(runtime, dataset, folder: Path) -> dict[str, list[str]]:
    with runtime.blobs.open(dataset.blob_key) as fh, zipfile.ZipFile(fh) as archive:
        archive.extractall(folder)
    return {split: sorted(str(p) for p in (folder / "data").glob(f"{split}-*")) for split in ("train", "validation")}


def baseline(files: dict, records: dict, size: int, batch: int, epochs: int) -> list[float]:
    """Samples/s of each epoch of a plain `model.fit`, epochs 2..E."""
    import keras

    from models import data, networks, training

    arch = get_architecture(ARCH)
    spec = arch.spec(size)
    train = data.make_dataset(files["train"], arch, spec, batch, records=records["train"], shuffle=True, seed=0)
    val = data.make_dataset(files["validation"], arch, spec, batch, records=records["validation"], shuffle=False)
    model = networks.compile_for(networks.build(arch, 2, size, seed=0), arch, LR)
    steps = training.steps_per_epoch(records["train"], batch)
    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")  # the one-pass validation set
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed")  # fit's default; the stream shuffles
        model.fit(train, validation_data=val, epochs=epochs, steps_per_epoch=steps, callbacks=[EpochTimer()], verbose=0)
    keras.backend.clear_session()
    return [steps * batch / s for s in seconds[1:]]


def train_job(runtime, celery, pid: int, uid: int, dataset, size: int, params: dict) -> tuple[list[float], float, str]:
    """Run one training job on a fresh fork; (samples/s of epochs 2..E, job seconds, device name)."""
    with runtime.sessions() as session:
        common = dict(project_id=pid, architecture=ARCH, status=CheckpointStatus.fresh, classes=["cat", "dog"],
                      label_map_id=dataset.label_map_id, created_by=uid)
        root = Checkpoint(name=f"root-{uuid.uuid4().hex[:6]}", config={"source": "architecture", "input_size": size,
                                                                       "seed": 0}, **common)
        session.add(root)
        session.flush()
        child = Checkpoint(parent_id=root.id, name=f"fork-{uuid.uuid4().hex[:6]}",
                           config={"source": "fork", "input_size": size, "seed": 0}, **common)
        session.add(child)
        session.commit()
        job_id = start_training(celery, runtime, session, child, session.get(Dataset, dataset.id), params, uid).id
        session.commit()
        child_id = child.id

    def finished():
        with runtime.sessions() as session:
            job = session.get(Job, job_id)
            return job if job.status.terminal else None

    job = wait_until(finished, 1800, "the training job did not finish", every=POLL)
    if job.status.value != "succeeded":
        raise SystemExit(f"training job {job.status.value}: {job.error}")
    with runtime.sessions() as session:
        ck = session.get(Checkpoint, child_id)
        curve, device = list(ck.curve), (ck.state.get("device") or {}).get("name", "?")
    rates = [e["samples_per_s"] for e in curve if e["epoch"] >= 2]
    return rates, (job.finished_at - job.started_at).total_seconds(), device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="labelled 320x240 scenes in the project")
    parser.add_argument("--size", type=int, default=128, help="suggest@1 crop size = model input size")
    parser.add_argument("--regions", type=int, default=8, help="suggest@1 regions (records) per box")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; epochs 2.. are measured")
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 is not measured)")
    with throwaway(REDIS_URL, "training") as run:
        tmp, settings = run.tmp, run.settings
        runtime = Runtime(settings)
        run.cleanup.callback(runtime.close)
        celery = create_celery(settings, include_tasks=False)

        print(f"building suggest@1 (size {args.size}, regions {args.regions}) on {args.scenes} scenes ...", flush=True)
        start = time.perf_counter()
        pid, uid, dataset = build_dataset(settings, runtime, celery, tmp, args.scenes, args.size, args.regions)
        records = dict(dataset.manifest["records"])
        print(f"dataset ready in {time.perf_counter() - start:.0f} s: {records}, zip {dataset.size_bytes / 2**20:.1f} MB",
              flush=True)
        files = extract(runtime, dataset, tmp / "shards")

        trainer = Worker(settings, "training", tmp)
        run.cleanup.callback(trainer.stop)  # SIGTERM to its own process group, SIGKILL after 20 s
        wait_for_workers(celery, [trainer])  # before any job: a busy solo pool answers no ping
        params = {"epochs": args.epochs, "batch_size": args.batch, "learning_rate": LR, "early_stopping": None,
                  "reinit_head": False, "report_every_steps": 20, "seed": 0}
        train_job(runtime, celery, pid, uid, dataset, args.size, {**params, "epochs": 1})  # warm: TF import

        steps = -(-records["train"] // args.batch)
        samples = steps * args.batch * args.epochs
        figures: dict[str, list[float]] = {k: [] for k in ("base", "job", "base_all", "job_all", "e2e")}
        device = "?"
        for r in range(args.rounds):
            b = baseline(files, records, args.size, args.batch, args.epochs)
            j, wall, device = train_job(runtime, celery, pid, uid, dataset, args.size, params)
            for key, rates in (("base", b), ("job", j)):
                figures[key].append(statistics.median(rates))
                figures[f"{key}_all"].append(statistics.harmonic_mean(rates))
            figures["e2e"].append(samples / wall)
            print(f"round {r + 1}: baseline {figures['base'][-1]:.1f} (epochs {', '.join(f'{v:.1f}' for v in b)}), "
                  f"job {figures['job'][-1]:.1f} (epochs {', '.join(f'{v:.1f}' for v in j)}); all epochs: baseline "
                  f"{figures['base_all'][-1]:.1f}, job {figures['job_all'][-1]:.1f}; job wall {wall:.1f} s -> "
                  f"{figures['e2e'][-1]:.1f} end to end", flush=True)

        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"\n{ARCH} at {args.size} px, {records['train']} train / {records['validation']} validation records, "
              f"batch {args.batch}, {steps} steps per epoch, {args.epochs} epochs (epochs 2..{args.epochs} measured), "
              f"{args.rounds} rounds, medians over rounds in samples/s; job device: {device}")
        print(f"{'path':44s} {'samples/s':>9s} {'ratio':>6s}   rounds")
        for label, key, ref in (("plain model.fit (baseline), median epoch", "base", "base"),
                                ("training job, median epoch", "job", "base"),
                                ("plain model.fit, all epochs", "base_all", "base_all"),
                                ("training job, all epochs", "job_all", "base_all"),
                                ("training job, end to end", "e2e", "base_all")):
            rounds = ", ".join(f"{v:.1f}" for v in figures[key])
            print(f"{label:44s} {med[key]:9.1f} {med[key] / med[ref]:6.2f}   ({rounds})")
        print("target: job / baseline >= 0.90; all epochs = samples / seconds of epochs 2..E; end to end = samples "
              "trained / job started_at -> finished_at, against the baseline's all-epochs rate")


if __name__ == "__main__":
    main()
