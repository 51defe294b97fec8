"""One build per dataset key under bursts: N bursts of M identical dataset requests, each burst on a fresh data
revision (one more box before it), through the real API under gunicorn. No worker consumes: every build job
stays queued, so each burst's requests race to create the row and its job. Prints the number of keys that got
more than one build job (must be 0) and how the answers split (202 joined / 202 new / 200 hit).

    .venv/bin/python bench/build_once.py [--bursts 100] [--requests 50]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store.accounts import issue_token  # noqa: E402
from store.schema import Dataset, Job, Membership, Role, User  # noqa: E402
from tests.support.catalog import labelled_project  # noqa: E402
from tests.support.procs import Server  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from throwaway import throwaway  # noqa: E402  (bench/throwaway.py: a script's folder is on sys.path)

REDIS_URL = "redis://127.0.0.1:6379/11"


def burst(url: str, headers: dict, body: dict, n: int) -> list[tuple[int, str | None]]:
    """n identical requests released together; (status, build job id) of each."""
    barrier = threading.Barrier(n)
    out: list[tuple[int, str | None]] = [(0, None)] * n

    def one(i: int) -> None:
        with requests.Session() as s:
            barrier.wait()
            res = s.post(url, json=body, headers=headers, timeout=120)
            job = (res.json().get("job") or {}).get("id") if res.status_code in (200, 202) else None
            out[i] = (res.status_code, job)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50, help="identical requests per burst")
    parser.add_argument("--postgresql", metavar="URL", help="catalog on a fresh database on this PostgreSQL server")
    args = parser.parse_args()
    with throwaway(REDIS_URL, "build-once", args.postgresql) as run:
        settings = run.settings
        runtime = Runtime(settings)
        run.cleanup.callback(runtime.close)
        pid, uid, lm = labelled_project(settings, runtime, 1)
        with runtime.sessions() as session:
            token = issue_token(session, session.get(User, uid))
            session.add(Membership(project_id=pid, user_id=uid, role=Role.admin))
            session.commit()
        server = Server(settings, run.tmp)
        run.cleanup.callback(server.stop)
        headers = {"Authorization": f"Bearer {token}"}
        api = server.url + "/api"
        image = requests.get(f"{api}/projects/{pid}/images", headers=headers, timeout=30).json()["items"][0]
        cls = requests.get(f"{api}/projects/{pid}/classes", headers=headers, timeout=30).json()["items"][0]
        body = {"project_id": pid, "name": "burst", "handler": "detection@1", "label_map_id": lm, "config": {}}
        answers: Counter = Counter()
        errors: Counter = Counter()
        started = time.perf_counter()
        for i in range(args.bursts):
            box = {"revision": image["revision"], "class_id": cls["id"], "x": 1 + i % 50, "y": 1, "w": 5, "h": 5}
            res = requests.post(f"{api}/projects/{pid}/images/{image['id']}/annotations", json=box, headers=headers,
                                timeout=30)
            assert res.status_code == 201, res.text
            image["revision"] = res.json()["revision"]
            results = burst(f"{api}/datasets", headers, body, args.requests)
            jobs = Counter(job for status, job in results if job)
            errors.update(status for status, _ in results if status not in (200, 202))
            answers.update("200 hit" if status == 200 else "202" for status, _ in results)
            if len(jobs) > 1:
                print(f"burst {i}: {len(jobs)} build jobs: {dict(jobs)}", flush=True)
        elapsed = time.perf_counter() - started
        with runtime.sessions() as session:
            per_dataset = Counter(j.params["dataset_id"] for j in session.scalars(
                select(Job).where(Job.kind == "dataset.build")))
            keys = session.scalar(select(func.count()).select_from(Dataset))
        builds = sum(per_dataset.values())
        duplicated = [d for d, n in per_dataset.items() if n > 1]
        total = args.bursts * args.requests
        print(f"{args.bursts} bursts x {args.requests} identical requests = {total} requests in {elapsed:.1f} s "
              f"({total / elapsed:.0f}/s): {keys} keys, {builds} build jobs, answers {dict(answers)}, "
              f"errors {dict(errors) or 0}")
        print(f"keys with more than one build: {len(duplicated)}")
        if duplicated or keys != args.bursts or builds != args.bursts or errors:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
