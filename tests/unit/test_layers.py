"""The import rules of ARCHITECTURE.md, checked on the source: `api → services`, `workers → services`,
`services → {models, handlers, store}`, every import pointing down (the API may also read the pure tables
below: architectures, handlers, image formats); models and handlers know nothing of Flask, Celery or SQL;
the client speaks HTTP only. Every import counts, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "services", "workers", "models", "handlers", "store", "loopline_client")

MAY_IMPORT = {
    "api": {"services", "store", "models", "handlers"},
    "workers": {"services", "models", "handlers", "store"},
    "services": {"models", "handlers", "store"},
    "models": set(),
    "handlers": set(),
    "store": set(),
    "loopline_client": set(),  # its own distribution (client/): HTTP and Socket.IO only
}
# The few places the API reaches into workers/, each for a process, never for a rule:
API_USES_OF_WORKERS = {
    "workers.celery_app": "the Celery app the API sends tasks with (no task module is imported)",
    "workers.heap": "gunicorn's post-fork hook freezes the start-up heap like the workers do",
    "workers.sweeper": "`loopline reaper` runs the reaper's loop",
}
NO_FRAMEWORKS = {"flask", "flask_socketio", "flask_smorest", "celery", "kombu", "sqlalchemy", "redis"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module in PACKAGES:  # `from services import jobs`
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


FOLDERS = {"loopline_client": ROOT / "client" / "loopline_client"}


def modules(package: str) -> list[Path]:
    return sorted(p for p in FOLDERS.get(package, ROOT / package).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package):
    wrong = {}
    for path in modules(package):
        for name in imports(path):
            top = name.split(".")[0]
            if top not in PACKAGES or top == package or top in MAY_IMPORT[package]:
                continue
            if package == "api" and top == "workers" and name in API_USES_OF_WORKERS:
                continue
            wrong.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert wrong == {}, f"{package} imports what it may not: {wrong}"


@pytest.mark.parametrize("package", ["models", "handlers", "loopline_client"])
def test_pure_packages_know_no_web_queue_or_database(package):
    found = {str(p.relative_to(ROOT)): sorted(n for n in imports(p) if n.split(".")[0] in NO_FRAMEWORKS)
             for p in modules(package)}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_api_and_the_inference_side_never_import_tensorflow():
    heavy = {"tensorflow", "keras", "tf2onnx"}
    lazy_ok = {"services/training.py", "services/deploy.py"}  # their TF imports run inside the jobs only
    for package in ("api", "services", "workers"):
        for path in modules(package):
            rel = str(path.relative_to(ROOT))
            tf = {n for n in imports(path) if n.split(".")[0] in heavy}
            if rel in lazy_ok:
                top_level = {n for node in ast.parse(path.read_text()).body
                             if isinstance(node, (ast.Import, ast.ImportFrom))
                             for n in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])}
                tf = {n for n in top_level if n.split(".")[0] in heavy}
            assert not tf, f"{rel} imports {tf}"


def test_the_rules_checked_here_are_the_documented_ones():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    assert "api → services" in text and "workers → services" in text and "services → {models, handlers, store}" in text
