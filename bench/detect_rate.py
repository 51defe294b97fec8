"""The detector's inference rates, in one run: onnxruntime against Keras, and the pre-annotation job against an
in-process loop of the same ONNX model on the same images.

* onnxruntime against Keras: a fresh `detector` (`networks.build`, 2 classes, size S, seed 0) exported to ONNX
  with `models.export.export_onnx`; batches of B inputs from generated scenes; onnxruntime through
  `models.predictor.Predictor` (1 intra-op thread, as the inference pool runs it) against Keras
  `predict_on_batch` (TensorFlow's default threads: both cores), each timed over R rounds after a warm-up;
  the ratio of images/s is printed (target >= 5x). With --threads-like-keras the onnxruntime session gets as
  many intra-op threads as TensorFlow uses (for information: the pools run one).
* the pre-annotation job: in a throwaway data dir (SQLite catalog, its own Redis db, flushed at start and end),
  the API under gunicorn as `loopline serve` runs it, a project with N photo-like 640x480 JPEGs ingested by a
  real augmentation worker, the same untrained detector uploaded as a .keras root and deployed by a real
  deployment worker (both stopped before anything is measured), then ONE inference pool as `loopline worker
  inference` starts it. Each round is `POST /api/projects/<p>/pre-annotations {"unannotated": true}`, timed by
  the job's own `started_at` -> `finished_at`; between rounds the proposals are deleted in the catalog, so the
  next round does the same work. Round 1 is cold (the pool decodes every image from its blob); the later ones
  are warm (the pool's image cache holds them decoded). The threshold is chosen here so that the untrained
  model proposes about P (default 4) boxes per image, as a trained one would: the job stores them.
  Baselines, in this process, one thread: `to_input`, `Predictor.run` in batches of 8, `models.detection.decode`
  over the same images already decoded (the warm job's like), and the same plus decoding each stored file
  (`services.inference.decode`, the cold job's like), before and after the rounds. Printed: job / baseline
  (target >= 0.8).

    .venv/bin/python bench/detect_rate.py [--size 128] [--batch 8] [--rounds 20] [--images 200] [--job-rounds 4]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.architectures import get_architecture  # noqa: E402
from models.detection import decode  # noqa: E402
from models.predictor import Predictor, to_input  # noqa: E402
from tests.support.scenes import layout, scene  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/9"
TARGET_JOB, TARGET_ONNX = 0.8, 5.0


def rate(fn, batch: np.ndarray, rounds: int) -> float:
    fn(batch)
    start = time.perf_counter()
    for _ in range(rounds):
        fn(batch)
    return rounds * len(batch) / (time.perf_counter() - start)


def onnx_against_keras(args) -> tuple[object, bytes]:
    from models import export, networks

    detector = get_architecture("detector")
    spec = detector.spec(args.size)
    model = networks.build(detector, 2, args.size, seed=0)
    path = Path(tempfile.mkdtemp()) / "detector.onnx"
    export.export_onnx(model, path)
    onnx = path.read_bytes()
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads() or len(__import__("os").sched_getaffinity(0))
    predictor = Predictor(onnx, intra_op_threads=threads if args.threads_like_keras else 1)
    images = [Image.open(io.BytesIO(scene(160, 120, layout(i)))).convert("RGB") for i in range(args.batch)]
    batch = np.stack([to_input(im, spec) for im in images])
    onnx_rate = rate(predictor.run, batch, args.rounds)
    keras_rate = rate(model.predict_on_batch, batch, args.rounds)
    print(f"detector {args.size} px, batch {args.batch}: onnxruntime ({predictor.threads} thread(s)) "
          f"{onnx_rate:.0f} img/s, Keras predict_on_batch ({threads} threads) {keras_rate:.0f} img/s: "
          f"{onnx_rate / keras_rate:.1f}x (target >= {TARGET_ONNX:g}x)", flush=True)
    return model, onnx


def loop(predictor: Predictor, spec, images: list, threshold: float, raw: list[bytes] | None = None) -> float:
    """Images/s of the pre-annotation job's loop in this process (with decoding of `raw` when given)."""
    from services.inference import decode as decode_file

    start = time.perf_counter()
    for i in range(0, len(images), 8):
        chunk = [decode_file(b) for b in raw[i:i + 8]] if raw else images[i:i + 8]
        decode(predictor.run(np.stack([to_input(im, spec) for im in chunk])), threshold=threshold)
    return len(images) / (time.perf_counter() - start)


def job_seconds(job: dict) -> float:
    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


def pre_annotation(args, model) -> None:
    import keras
    from sqlalchemy import delete

    from store.accounts import create_user, issue_token
    from store.schema import Annotation
    from tests.support.procs import Server, Worker, wait_for_workers
    from workers.celery_app import create_celery
    from services.inference import decode as decode_file
    from services.runtime import Runtime
    from suggest_latency import InferencePool, connect, ok, photo, wait_job  # bench/ is on sys.path
    from throwaway import throwaway

    with throwaway(args.redis, "detect") as run:
        tmp, settings = run.tmp, run.settings
        runtime = Runtime(settings)
        run.cleanup.callback(runtime.close)
        celery = create_celery(settings, include_tasks=False)
        with runtime.sessions() as session:
            token = issue_token(session, create_user(session, f"bench-{uuid.uuid4().hex[:8]}"))
            session.commit()
        print(f"starting the API, ingesting {args.images} images, deploying the untrained detector ...", flush=True)
        server = Server(settings, tmp)
        run.cleanup.callback(server.stop)
        helpers = [Worker(settings, "augmentation", tmp), Worker(settings, "deployment", tmp)]
        for w in helpers:
            run.cleanup.callback(w.stop)
        wait_for_workers(celery, helpers)
        http, url = connect(token), server.url
        pid = ok(http.post(f"{url}/api/projects", json={"name": f"bench-{uuid.uuid4().hex[:8]}"}), 201).json()["id"]
        base = f"{url}/api/projects/{pid}"
        cls = [ok(http.post(f"{base}/classes", json={"name": n}), 201).json()["id"] for n in ("cat", "dog")]
        lm = ok(http.post(f"{base}/label-maps", json={"name": "pets", "classes": cls}), 201).json()["id"]
        files = [("files", (f"photo{i:03d}.jpg", photo(i), "image/jpeg")) for i in range(args.images)]
        job = wait_job(http, url, ok(http.post(f"{base}/images", files=files), 202).json()["id"])
        if job["result"]["accepted"] != args.images:
            raise SystemExit(f"ingest: {job['result']}")
        path = tmp / "detector.keras"
        model.save(path)
        keras.backend.clear_session()
        with open(path, "rb") as fh:
            ck = ok(http.post(f"{base}/checkpoints", files={"file": ("detector.keras", fh)},
                              data={"architecture": "detector", "label_map_id": str(lm)}), 201).json()
        dep = ok(http.post(f"{base}/deployments", json={"checkpoint_id": ck["id"]}), 202).json()
        wait_job(http, url, dep["job"]["id"])
        dep = ok(http.get(f"{base}/deployments/{dep['id']}")).json()
        for w in helpers:  # they take no CPU from the measurements
            w.stop()

        images = []
        offset = 0
        while True:
            page = ok(http.get(f"{base}/images", params={"limit": 100, "offset": offset})).json()
            images += page["items"]
            offset += 100
            if offset >= page["total"]:
                break
        raw = [ok(http.get(url + i["file_url"])).content for i in sorted(images, key=lambda i: i["id"])]
        decoded = [decode_file(b) for b in raw]
        onnx = ok(http.get(f"{base}/deployments/{dep['id']}/model")).content
        predictor, spec = Predictor(onnx), get_architecture("detector").spec(args.size)
        scores = sorted((d.score for out in [decode(predictor.run(to_input(im, spec)[None]), threshold=0.0)[0]
                                             for im in decoded] for d in out), reverse=True)
        threshold = float(scores[min(len(scores), args.proposals * len(decoded)) - 1])

        pool = InferencePool(settings, tmp)
        run.cleanup.callback(pool.stop)
        wait_for_workers(celery, [pool])
        first = images[0]["id"]  # warm-up: the session loaded, one image decoded
        wait_job(http, url, ok(http.post(f"{base}/pre-annotations", json={"image_ids": [first],
                                                                          "threshold": threshold}), 202).json()["id"])

        def clear():
            with runtime.sessions() as session:
                session.execute(delete(Annotation).where(Annotation.deployment_id == dep["id"]))
                session.commit()

        base_warm, base_cold = [loop(predictor, spec, decoded, threshold)], [loop(predictor, spec, decoded, threshold, raw)]
        rounds = []
        for r in range(args.job_rounds):
            clear()
            job = wait_job(http, url, ok(http.post(f"{base}/pre-annotations", json={
                "unannotated": True, "threshold": threshold}), 202).json()["id"])
            res = job["result"]
            if res["processed"] != len(decoded):
                raise SystemExit(f"round {r + 1}: {res}")
            rounds.append((len(decoded) / job_seconds(job), res["proposals"]))
            print(f"job round {r + 1} ({'cold' if r == 0 else 'warm'}): {rounds[-1][0]:.0f} img/s, "
                  f"{res['proposals']} proposals stored", flush=True)
        base_warm.append(loop(predictor, spec, decoded, threshold))
        base_cold.append(loop(predictor, spec, decoded, threshold, raw))

        warm = statistics.median(r[0] for r in rounds[1:]) if len(rounds) > 1 else float("nan")
        cold = rounds[0][0]
        bw, bc = statistics.median(base_warm), statistics.median(base_cold)
        print(f"\npre-annotation of {len(decoded)} 640x480 JPEGs, detector {args.size} px, threshold {threshold:.4g} "
              f"(~{rounds[0][1] / len(decoded):.1f} proposals per image); SQLite; one inference pool (threads)")
        print(f"in-process loop on decoded images: {bw:.0f} img/s ({' / '.join(f'{v:.0f}' for v in base_warm)}); "
              f"with decoding each file: {bc:.0f} img/s ({' / '.join(f'{v:.0f}' for v in base_cold)})")
        print(f"job, warm (images in the pool's cache), median of {len(rounds) - 1}: {warm:.0f} img/s, "
              f"ratio {warm / bw:.2f} to the loop on decoded images (target >= {TARGET_JOB:g})")
        print(f"job, cold (decoding each blob): {cold:.0f} img/s, ratio {cold / bc:.2f} to the loop that decodes too")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=20, help="timed onnxruntime and Keras calls")
    ap.add_argument("--images", type=int, default=200, help="JPEGs the pre-annotation job runs over")
    ap.add_argument("--job-rounds", type=int, default=4, help="pre-annotation jobs (the first one cold)")
    ap.add_argument("--proposals", type=int, default=4, help="boxes per image the threshold is chosen for")
    ap.add_argument("--threads-like-keras", action="store_true", help="onnxruntime with TensorFlow's thread count")
    ap.add_argument("--redis", default=REDIS_URL, help="the Redis database the run uses (flushed)")
    ap.add_argument("--no-job", action="store_true", help="only onnxruntime against Keras")
    args = ap.parse_args()
    model, _ = onnx_against_keras(args)
    if not args.no_job:
        pre_annotation(args, model)


if __name__ == "__main__":
    main()
