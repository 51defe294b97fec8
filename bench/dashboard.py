"""The dashboard's jobs table under load: first render with 10 000 jobs in the catalog, and the frame
rate kept while 200 job events a second arrive over Socket.IO, against the same page with no events.

A throwaway catalog gets N finished jobs in one project; gunicorn serves the built dashboard
(api/static); Playwright drives Debian's Chromium. First render is the time from navigation start to the
table's rows in the DOM (median of several loads), printed next to the REST snapshot's own time in the
same page. The frame rate is counted with requestAnimationFrame for a few seconds with no events, then
for the same time while a sender emits `job` events (the REST payloads of the visible jobs, progress
changing) to the project's room through the Socket.IO message queue, the way workers do. Prints both
rates and their ratio. Targets: first render < 1 s, >= 30 fps under the storm.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from store import migrate  # noqa: E402
from store.accounts import create_user, issue_token  # noqa: E402
from store.schema import Job, JobStatus, Membership, Project, Role  # noqa: E402
from store.schema.base import utcnow  # noqa: E402
from store.settings import load_settings  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from tests.support.procs import free_port, settings_env, stop_group  # noqa: E402

ROWS = "() => document.querySelectorAll('[data-testid=jobs] tbody tr[data-job]').length"
COUNT_FRAMES = """seconds => new Promise(done => {
  let frames = 0, worst = 0, last = performance.now();
  const start = last;
  const tick = now => {
    frames++; worst = Math.max(worst, now - last); last = now;
    if (now - start < seconds * 1000) requestAnimationFrame(tick);
    else done({fps: frames / ((now - start) / 1000), worst_ms: worst});
  };
  requestAnimationFrame(tick);
})"""


def seed(rt: Runtime, n: int) -> tuple[str, int]:
    with rt.sessions() as session:
        user = create_user(session, f"bench-{uuid.uuid4().hex[:6]}")
        token = issue_token(session, user)
        project = Project(name=f"bench-{uuid.uuid4().hex[:6]}", description="")
        session.add(project)
        session.flush()
        session.add(Membership(project_id=project.id, user_id=user.id, role=Role.admin))
        now = utcnow()
        rows = []
        for i in range(n):
            created = now - timedelta(seconds=n - i)
            rows.append({"id": str(uuid.uuid4()), "kind": "probe", "queue": ("inference", "augmentation", "training", "deployment")[i % 4],
                         "status": JobStatus.succeeded, "progress": 1.0, "message": "done", "details": {}, "params": {},
                         "result": {"n": i}, "attempts": 1, "project_id": project.id, "user_id": user.id,
                         "created_at": created, "started_at": created, "finished_at": created + timedelta(milliseconds=30),
                         "updated_at": created + timedelta(milliseconds=30), "sends": 1, "sent_at": created})
        for start in range(0, n, 2000):
            session.execute(insert(Job), rows[start:start + 2000])
        session.commit()
        return token, project.id


def storm(rt: Runtime, jobs: list[dict], rate: float, seconds: float, stop: threading.Event, sent: list) -> None:
    """`rate` job events a second for `seconds`, round robin over `jobs` (paced by the clock)."""
    i, start = 0, time.perf_counter()
    while not stop.is_set() and (elapsed := time.perf_counter() - start) < seconds:
        while i < rate * elapsed:
            job = jobs[i % len(jobs)]
            i += 1
            progress = (i % 100) / 100
            rt.events.job({**job, "status": "running", "progress": progress, "message": f"step {i}",
                           "updated_at": utcnow().isoformat()})
            job["_last"] = progress
        time.sleep(0.005)
    sent.append((i, time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the catalog")
    parser.add_argument("--rate", type=float, default=200, help="job events per second during the storm")
    parser.add_argument("--seconds", type=float, default=5, help="length of each frame-rate measurement")
    parser.add_argument("--loads", type=int, default=5, help="page loads for the first-render median")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if not (ROOT / "api" / "static" / "index.html").exists():
        sys.exit("build the dashboard first: cd web && npm ci && npm run build")

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="loopline-bench-"))
    settings = load_settings(data_dir=tmp, redis_url=f"redis://127.0.0.1:6379/{args.redis_db}")
    settings.ensure_dirs()
    redis.Redis.from_url(settings.redis_url).flushdb()
    migrate.upgrade(settings.sqlalchemy_url)
    rt = Runtime(settings)
    t = time.perf_counter()
    token, pid = seed(rt, args.jobs)
    print(f"seeded {args.jobs} jobs in {time.perf_counter() - t:.1f} s")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "ab")
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--threads", "16"],
                              cwd=ROOT, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit(f"server did not come up: {(tmp / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--headless=new", "--no-sandbox"])
            context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 900})
            assert context.request.post("/api/session", data={"token": token}, headers={"Origin": url}).ok
            page = context.new_page()
            page_url = f"/jobs?project={pid}&limit=50"

            renders, snapshots = [], []
            for _ in range(args.loads + 1):  # the first load warms the caches: not counted
                page.goto(page_url, wait_until="commit")
                at = page.wait_for_function(f"() => ({ROWS})() >= 50 && performance.now()", polling="raf").json_value()
                snap = page.evaluate(f"""() => {{ const t = performance.now();
                    return fetch('/api/jobs?project_id={pid}&limit=50').then(r => r.json()).then(() => performance.now() - t); }}""")
                renders.append(at)
                snapshots.append(snap)
            render_ms, snapshot_ms = statistics.median(renders[1:]), statistics.median(snapshots[1:])
            total = page.evaluate("() => document.querySelector('.pager span')?.textContent")
            print(f"first render of the jobs table ({total}): {render_ms:.0f} ms median "
                  f"(REST snapshot alone {snapshot_ms:.0f} ms; ratio {render_ms / snapshot_ms:.1f}) "
                  f"— target < 1000 ms: {'met' if render_ms < 1000 else 'MISSED'}")

            page.wait_for_selector(".live.on")
            time.sleep(1)
            idle = page.evaluate(COUNT_FRAMES, args.seconds)
            visible = [j for j in requests.get(f"{url}/api/jobs", params={"project_id": pid, "limit": 50},
                                               headers={"Authorization": f"Bearer {token}"}).json()["items"]]
            stop, sent = threading.Event(), []
            sender = threading.Thread(target=storm, args=(rt, visible, args.rate, args.seconds + 1.5, stop, sent))
            sender.start()
            time.sleep(0.5)
            loaded = page.evaluate(COUNT_FRAMES, args.seconds)
            stop.set()
            sender.join()
            time.sleep(0.6)  # the last batch is drawn
            shown = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('tr[data-job]')].map(
                tr => [tr.dataset.job, Number(tr.querySelector('[role=progressbar]').getAttribute('aria-valuenow'))]))""")
            caught_up = sum(1 for j in visible if round(j.get("_last", 1.0) * 100) == shown.get(j["id"]))
            rate = sent[0][0] / sent[0][1]
            print(f"frames per second: {idle['fps']:.1f} with no events (worst frame {idle['worst_ms']:.0f} ms), "
                  f"{loaded['fps']:.1f} under {rate:.0f} job events/s (worst frame {loaded['worst_ms']:.0f} ms); "
                  f"ratio {loaded['fps'] / idle['fps']:.2f} — target >= 30 fps: {'met' if loaded['fps'] >= 30 else 'MISSED'}")
            print(f"after the storm {caught_up}/{len(visible)} rows show the last progress sent")
            browser.close()
    finally:
        stop_group(server)
        rt.close()


if __name__ == "__main__":
    main()
