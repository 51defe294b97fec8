"""Box suggestion latency through the REST API under N concurrent annotators, against in-process onnxruntime.

Made here, in a throwaway data dir with a SQLite catalog and Redis db 12 (the only db flushed, at start and
end): through the API a project (cat, dog, a label map) with M (default 20) photo-like 640x480 JPEGs, ingested
by a real augmentation worker, and an untrained `box_suggester` (2 classes, 128 px, seed 0; TensorFlow is
imported only for it) uploaded as a .keras root checkpoint and deployed by a real deployment worker. Both
workers are stopped before anything is measured.

* loopline: the API under gunicorn as `loopline serve` runs it (`tests.support.procs.Server`) and ONE
  inference pool, `loopline worker inference` (threads pool, one thread per core), warmed up 5 s. For each N
  (default 1, 4, 16), N threads, each with its own keep-alive HTTP connection (`http.client`, connected before
  the clock starts), loop for D s without pause (--pause P: 0.5-1.5 P between requests, starts spread over P): the
  next (image, region) of a fixed sample of rough boxes (40-320 px wide, aspect 1:2 to 2:1), POST
  `/api/projects/<p>/images/<id>/suggestions`, timed with perf_counter around the request; anything but
  201 is an error. Per N: throughput, p50/p95/p99/max end to end, medians of the answer's `timings`, CPU ms
  per request of the API, the inference pool and the clients (/proc), cores busy with anything else.
* baseline: this process, `services.inference.suggest` (crop, to_input, onnxruntime, box) with a one-thread
  `Predictor` on the ONNX bytes of `GET .../deployments/<id>/model`, on the same decoded images and the same
  sample, before and after the load. Printed: p50(end to end) / p50(in-process) per N, and the targets:
  p99 < 50 ms at 4 annotators, < 150 ms at 16, zero errors.

    .venv/bin/python bench/suggest_latency.py [--annotators 1 4 16] [--duration 30] [--pause 0] [--images 20]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import requests
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store.accounts import create_user, issue_token
from tests.support.procs import Server, Worker, settings_env, wait_for_workers
from workers.celery_app import create_celery
from services.runtime import Runtime
from throwaway import throwaway  # bench/throwaway.py (a script's folder is on sys.path)

REDIS_URL = "redis://127.0.0.1:6379/12"
SIZE = 128
TIMINGS = ("queue_wait_ms", "image_load_ms", "model_ms", "worker_ms", "store_ms", "total_ms")
TARGETS = {4: 50.0, 16: 150.0}  # p99 end to end, ms


class InferencePool(Worker):
    """`loopline worker inference` with the queue table's flags (threads pool, one thread per core), not `-c 1`."""

    def __init__(self, settings, log_dir: Path):
        self.queue, self.name = "inference", f"inference-{uuid.uuid4().hex[:6]}"
        self.hostname, self.log = f"{self.name}@{socket.gethostname()}", log_dir / f"worker-{self.name}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "api.cli", "worker", "inference", "--loglevel",
                                          "WARNING", "--name", self.name], cwd=ROOT, env=settings_env(settings),
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


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
        w = rng.randint(40, 320)
        h = min(ih, round(w * rng.uniform(0.5, 2.0)))
        out.append((i, {"x": rng.randint(0, iw - w), "y": rng.randint(0, ih - h), "w": w, "h": h}))
    return out


def connect(token: str) -> requests.Session:
    http = requests.Session()  # keeps its connection alive
    http.headers["Authorization"] = f"Bearer {token}"
    return http


class Annotator:
    """One annotator's keep-alive HTTP/1.1 connection. Plain http.client: the load generator shares the two
    cores with what it measures, and `requests` costs it about three times the CPU per request."""

    def __init__(self, url: str, token: str):
        address = urlsplit(url)
        self.conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, None if body is None else json.dumps(body), self.headers)
            res = self.conn.getresponse()
            return res.status, res.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next request reconnects
            raise

    def close(self) -> None:
        self.conn.close()


def ok(res: requests.Response, status: int = 200) -> requests.Response:
    if res.status_code != status:
        raise SystemExit(f"{res.request.method} {res.url}: {res.status_code} {res.text[:500]}")
    return res


def wait_job(http: requests.Session, url: str, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ok(http.get(f"{url}/api/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job['kind']} {job['status']}: {job['error']}")
            return job
        time.sleep(0.1)
    raise SystemExit(f"job {job_id} did not finish in {timeout:g} s")


def setup(http: requests.Session, url: str, tmp: Path, n_images: int) -> tuple[int, list[dict], dict]:
    """Project, classes, label map, ingested images, an untrained box_suggester deployed: (pid, images, deployment)."""
    pid = ok(http.post(f"{url}/api/projects", json={"name": f"bench-{uuid.uuid4().hex[:8]}"}), 201).json()["id"]
    base = f"{url}/api/projects/{pid}"
    cls = [ok(http.post(f"{base}/classes", json={"name": n}), 201).json()["id"] for n in ("cat", "dog")]
    lm = ok(http.post(f"{base}/label-maps", json={"name": "pets", "classes": cls}), 201).json()["id"]
    files = [("files", (f"photo{i:03d}.jpg", photo(i), "image/jpeg")) for i in range(n_images)]
    job = wait_job(http, url, ok(http.post(f"{base}/images", files=files), 202).json()["id"])
    if job["result"]["accepted"] != n_images:
        raise SystemExit(f"ingest: {job['result']}")
    images = sorted(ok(http.get(f"{base}/images", params={"limit": 100})).json()["items"], key=lambda i: i["id"])

    import keras

    from models.architectures import get_architecture
    from models.networks import build

    path = tmp / "untrained.keras"
    build(get_architecture("box_suggester"), 2, SIZE, seed=0).save(path)
    keras.backend.clear_session()
    with open(path, "rb") as fh:
        ck = ok(http.post(f"{base}/checkpoints", files={"file": ("untrained.keras", fh)},
                          data={"architecture": "box_suggester", "label_map_id": str(lm)}), 201).json()
    dep = ok(http.post(f"{base}/deployments", json={"checkpoint_id": ck["id"]}), 202).json()
    wait_job(http, url, dep["job"]["id"])
    dep = ok(http.get(f"{base}/deployments/{dep['id']}")).json()
    if not (dep["status"] == "ready" and dep["active"]):
        raise SystemExit(f"deployment not ready and active: {dep}")
    return pid, images, dep


def load(url: str, token: str, pid: int, images: list[dict], sample: list, n: int, duration: float,
         pause: float = 0):
    """n annotators for `duration` s, 0.5-1.5 x `pause` s between one's requests (so they do not keep in step);
    (records [(e2e ms, status, timings)], first errors, seconds)."""
    records: list[tuple[float, int, dict | None]] = []
    errors: list[str] = []
    stop, gate = threading.Event(), threading.Barrier(n + 1, timeout=60)

    def annotator(k: int) -> None:
        conn = Annotator(url, token)
        i, rng = k * len(sample) // n, random.Random(k)
        conn.request("GET", "/api/health")  # opens the keep-alive connection, untimed
        gate.wait()
        stop.wait(pause * rng.uniform(0, 1))  # with a pause, annotators start spread out
        while not stop.is_set():
            idx, region = sample[i % len(sample)]
            i += 1
            path = f"/api/projects/{pid}/images/{images[idx]['id']}/suggestions"
            t = time.perf_counter()
            try:
                status, body = conn.request("POST", path, {"region": region})
            except (OSError, http.client.HTTPException) as exc:
                status, body = 0, repr(exc).encode()
            ms = (time.perf_counter() - t) * 1000
            if status != 201 and len(errors) < 10:
                errors.append(f"{status} {body[:200]!r}")
            records.append((ms, status, json.loads(body)["timings"] if status == 201 else None))  # atomic
            stop.wait(pause * rng.uniform(0.5, 1.5))
        conn.close()

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


def in_process(onnx: bytes, dep: dict, decoded: list, sample: list, n: int) -> list[float]:
    """ms per `services.inference.suggest` call (crop, to_input, onnxruntime, box) on the first n regions."""
    from models.predictor import Predictor, spec_from
    from services.inference import Loaded, suggest

    loaded = Loaded(dep["id"], Predictor(onnx), spec_from(dep["preprocessing"]), list(dep["label_map"]))
    times = []
    for j, (idx, r) in enumerate(sample[: n + 50]):
        t = time.perf_counter()
        suggest(loaded, decoded[idx], (r["x"], r["y"], r["x"] + r["w"], r["y"] + r["h"]))
        if j >= 50:  # the first 50: warm-up
            times.append((time.perf_counter() - t) * 1000)
    return times


def cpu_seconds(pgids: list[int]) -> list[float]:
    """CPU seconds so far: [the whole machine (busy), this process, then each process group]."""
    hz, groups = os.sysconf("SC_CLK_TCK"), dict.fromkeys(pgids, 0.0)
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # exited meanwhile
            continue
        if int(fields[2]) in groups:
            groups[int(fields[2])] += (int(fields[11]) + int(fields[12])) / hz
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:]]
    return [(sum(ticks) - ticks[3] - ticks[4]) / hz, sum(os.times()[:2]), *groups.values()]


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, nargs="+", default=[1, 4, 16], help="concurrent annotators per run")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--images", type=int, default=20, help="640x480 JPEGs in the project")
    parser.add_argument("--pause", type=float, default=0, help="ms an annotator waits between suggestions, on average")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up with 4 annotators")
    parser.add_argument("--sample", type=int, default=2000, help="(image, region) pairs; the baseline runs them all")
    parser.add_argument("--postgresql", metavar="URL", help="catalog on a fresh database made on this PostgreSQL "
                        "server (e.g. postgresql://postgres@127.0.0.1/test) instead of SQLite")
    args = parser.parse_args()
    with throwaway(REDIS_URL, "suggest", args.postgresql) as run:
        tmp, settings = run.tmp, run.settings
        runtime = Runtime(settings)
        run.cleanup.callback(runtime.close)
        celery = create_celery(settings, include_tasks=False)
        with runtime.sessions() as session:
            token = issue_token(session, create_user(session, f"bench-{uuid.uuid4().hex[:8]}"))
            session.commit()

        print(f"starting the API, ingesting {args.images} images and deploying an untrained {SIZE} px "
              "box_suggester ...", flush=True)
        server = Server(settings, tmp)
        run.cleanup.callback(server.stop)  # each stop: SIGTERM to its own process group, SIGKILL after 20 s
        helpers = [Worker(settings, "augmentation", tmp), Worker(settings, "deployment", tmp)]
        for w in helpers:
            run.cleanup.callback(w.stop)
        wait_for_workers(celery, helpers)
        session = connect(token)
        pid, images, dep = setup(session, server.url, tmp, args.images)
        for w in helpers:  # they take no CPU from the measurements
            w.stop()
        from services.inference import decode

        onnx = ok(session.get(f"{server.url}/api/projects/{pid}/deployments/{dep['id']}/model")).content
        decoded = [decode(ok(session.get(server.url + i["file_url"])).content) for i in images]  # as stored
        sample = make_sample(images, args.sample)

        pool = InferencePool(settings, tmp)
        run.cleanup.callback(pool.stop)
        wait_for_workers(celery, [pool])
        warm = load(server.url, token, pid, images, make_sample(images, 400, seed=1), 4, args.warmup)
        if not warm[0] or warm[1]:
            raise SystemExit(f"warm-up: {len(warm[0])} requests, errors: {warm[1][:3]}")
        base_ms = in_process(onnx, dep, decoded, sample, len(sample))
        print(f"in-process baseline: p50 {pct(base_ms, 50):.2f} ms over {len(base_ms)} calls", flush=True)

        rows = {}
        for n in args.annotators:
            before = cpu_seconds([server.proc.pid, pool.proc.pid])
            records, errors, seconds = load(server.url, token, pid, images, sample, n, args.duration,
                                            args.pause / 1000)
            after = cpu_seconds([server.proc.pid, pool.proc.pid])
            machine, client, api, inference = (b - a for a, b in zip(before, after, strict=True))
            e2e = [r[0] for r in records if r[1] == 201]
            med = {k: statistics.median(r[2][k] for r in records if r[2]) if e2e else float("nan") for k in TIMINGS}
            cpu = [1000 * v / max(1, len(records)) for v in (api, inference, client)] + [
                (machine - api - inference - client) / seconds]
            rows[n] = (len(records), len(records) - len(e2e), len(e2e) / seconds, e2e, med, cpu)
            print(f"{n:2d} annotators: {len(records)} requests, {rows[n][1]} errors, p50 {pct(e2e, 50):.1f} ms, p99 "
                  f"{pct(e2e, 99):.1f} ms" + (f"; errors: {errors[:3]}" if errors else ""), flush=True)
        base_ms += in_process(onnx, dep, decoded, sample, len(sample))
        base = pct(base_ms, 50)

        print(f"\nuntrained box_suggester at {SIZE} px, {len(images)} 640x480 JPEGs, {len(sample)} sampled regions, "
              f"{args.duration:g} s per run, {args.pause:g} ms pause; catalog: {settings.sqlalchemy_url.split(':')[0]};"
              " API: gunicorn gthread; one inference pool (threads, one per core)")
        print(f"in-process onnxruntime (services.inference.suggest, 1 thread): p50 {base:.2f} ms, p99 "
              f"{pct(base_ms, 99):.2f} ms over {len(base_ms)} calls (before and after the load)")
        print(f"{'N':>3s} {'reqs':>6s} {'errs':>4s} {'req/s':>5s} {'p50':>6s} {'p95':>6s} {'p99':>6s} {'max':>6s} "
              f"{'ratio':>5s} | {'queue':>5s} {'image':>5s} {'model':>5s} {'worker':>6s} {'store':>5s} {'total':>5s} | "
              f"{'api':>4s} {'infer':>5s} {'client':>6s} {'other':>5s} | target")
        for n, (reqs, errs, rate, e2e, med, cpu) in rows.items():
            p99 = pct(e2e, 99)
            met = "met" if (n not in TARGETS or p99 < TARGETS[n]) and not errs else "MISSED"
            target = f"p99 < {TARGETS[n]:g} ms, no errors: {met}" if n in TARGETS else f"no errors: {met}"
            print(f"{n:3d} {reqs:6d} {errs:4d} {rate:5.0f} {pct(e2e, 50):6.1f} {pct(e2e, 95):6.1f} {p99:6.1f} "
                  f"{pct(e2e, 100):6.1f} {pct(e2e, 50) / base:5.1f} | {med['queue_wait_ms']:5.1f} "
                  f"{med['image_load_ms']:5.2f} {med['model_ms']:5.2f} {med['worker_ms']:6.2f} {med['store_ms']:5.1f} "
                  f"{med['total_ms']:5.1f} | "
                  f"{cpu[0]:4.1f} {cpu[1]:5.1f} {cpu[2]:6.1f} {cpu[3]:5.2f} | {target}")
        print("end to end on the client, ms; ratio = its p50 / the in-process p50; queue .. total: medians of the "
              "server's timings, ms; api, infer(ence pool), client: CPU ms per request; other: cores busy with "
              "anything else (Redis, other users); Doherty threshold: 400 ms")


if __name__ == "__main__":
    main()
