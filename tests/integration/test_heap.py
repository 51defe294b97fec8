"""The start-up heap of long-running processes is frozen out of the cyclic collector (workers.heap): gunicorn
calls the hook in each API worker (proven here with a real gunicorn); Celery pools: see the probe test."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from tests.support.procs import ROOT, free_port

APP = '''
import gc, os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.getpid()} {gc.get_freeze_count()}".encode()]
'''


def test_gunicorn_workers_freeze_their_startup_heap(tmp_path):
    (tmp_path / "frozen_app.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:api.gunicorn_conf", "--workers", "2",
         "--bind", f"127.0.0.1:{port}", "--chdir", str(tmp_path), "frozen_app:app"],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                       "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, seen = time.monotonic() + 30, {}
        while len(seen) < 2 and time.monotonic() < deadline:  # both workers answer, sooner or later
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as res:
                    pid, frozen = map(int, res.read().split())
                    seen[pid] = frozen
            except OSError:
                time.sleep(0.2)
        assert seen, proc.stderr.read1().decode() if proc.poll() is not None else "gunicorn did not answer"
        assert all(frozen > 1000 for frozen in seen.values()), seen
    finally:
        proc.terminate()
        proc.wait(timeout=20)
