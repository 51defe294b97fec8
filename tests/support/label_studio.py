"""A real Label Studio for the end-to-end test: installed once into its own virtualenv, cached across runs
under ~/.cache/loopline (`make test` makes it before the tests, so they need no network; made here too if
missing, built in a temporary folder and renamed into place so a half-made one is never used), started on a
free port with its own data folder, and driven through its REST API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.procs import free_port, stop_group

VERSION = "1.23.2"  # as the Makefile's LABEL_STUDIO_VENV
CACHE = Path(os.environ.get("LOOPLINE_TEST_LABEL_STUDIO_VENV",
                            Path.home() / ".cache" / "loopline" / f"label-studio-{VERSION}"))
TOKEN = "0123456789abcdef0123456789abcdef01234567"  # the admin's legacy API token, set at first start


def ensure_venv() -> Path:
    """The cached virtualenv's python (the console script's shebang would break on the rename; `-m` does not)."""
    python = CACHE / "bin" / "python"
    if python.exists():
        return python
    building = CACHE.with_name(f"{CACHE.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", f"label-studio=={VERSION}"],
                   check=True, timeout=1800)
    building.rename(CACHE)
    return python


class LabelStudio:
    def __init__(self, data_dir: Path, log: Path):
        python = ensure_venv()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "ML_BLOCK_LOCAL_IP": "false",
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "LABEL_STUDIO_HOST": self.url,
               "SSRF_PROTECTION_ENABLED": "false",  # its webhook to a loopline on loopback, as ML_BLOCK_LOCAL_IP for the model
               "LABEL_STUDIO_USERNAME": "ls@example.org", "LABEL_STUDIO_PASSWORD": "loopline-test",
               "LABEL_STUDIO_USER_TOKEN": TOKEN, "DJANGO_DB": "sqlite"}
        env = {k: v for k, v in env.items() if not k.startswith("LOOPLINE_") and k not in ("PYTHONPATH",)}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(python), "-m", "label_studio.server", "start", "--no-browser", "--port", str(self.port),
                 "--internal-host", "127.0.0.1"],
                cwd=data_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {TOKEN}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited: {log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError("Label Studio did not come up")

    def api(self, method: str, path: str, **kw):
        res = self.session.request(method, self.url + path, timeout=60, **kw)
        assert res.status_code < 400, (method, path, res.status_code, res.text[:500])
        return res.json() if res.content else None

    def stop(self) -> None:
        stop_group(self.proc)
