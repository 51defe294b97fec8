"""Images ingested per second by the real ingest job, against a bare Pillow loop doing the same conversion.

Input, made here: N photo-like 640x480 images (gradients, shapes, noise). Most are upright JPEGs (q90,
~70 KB, kept as uploaded), one in five has EXIF orientation 6 (re-encoded as JPEG q95), one in ten is an
RGBA PNG (~700 KB, re-encoded as PNG level 1), one in ten a plain RGB PNG (kept). Same files on both sides.

* baseline: one process, a bare loop that reads each file, does in Pillow what `handlers.imaging.normalize`
  does (same branches, draft(), EXIF transpose, flattening, encoder settings, 256 px JPEG q85 thumbnail:
  its output is byte-identical) and writes image and thumbnail to files. No hash, fsync or catalog.
* loopline: throwaway data dir, SQLite catalog, Redis db 14 (only that db is flushed, at start and end),
  ONE worker process (`loopline worker augmentation -c 1`), the API in-process (Flask test client). All N
  files in one multipart POST, then as one deflated zip, each into a fresh project; every file must be
  `accepted`. Job time is the job's own started_at -> finished_at; end to end runs from sending the
  request until the job is seen succeeded (multipart parsing, staging, queueing, 50 ms polling).

Rounds alternate baseline / multipart / zip; medians and ratios are printed (target: job/baseline >= 0.7).

    .venv/bin/python bench/ingest_rate.py [--images 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store.accounts import create_user, issue_token
from tests.support.procs import settings_env, stop_group
from throwaway import throwaway  # bench/throwaway.py (a script's folder is on sys.path)

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
        bands.append(g.resize((w, h), Image.Resampling.BILINEAR).point(lambda v, a=a, b=b: int(v * a + b)))
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
    for i in range(n):  # 3: RGBA PNG (re-encoded), 8: RGB PNG (kept), 1 and 6: EXIF 6 JPEG (re-encoded), else kept
        img, kind, exif = photo(i), i % 10, Image.Exif()
        if kind == 3:
            img.putalpha(Image.linear_gradient("L").resize(img.size))
        exif[0x0112] = 6 if kind in (1, 6) else 1
        paths.append(folder / f"img{i:04d}.{'png' if kind in (3, 8) else 'jpg'}")
        img.save(paths[-1], **({} if kind in (3, 8) else {"quality": 90, "exif": exif}))
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


def run_job(client, headers: dict, files: list[tuple[str, bytes]], node: str, expect: int) -> tuple[float, float, float]:
    """Upload into a fresh project; return (job seconds, end-to-end seconds, seconds until the 202)."""
    res = client.post("/api/projects", json={"name": f"bench-{uuid.uuid4().hex[:8]}"}, headers=headers)
    assert res.status_code == 201, res.get_json()
    pid = res.get_json()["id"]
    body = {"files": [(io.BytesIO(b), name) for name, b in files]}
    start = time.perf_counter()
    res = client.post(f"/api/projects/{pid}/images", data=body, content_type="multipart/form-data", headers=headers)
    assert res.status_code == 202, res.get_json()
    accepted_in = time.perf_counter() - start
    job_id = res.get_json()["id"]
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)  # a poll costs ~2 ms of CPU in this process: keep it off the worker's cores
    e2e = time.perf_counter() - start
    assert job["status"] == "succeeded", job
    assert job["worker"] and job["worker"].startswith(node), f"job ran on {job['worker']}, not on our worker"
    counts = {k: job["result"][k] for k in ("accepted", "duplicate", "rejected", "skipped")}
    assert counts["accepted"] == expect, f"expected {expect} accepted: {counts}"
    took = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    return took.total_seconds(), e2e, accepted_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="images per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = parser.parse_args()
    with throwaway(REDIS_URL, "ingest") as run:
        tmp, settings = run.tmp, run.settings
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

        from api import create_app

        app = create_app(settings)
        runtime = app.extensions["loopline.runtime"]
        run.cleanup.callback(runtime.close)
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
        run.cleanup.callback(stop_group, worker)  # SIGTERM to its own process group, SIGKILL after 20 s
        wait_worker(app.extensions["celery"], worker, hostname, log)

        size = settings.thumbnail_size
        baseline(paths[:10], tmp / "out", size)  # warm both sides
        run_job(client, headers, files[:10], node, 10)
        rates: dict[str, list[float]] = {k: [] for k in ("base", "multi_job", "multi_e2e", "zip_job", "zip_e2e")}
        requests: dict[str, list[float]] = {"multi": [], "zip": []}
        for r in range(args.rounds):
            rates["base"].append(baseline(paths, tmp / "out", size))
            for label, upload in (("multi", files), ("zip", [("images.zip", zipped.getvalue())])):
                job_s, e2e_s, req_s = run_job(client, headers, upload, node, len(files))
                requests[label].append(req_s)
                rates[f"{label}_job"].append(len(files) / job_s)
                rates[f"{label}_e2e"].append(len(files) / e2e_s)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), flush=True)

        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"\n{len(files)} images per measurement, {args.rounds} rounds, medians in images/s; one worker "
              "process (augmentation -c 1) against a one-process bare Pillow loop; API in-process (Flask test client)")
        print(f"{'path':34s} {'img/s':>7s} {'ratio':>6s}   rounds")
        for label, key in (("bare Pillow loop (baseline)", "base"), ("multipart, job time", "multi_job"),
                           ("multipart, end to end", "multi_e2e"), ("zip, job time", "zip_job"), ("zip, end to end", "zip_e2e")):
            rounds = ", ".join(f"{v:.1f}" for v in rates[key])
            print(f"{label:34s} {med[key]:7.1f} {med[key] / med['base']:6.2f}   ({rounds})")
        print("target: job time ratio >= 0.70; the request itself (multipart parsing, staging) took a median "
              f"{statistics.median(requests['multi']):.2f} s (multipart), {statistics.median(requests['zip']):.2f} s (zip)")


if __name__ == "__main__":
    main()
