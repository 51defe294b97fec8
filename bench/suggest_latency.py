"""Box suggestion latency through the REST API under N concurrent annotators, against in-process onnxruntime.

The baseline is an in-process onnxruntime call of the same model on the same crops, in the same run.

Input, made here: a throwaway data dir, SQLite catalog and Redis db 12 (the only db flushed, at start and
end); a user and token; a project made through the API (classes cat, dog, a label map) with M (default
20) photo-like 640x480 JPEGs uploaded as multipart and ingested by a real augmentation worker. The model
needs no training: an untrained `box_suggester` (`networks.build`, 2 classes, 128 px, seed 0) is saved
as .keras, uploaded as a root checkpoint and deployed (ONNX export) by a real deployment worker. Both
workers are stopped before anything is measured; TensorFlow is imported here only to build that model.

* loopline: the API under gunicorn exactly as `loopline serve` runs it (`tests.support.procs.Server`:
  gthread, one process per core, real auth) and ONE inference pool, `loopline worker inference` with the
  queue table's flags (prefork, one process per core). A warm-up (every image asked for several times
  by 4 clients) gives every inference process the onnxruntime session and the decoded images. Then for
  each N (default 1, 4, 16) N threads, each an annotator with its own `requests.Session` (keep-alive),
  loop for D seconds with no pause: take the next (image, region) of a fixed sample of rough boxes
  (40-320 px wide, aspect 1:2-2:1, inside the image; each thread starts at its own offset), POST
  `/api/projects/<p>/images/<id>/suggestions {"region": ...}` and time it on the client (perf_counter
  around the request). Anything but 201 is an error. Per N: requests, errors, throughput, p50/p95/p99/max
  end to end, and medians of the server's `timings` (queue wait, image load, model, worker, total).
* baseline: this process, onnxruntime only: a `Predictor` (one thread, as the workers make it) on the
  ONNX bytes from `GET .../deployments/<id>/model`, and `workers.inference.suggest` (crop with
  `resized_crop`, `to_input`, run, box and class) on the same decoded images and the same sample, timed
  per call; run once before and once after the load, p50 over both.

Printed: the ratio p50(end to end at N) / p50(in-process) per N, and the targets next to the figures:
p99 < 50 ms at 4 annotators, < 150 ms at 16, zero errors.

    .venv/bin/python bench/suggest_latency.py [--annotators 1 4 16] [--duration 30] [--images 20]
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import redis
import requests
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import migrate
from store.accounts import create_user, issue_token
from store.settings import load_settings
from tests.support.procs import Server, Worker, settings_env, stop_group, wait_for_workers
from workers.celery_app import create_celery
from workers.runtime import Runtime

REDIS_URL = "redis://127.0.0.1:6379/12"
SIZE = 128
TIMINGS = ("queue_wait_ms", "image_load_ms", "model_ms", "worker_ms", "total_ms")
TARGETS = {4: 50.0, 16: 150.0}  # p99 end to end, ms


class InferencePool:
    """`loopline worker inference` with the queue table's flags (prefork, one process per core)."""

    queue = "inference"

    def __init__(self, settings, log_dir: Path):
        self.name = f"inference-{uuid.uuid4().hex[:6]}"
        self.hostname = f"{self.name}@{socket.gethostname()}"
        self.log = log_dir / f"worker-{self.name}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "api.cli", "worker", "inference", "--loglevel",
                                          "WARNING", "--name", self.name], cwd=ROOT, env=settings_env(settings),
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        stop_group(self.proc)


def photo(seed: int, w: int = 640, h: int = 480) -> bytes:
    rng = random.Random(seed)
    img = Image.linear_gradient("L").resize((w, h)).rotate(rng.uniform(0, 360)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(10, 20)):
        x, y = rng.randrange(w), rng.randrange(h)
        box = [x, y, x + rng.randint(20, 200), y + rng.randint(20, 200)]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=tuple(rng.randrange(256) for _ in "rgb"))
    out = io.BytesIO()
    img.filter(ImageFilter.GaussianBlur(1.2)).save(out, "JPEG", quality=90)
    return out.getvalue()


def make_sample(images: list[dict], n: int, seed: int = 0) -> list[tuple[int, dict]]:
    """n (image index, region) pairs: rough boxes an annotator would draw, inside the image."""
    rng, out = random.Random(seed), []
    for _ in range(n):
        i = rng.randrange(len(images))
        iw, ih = images[i]["width"], images[i]["height"]
        w = rng.uniform(40, 320)
        h = min(ih, w * rng.uniform(0.5, 2.0))
        x, y = rng.uniform(0, iw - w), rng.uniform(0, ih - h)
        out.append((i, {"x": round(x, 1), "y": round(y, 1), "w": round(w, 1), "h": round(h, 1)}))
    return out


def ok(res: requests.Response, status: int) -> dict:
    if res.status_code != status:
        raise SystemExit(f"{res.request.method} {res.url}: {res.status_code} {res.text[:500]}")
    return res.json()


def fetch(http: requests.Session, url: str) -> bytes:
    res = http.get(url)
    if res.status_code != 200:
        raise SystemExit(f"GET {url}: {res.status_code} {res.text[:500]}")
    return res.content


def wait_job(http: requests.Session, url: str, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ok(http.get(f"{url}/api/jobs/{job_id}"), 200)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job['kind']} {job['status']}: {job['error']}")
            return job
        time.sleep(0.1)
    raise SystemExit(f"job {job_id} did not finish in {timeout:g} s")


def setup(http: requests.Session, url: str, tmp: Path, n_images: int) -> tuple[int, list[dict], dict]:
    """Project, classes, label map, images (ingested), an untrained box_suggester deployed: (pid, images, deployment)."""
    pid = ok(http.post(f"{url}/api/projects", json={"name": f"bench-{uuid.uuid4().hex[:8]}"}), 201)["id"]
    base = f"{url}/api/projects/{pid}"
    cls = [ok(http.post(f"{base}/classes", json={"name": n}), 201)["id"] for n in ("cat", "dog")]
    lm = ok(http.post(f"{base}/label-maps", json={"name": "pets", "classes": cls}), 201)["id"]
    files = [("files", (f"photo{i:03d}.jpg", photo(i), "image/jpeg")) for i in range(n_images)]
    job = wait_job(http, url, ok(http.post(f"{base}/images", files=files), 202)["id"])
    if job["result"]["accepted"] != n_images:
        raise SystemExit(f"ingest: {job['result']}")
    images = sorted(ok(http.get(f"{base}/images", params={"limit": 100}), 200)["items"], key=lambda i: i["id"])

    import keras

    from models.architectures import get_architecture
    from models.networks import build

    path = tmp / "untrained.keras"
    build(get_architecture("box_suggester"), 2, SIZE, seed=0).save(path)
    keras.backend.clear_session()
    with open(path, "rb") as fh:
        ck = ok(http.post(f"{base}/checkpoints", files={"file": ("untrained.keras", fh)},
                          data={"architecture": "box_suggester", "label_map_id": str(lm)}), 201)
    dep = ok(http.post(f"{base}/deployments", json={"checkpoint_id": ck["id"]}), 202)
    wait_job(http, url, dep["job"]["id"])
    dep = ok(http.get(f"{base}/deployments/{dep['id']}"), 200)
    if not (dep["status"] == "ready" and dep["active"]):
        raise SystemExit(f"deployment not ready and active: {dep}")
    return pid, images, dep


def load(url: str, token: str, pid: int, images: list[dict], sample: list, n: int, duration: float):
    """n annotators for `duration` s; (records [(e2e ms, status, timings)], first errors, seconds)."""
    records: list[tuple[float, int, dict | None]] = []
    errors: list[str] = []
    stop, gate = threading.Event(), threading.Barrier(n + 1)

    def annotator(k: int) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        i = k * len(sample) // n
        gate.wait()
        while not stop.is_set():
            idx, region = sample[i % len(sample)]
            i += 1
            endpoint = f"{url}/api/projects/{pid}/images/{images[idx]['id']}/suggestions"
            t = time.perf_counter()
            try:
                res = http.post(endpoint, json={"region": region}, timeout=30)
                ms, status = (time.perf_counter() - t) * 1000, res.status_code
                timings = res.json()["timings"] if status == 201 else None
                if status != 201 and len(errors) < 10:
                    errors.append(f"{status} {res.text[:200]}")
            except requests.RequestException as exc:
                ms, status, timings = (time.perf_counter() - t) * 1000, 0, None
                if len(errors) < 10:
                    errors.append(repr(exc))
            records.append((ms, status, timings))  # list.append is atomic
        http.close()

    threads = [threading.Thread(target=annotator, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return records, errors, time.perf_counter() - start


def warm_up(url: str, token: str, pid: int, images: list[dict], per_image: int = 6, clients: int = 4) -> None:
    """Every image asked for `per_image` times by `clients` threads at once: every inference process gets
    the session and the decoded images (prefork hands each message to an idle process)."""
    todo = [i for i in range(len(images)) for _ in range(per_image)]
    bad: list[str] = []

    def client(k: int) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        for idx in todo[k::clients]:
            region = {"x": 100, "y": 80, "w": 200, "h": 160}
            res = http.post(f"{url}/api/projects/{pid}/images/{images[idx]['id']}/suggestions", json={"region": region})
            if res.status_code != 201:
                bad.append(f"{res.status_code} {res.text[:200]}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bad:
        raise SystemExit(f"warm-up: {len(bad)} suggestions failed: {bad[:3]}")


def in_process(onnx: bytes, dep: dict, decoded: list, sample: list, n: int) -> list[float]:
    """ms per `workers.inference.suggest` call (crop, to_input, onnxruntime, box) on the first n regions."""
    from models.predictor import Predictor, spec_from
    from workers.inference import Loaded, suggest

    loaded = Loaded(dep["id"], Predictor(onnx), spec_from(dep["preprocessing"]), list(dep["label_map"]))
    times = []
    for j, (idx, r) in enumerate(sample[: n + 50]):
        t = time.perf_counter()
        suggest(loaded, decoded[idx], (r["x"], r["y"], r["x"] + r["w"], r["y"] + r["h"]))
        if j >= 50:  # the first 50: warm-up
            times.append((time.perf_counter() - t) * 1000)
    return times


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, nargs="+", default=[1, 4, 16], help="concurrent annotators per run")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--images", type=int, default=20, help="640x480 JPEGs in the project")
    parser.add_argument("--sample", type=int, default=2000, help="fixed (image, region) sample; the baseline runs on all")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # and SIGTERM: both run the cleanup below

    tmp = Path(tempfile.mkdtemp(prefix="loopline-suggest-bench-"))
    procs: list = []
    runtime = None
    try:
        settings = load_settings(data_dir=tmp / "data", redis_url=REDIS_URL, key_prefix=f"llbench{uuid.uuid4().hex[:6]}")
        settings.ensure_dirs()
        redis.Redis.from_url(REDIS_URL).flushdb()  # db 12 only
        migrate.upgrade(settings.sqlalchemy_url)
        runtime = Runtime(settings)
        celery = create_celery(settings, include_tasks=False)
        with runtime.sessions() as session:
            token = issue_token(session, create_user(session, f"bench-{uuid.uuid4().hex[:8]}"))
            session.commit()

        print(f"starting the API, ingesting {args.images} images and deploying an untrained {SIZE} px "
              "box_suggester ...", flush=True)
        server = Server(settings, tmp)
        procs.append(server)
        helpers = [Worker(settings, "augmentation", tmp), Worker(settings, "deployment", tmp)]
        procs += helpers
        wait_for_workers(celery, helpers)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        pid, images, dep = setup(http, server.url, tmp, args.images)
        for w in helpers:  # they take no CPU from the measurements
            w.stop()
        from workers.inference import decode

        onnx = fetch(http, f"{server.url}/api/projects/{pid}/deployments/{dep['id']}/model")
        decoded = [decode(fetch(http, server.url + i["file_url"])) for i in images]  # the stored files
        sample = make_sample(images, args.sample)

        pool = InferencePool(settings, tmp)
        procs.append(pool)
        wait_for_workers(celery, [pool])
        warm_up(server.url, token, pid, images)
        base_ms = in_process(onnx, dep, decoded, sample, len(sample))
        print(f"in-process baseline: p50 {pct(base_ms, 50):.2f} ms over {len(base_ms)} calls", flush=True)

        rows = {}
        for n in args.annotators:
            records, errors, seconds = load(server.url, token, pid, images, sample, n, args.duration)
            e2e = [r[0] for r in records if r[1] == 201]
            med = {k: statistics.median(r[2][k] for r in records if r[2]) if e2e else float("nan") for k in TIMINGS}
            rows[n] = (len(records), len(records) - len(e2e), len(e2e) / seconds, e2e, med)
            print(f"{n:2d} annotators: {len(records)} requests, {rows[n][1]} errors, {rows[n][2]:.0f}/s, p50 "
                  f"{pct(e2e, 50):.1f} p99 {pct(e2e, 99):.1f} ms" + (f"; errors: {errors[:3]}" if errors else ""),
                  flush=True)
        base_ms += in_process(onnx, dep, decoded, sample, len(sample))
        base = pct(base_ms, 50)

        print(f"\nuntrained box_suggester at {SIZE} px, {len(images)} 640x480 JPEGs, {len(sample)} sampled regions, "
              f"{args.duration:g} s per run; API: gunicorn gthread; one inference pool (prefork, one process per core)")
        print(f"in-process onnxruntime (workers.inference.suggest, 1 thread): p50 {base:.2f} ms, p99 "
              f"{pct(base_ms, 99):.2f} ms over {len(base_ms)} calls (before and after the load)")
        print(f"{'N':>3s} {'reqs':>6s} {'errs':>4s} {'req/s':>6s} {'p50':>6s} {'p95':>6s} {'p99':>6s} {'max':>6s} "
              f"{'ratio':>5s} | server medians: {'queue':>5s} {'image':>5s} {'model':>5s} {'worker':>6s} {'total':>5s}  target")
        for n, (reqs, errs, rate, e2e, med) in rows.items():
            p99 = pct(e2e, 99)
            target = f"p99 < {TARGETS[n]:g} ms: {'met' if p99 < TARGETS[n] and not errs else 'MISSED'}" if n in TARGETS \
                else ("zero errors: " + ("met" if not errs else "MISSED"))
            print(f"{n:3d} {reqs:6d} {errs:4d} {rate:6.0f} {pct(e2e, 50):6.1f} {pct(e2e, 95):6.1f} {p99:6.1f} "
                  f"{pct(e2e, 100):6.1f} {pct(e2e, 50) / base:5.1f} | {'':16s}{med['queue_wait_ms']:5.1f} "
                  f"{med['image_load_ms']:5.2f} {med['model_ms']:5.1f} {med['worker_ms']:6.1f} {med['total_ms']:5.1f}  {target}")
        print("end to end in ms on the client; ratio = p50 end to end / p50 in-process; targets: p99 < 50 ms at 4 "
              "annotators, < 150 ms at 16, zero errors (Doherty threshold: 400 ms)")
    except KeyboardInterrupt:
        raise SystemExit("interrupted: stopping the server and workers and removing the temporary files") from None
    finally:
        for p in reversed(procs):
            p.stop()  # SIGTERM to its own process group, SIGKILL after 20 s
        if runtime is not None:
            runtime.close()
        redis.Redis.from_url(REDIS_URL).flushdb()  # db 12 only
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
