"""The server's wheel carries the built dashboard: `pip install loopline` serves the same pages as a checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_contains_the_built_dashboard(tmp_path):
    index = ROOT / "api" / "static" / "index.html"
    assert index.is_file(), "the dashboard is not built: `make test` builds it (cd web && npm ci && npm run build)"
    assets = sorted(p.name for p in (ROOT / "api" / "static" / "assets").iterdir())
    # Built from a copy: setuptools keeps a build/ folder next to the sources, whose stale files would go
    # into later wheels of the checkout.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "var", "build",
                                                                 "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("loopline-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "api/static/index.html" in names
    assert {f"api/static/assets/{a}" for a in assets} <= names  # every hashed asset the page loads
    assert not any(n.startswith("web/") for n in names)  # the sources and node_modules stay out
