"""Images ingested per second by the real ingest job, against a bare Pillow loop doing the same conversion.

The script makes N photo-like 640x480 images (gradients, shapes, noise; JPEG quality 90, ~70 KB): one in
five carries EXIF orientation 6 (normalize re-encodes it as JPEG q95), one in ten is an RGBA PNG
(re-encoded as PNG level 1) and one in ten a plain RGB PNG (kept as is). Both sides get the same files.

* baseline: one process, a bare loop that reads each file and does with Pillow what
  `handlers.imaging.normalize` does (same branches: DCT-scaled decode of upright RGB JPEGs, full decode
  otherwise, EXIF transpose, RGB flatten, the same re-encode settings, the 256 px JPEG q85 thumbnail),
  then writes image and thumbnail to files. No hashing, no fsync, no catalog.
* loopline: a throwaway data dir, SQLite catalog, Redis db 14 (flushed at start and end, only that db),
  ONE real worker process (`loopline worker augmentation -c 1`), the API in-process through Flask's test
  client. All N files go in one multipart POST, then again as one zip, each into a fresh project. Job
  throughput uses the job's own started_at -> finished_at; end to end runs from sending the request to
  seeing the job succeed (staging, queueing, polling included). Every file must come back `accepted`.

Rounds alternate baseline / multipart / zip; medians are reported with the ratios (target >= 0.7).

    .venv/bin/python bench/ingest_rate.py [--images 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import datetime
from pathlib import Path

import redis
from PIL import Image, ImageChops, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import migrate  # noqa: E402
from store.accounts import create_user, issue_token  # noqa: E402
from store.settings import Settings, load_settings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/14"
T = Image.Transpose
UPRIGHT = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
           7: T.TRANSVERSE, 8: T.ROTATE_90}


# --- input ---------------------------------------------------------------------------------------
def photo(seed: int, w: int = 640, h: int = 480) -> Image.Image:
    rng = random.Random(seed)
    bands = []
    for _ in range(3):
        g = Image.linear_gradient("L").rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR)
        a, b = rng.uniform(0.3, 1.0), rng.randint(0, 100)
        bands.append(g.resize((w, h), Image.Resampling.BILINEAR).point(lambda v: int(v * a + b)))
    img = Image.merge("RGB", bands)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(15, 30)):
        x, y = rng.randrange(w), rng.randrange(h)
        box = [x, y, x + rng.randint(10, 160), y + rng.randint(10, 160)]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=tuple(rng.randrange(256) for _ in "rgb"))
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    noise = Image.merge("RGB", [Image.effect_noise((w, h), 6) for _ in "rgb"])
    return ImageChops.add(img, noise, 1.0, -128)


def make_inputs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        img, kind = photo(i), i % 10
        if kind == 3:  # RGBA PNG: re-encoded (flattened on white, PNG level 1)
            img.putalpha(Image.linear_gradient("L").resize(img.size))
            path, options = folder / f"img{i:04d}.png", {"format": "PNG"}
        elif kind == 8:  # plain RGB PNG: stored as uploaded
            path, options = folder / f"img{i:04d}.png", {"format": "PNG"}
        elif kind in (1, 6):  # EXIF orientation 6: transposed and re-encoded as JPEG q95
            exif = Image.Exif()
            exif[0x0112] = 6
            path, options = folder / f"img{i:04d}.jpg", {"format": "JPEG", "quality": 90, "exif": exif}
        else:  # upright RGB JPEG: stored as uploaded, only the thumbnail is made
            path, options = folder / f"img{i:04d}.jpg", {"format": "JPEG", "quality": 90}
        img.save(path, **options)
        paths.append(path)
    return paths


# --- baseline: normalize()'s work, in bare Pillow ------------------------------------------------
def fit(w: int, h: int, size: int) -> tuple[int, int]:
    longest = max(w, h)
    return (w, h) if longest <= size else (max(1, round(w * size / longest)), max(1, round(h * size / longest)))


def thumb(rgb: Image.Image, box: tuple[int, int]) -> bytes:
    if rgb.size != box:
        rgb = rgb.resize(box, Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=85)
    return out.getvalue()


def convert(data: bytes, size: int) -> tuple[bytes, bytes]:
    with Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "WEBP", "GIF")) as img:
        w, h = img.size
        if img.format in ("JPEG", "MPO") and img.mode == "RGB" and img.getexif().get(0x0112, 1) == 1:
            box = fit(w, h, size)
            img.draft("RGB", (2 * box[0], 2 * box[1]))
            img.load()
            return data, thumb(img, box)
        img.load()
        orientation = img.getexif().get(0x0112, 1)
        upright = img.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else img
        box = fit(*upright.size, size)
        if (orientation not in UPRIGHT and img.format == "PNG" and img.mode == "RGB"
                and data[24:26] == b"\x08\x02" and "transparency" not in img.info):
            return data, thumb(img, box)
        rgb = upright
        if rgb.has_transparency_data:
            rgba, rgb = rgb.convert("RGBA"), Image.new("RGB", rgb.size, (255, 255, 255))
            rgb.paste(rgba, (0, 0), rgba)
        elif rgb.mode != "RGB":
            rgb = rgb.convert("RGB")
        icc = img.info.get("icc_profile") if img.mode in ("RGB", "RGBA", "RGBa", "P", "PA") else None
        out = io.BytesIO()
        if img.format in ("JPEG", "MPO"):
            rgb.save(out, "JPEG", icc_profile=icc, quality=95)
        else:
            rgb.save(out, "PNG", icc_profile=icc, compress_level=1)
        return out.getvalue(), thumb(rgb, box)


def baseline(paths: list[Path], out_dir: Path, size: int) -> float:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    start = time.perf_counter()
    for i, path in enumerate(paths):
        data, small = convert(path.read_bytes(), size)
        (out_dir / f"{i}.img").write_bytes(data)
        (out_dir / f"{i}.thumb.jpg").write_bytes(small)
    return len(paths) / (time.perf_counter() - start)


# --- loopline ------------------------------------------------------------------------------------
def settings_env(settings: Settings) -> dict[str, str]:
    """LOOPLINE_* for every setting, as tests/support/procs.py builds it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"LOOPLINE_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    env.update(LOOPLINE_DATABASE_URL=settings.sqlalchemy_url, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


def wait_worker(celery, proc: subprocess.Popen, hostname: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited: {log.read_text()[-2000:]}")
        replies = celery.control.inspect(timeout=1.0, destination=[hostname]).active_queues() or {}
        if any(q["name"] == "augmentation" for q in replies.get(hostname, [])):
            return
        time.sleep(0.3)
    raise SystemExit("worker did not come up")


def run_job(client, headers: dict, files: list[tuple[str, bytes]], node: str, expect: int) -> tuple[float, float]:
    """Upload into a fresh project; return (job seconds, end-to-end seconds)."""
    res = client.post("/api/projects", json={"name": f"bench-{uuid.uuid4().hex[:8]}"}, headers=headers)
    assert res.status_code == 201, res.get_json()
    pid = res.get_json()["id"]
    body = {"files": [(io.BytesIO(b), name) for name, b in files]}
    start = time.perf_counter()
    res = client.post(f"/api/projects/{pid}/images", data=body, content_type="multipart/form-data", headers=headers)
    assert res.status_code == 202, res.get_json()
    job_id = res.get_json()["id"]
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.02)
    e2e = time.perf_counter() - start
    assert job["status"] == "succeeded", job
    assert job["worker"] and job["worker"].startswith(node), f"job ran on {job['worker']}, not on our worker"
    counts = {k: job["result"][k] for k in ("accepted", "duplicate", "rejected", "skipped")}
    assert counts["accepted"] == expect, f"expected {expect} accepted: {counts}"
    took = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    return took.total_seconds(), e2e


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="images per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too

    tmp = Path(tempfile.mkdtemp(prefix="loopline-ingest-bench-"))
    worker = runtime = None
    try:
        print(f"making {args.images} input images ...", flush=True)
        paths = make_inputs(tmp / "input", args.images)
        files = [(p.name, p.read_bytes()) for p in paths]
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:  # what `zip` and file managers make
            for name, data in files:
                archive.writestr(name, data)
        jpegs = [len(d) for n, d in files if n.endswith(".jpg")]
        print(f"inputs: {len(files)} files, {sum(len(d) for _, d in files) / 2**20:.1f} MB (JPEGs {sum(jpegs) / len(jpegs) / 1024:.0f} KB "
              f"average), zip {zipped.tell() / 2**20:.1f} MB", flush=True)

        settings = load_settings(data_dir=tmp / "data", redis_url=REDIS_URL, key_prefix=f"llbench{uuid.uuid4().hex[:6]}")
        settings.ensure_dirs()
        redis.Redis.from_url(REDIS_URL).flushdb()  # db 14 only
        migrate.upgrade(settings.sqlalchemy_url)
        from api import create_app

        app = create_app(settings)
        runtime = app.extensions["loopline.runtime"]
        with runtime.sessions() as session:
            token = issue_token(session, create_user(session, f"bench-{uuid.uuid4().hex[:8]}"))
            session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()

        node = f"ingestbench-{uuid.uuid4().hex[:6]}"
        hostname = f"{node}@{socket.gethostname()}"
        log = tmp / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "augmentation", "-c", "1", "--loglevel", "WARNING",
                 "--name", node], cwd=ROOT, env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_worker(app.extensions["celery"], worker, hostname, log)

        size = settings.thumbnail_size
        baseline(paths[:10], tmp / "out", size)  # warm both sides
        run_job(client, headers, files[:10], node, 10)
        rates: dict[str, list[float]] = {k: [] for k in ("base", "multi_job", "multi_e2e", "zip_job", "zip_e2e")}
        for r in range(args.rounds):
            rates["base"].append(baseline(paths, tmp / "out", size))
            for label, upload in (("multi", files), ("zip", [("images.zip", zipped.getvalue())])):
                job_s, e2e_s = run_job(client, headers, upload, node, len(files))
                rates[f"{label}_job"].append(len(files) / job_s)
                rates[f"{label}_e2e"].append(len(files) / e2e_s)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), flush=True)

        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"\n{len(files)} images per measurement, {args.rounds} rounds, medians in images/s; one worker "
              "process (augmentation -c 1) against a one-process bare Pillow loop; API in-process (Flask test client)")
        print(f"{'path':34s} {'img/s':>7s} {'ratio':>6s}   rounds")
        rows = [("bare Pillow loop (baseline)", "base"),
                ("multipart, job time", "multi_job"), ("multipart, end to end", "multi_e2e"),
                ("zip, job time", "zip_job"), ("zip, end to end", "zip_e2e")]
        for label, key in rows:
            rounds = ", ".join(f"{v:.1f}" for v in rates[key])
            print(f"{label:34s} {med[key]:7.1f} {med[key] / med['base']:6.2f}   ({rounds})")
        print("target: job time ratio >= 0.70")
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)
        if runtime is not None:
            runtime.close()
        redis.Redis.from_url(REDIS_URL).flushdb()  # db 14 only
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
