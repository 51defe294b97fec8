"""Jobs submitted per second through the REST API, against raw `apply_async` of the same task.

Three paths publish the same task (`loopline.probe.inference`) to the same Redis broker from the same
number of client threads; the API path also authenticates, validates, commits the Job row and emits
the `queued` event, which is the price of a job you can see, cancel and recover; the batch endpoint
pays the HTTP cost once per batch. No worker consumes during the measurement: this is the rate at
which work is *accepted*. Prints every rate and each API path's ratio to the raw one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import migrate  # noqa: E402
from store.accounts import create_user, issue_token  # noqa: E402
from store.settings import load_settings  # noqa: E402
from services.runtime import Runtime  # noqa: E402


def run_threads(n_threads: int, per_thread: int, make_worker) -> float:
    """Run `per_thread` calls in each of `n_threads` threads; return calls per second."""
    barrier = threading.Barrier(n_threads + 1)
    errors: list[BaseException] = []

    def body():
        call = make_worker()
        barrier.wait()
        try:
            for _ in range(per_thread):
                call()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=body) for _ in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return n_threads * per_thread / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per measurement")
    parser.add_argument("--threads", type=int, default=8, help="client threads for both paths")
    parser.add_argument("--batch", type=int, default=50, help="jobs per request on the batch path")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--web-workers", type=int, help="API processes (default: what `loopline serve` picks)")
    parser.add_argument("--database-url", help="catalog URL (default: SQLite in a temporary folder)")
    parser.add_argument("--server-threads", type=int, default=32, help="threads per API process")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="loopline-bench-"))
    settings = load_settings(data_dir=tmp, redis_url=f"redis://127.0.0.1:6379/{args.redis_db}", database_url=args.database_url)
    settings.ensure_dirs()
    redis.Redis.from_url(settings.redis_url).flushdb()
    migrate.upgrade(settings.sqlalchemy_url)
    runtime = Runtime(settings)
    with runtime.sessions() as session:
        token = issue_token(session, create_user(session, f"bench-{uuid.uuid4().hex[:8]}"))
        session.commit()

    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "LOOPLINE_DATA_DIR": str(tmp), "LOOPLINE_REDIS_URL": settings.redis_url,
           "LOOPLINE_DATABASE_URL": settings.sqlalchemy_url, "PYTHONPATH": str(ROOT)}
    serve = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--threads", str(args.server_threads)]
    if args.web_workers:
        serve += ["--workers", str(args.web_workers)]
    server = subprocess.Popen(serve,
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(url + "/api/health", timeout=1).ok:
                    break
            except requests.RequestException:  # not listening yet, or still importing the app (a read timeout)
                time.sleep(0.1)
        else:
            raise SystemExit("API server did not start")

        from workers.celery_app import create_celery

        celery = create_celery(settings)
        celery.loader.import_default_modules()
        task = celery.tasks["loopline.probe.inference"]

        def raw_worker():
            return lambda: task.apply_async(args=[str(uuid.uuid4())], queue="inference")

        def api_worker(path: str, payload: dict):
            def make():
                # a lean keep-alive client, so the load generator takes little of the CPU it shares
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                body = json.dumps(payload)

                def call():
                    conn.request("POST", path, body, headers)
                    res = conn.getresponse()
                    data = res.read()
                    if res.status != 202:
                        raise RuntimeError(f"{res.status}: {data[:200]!r}")

                return call

            return make

        one = {"kind": "probe", "queue": "inference"}
        single = api_worker("/api/jobs", one)
        batch = api_worker("/api/jobs/batch", {"jobs": [one] * args.batch})

        per_thread = max(1, args.jobs // args.threads)
        batches_per_thread = max(1, per_thread // args.batch)
        run_threads(2, 50, raw_worker)  # warm every path
        run_threads(2, 50, single)
        run_threads(2, 2, batch)
        rates: dict[str, list[float]] = {"raw": [], "single": [], "batch": []}
        for _ in range(args.rounds):
            rates["raw"].append(run_threads(args.threads, per_thread, raw_worker))
            rates["single"].append(run_threads(args.threads, per_thread, single))
            rates["batch"].append(run_threads(args.threads, batches_per_thread, batch) * args.batch)
            redis.Redis.from_url(settings.redis_url).delete("inference")
        best = {k: max(v) for k, v in rates.items()}

        def line(label, key):
            rounds = ", ".join(f"{r:.0f}" for r in rates[key])
            print(f"{label:38s}: {best[key]:7.0f} jobs/s  (rounds: {rounds})")

        print(f"jobs per round: {per_thread * args.threads} from {args.threads} client threads; {args.rounds} rounds, best kept")
        line("raw apply_async (baseline)", "raw")
        line("POST /api/jobs, 1 job per request", "single")
        line(f"POST /api/jobs/batch, {args.batch} per request", "batch")
        print(f"{'ratio, one job per request':38s}: {best['single'] / best['raw']:7.2f}   (target >= 0.50)")
        print(f"{f'ratio, batches of {args.batch}':38s}: {best['batch'] / best['raw']:7.2f}   (target >= 0.50)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        redis.Redis.from_url(settings.redis_url).flushdb()
        runtime.close()


if __name__ == "__main__":
    main()
