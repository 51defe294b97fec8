"""The client distribution installed ALONE into a fresh virtualenv (`pip install ./client`, its dependencies
from the package index, nothing of the server) runs the whole loop with `lloop` against the real API
(gunicorn, Socket.IO) and the real pools: login, upload a zip, import COCO, get a dataset, train, deploy,
suggest — each step's output checked; and bad input (a wrong token or URL at login, an unknown project, a
bad settings file, a bad --config) answers one clear line and the exit status that says what failed,
with nothing half-written."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from loopline_client.sdk import verify_folder
from tests.conftest import unique
from tests.support.procs import ROOT, free_port
from tests.support.scenes import layout, scene

W, H = 160, 120
SERVER_ONLY = ("flask", "sqlalchemy", "gunicorn", "psycopg", "celery", "api", "services", "store", "workers")


@pytest.fixture(scope="session")
def client_venv(tmp_path_factory) -> Path:
    """One virtualenv per test session with only loopline-client in it (pip's own cache keeps it quick)."""
    venv = tmp_path_factory.mktemp("client-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check",
                           str(ROOT / "client")], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


@pytest.fixture()
def lloop(client_venv, tmp_path):
    """Run `lloop` from that virtualenv in a bare environment: its own HOME and config folder."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{client_venv}/bin:/usr/bin:/bin", "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"),
           "LOOPLINE_POLL_INTERVAL": "0.5", "LANG": "C.UTF-8"}

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(client_venv / "bin/lloop"), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    run.config = home / "xdg" / "loopline" / "client.json"
    run.env = env
    return run


def ok(proc: subprocess.CompletedProcess) -> dict | list:
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess, code: int, *says: str) -> str:
    assert proc.returncode == code, f"exit {proc.returncode}, wanted {code}: {proc.stdout} {proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and proc.stdout == "", proc.stderr
    for s in says:
        assert s in lines[0], lines[0]
    return lines[0]


def usage_error(proc: subprocess.CompletedProcess, says: str) -> None:
    """Exit 2, click's usage lines and the error, said once."""
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stdout} {proc.stderr}"
    assert proc.stdout == "" and proc.stderr.count(says) == 1 and proc.stderr.count("Error:") == 1, proc.stderr


@pytest.mark.timeout(900)
def test_the_client_alone_imports_nothing_of_the_server(client_venv, tmp_path):
    code = ("import importlib.util, json, loopline_client, loopline_client.cli, loopline_client.tfdata; "
            f"print(json.dumps([m for m in {list(SERVER_ONLY)!r} if importlib.util.find_spec(m)]))")
    out = subprocess.run([str(client_venv / "bin/python"), "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=True, env={"PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []  # not installed at all, not merely not imported
    assert (client_venv / "bin/lloop").exists() and not (client_venv / "bin/loopline").exists()


@pytest.mark.timeout(900)
def test_login_refuses_a_wrong_url_or_token_and_writes_nothing(lloop, server, tokens):
    closed = f"http://127.0.0.1:{free_port()}"
    one_error_line(lloop("login", closed, "--token", tokens["alice"]), 6, "cannot reach", closed)
    one_error_line(lloop("login", f"{server.url}/api/jobs", "--token", tokens["alice"]), 6, "loopline server")
    one_error_line(lloop("login", server.url, "--token", "ll_wrong"), 3, "refused the token")
    usage_error(lloop("login", "127.0.0.1:8000", "--token", "x"), "full address")
    assert not lloop.config.parent.exists()  # nothing written, not even the folder

    one_error_line(lloop("project", "list"), 3, "not logged in", "lloop login")

    said = ok(lloop("login", server.url, "--token", tokens["alice"], "--json"))
    assert said["user"]["name"] == "alice" and said["config"] == str(lloop.config)
    assert stat.S_IMODE(lloop.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(lloop.config.parent.stat().st_mode) == 0o700
    assert json.loads(lloop.config.read_text()) == {"url": server.url, "token": tokens["alice"], "user": "alice"}
    before = lloop.config.read_bytes()
    one_error_line(lloop("login", server.url, "--token", "ll_wrong"), 3)
    assert lloop.config.read_bytes() == before  # a refused login leaves the saved one as it was
    assert [p.name for p in lloop.config.parent.iterdir()] == ["client.json"]  # no temporary file left

    lloop.config.write_text("{not json")
    one_error_line(lloop("project", "list"), 10, str(lloop.config), "not valid JSON")
    lloop.config.write_text('["a list"]')
    one_error_line(lloop("project", "list"), 10, "must be a JSON object")
    ok(lloop("login", server.url, "--token", tokens["alice"], "--json"))  # login rewrites it
    assert isinstance(ok(lloop("project", "list", "--json")), list)
    ok(lloop("logout", "--json"))
    assert not lloop.config.exists()


def _coco(names: list[str]) -> dict:
    images, annotations = [], []
    for i, name in enumerate(names, 1):
        images.append({"id": i, "file_name": name, "width": W, "height": H})
        for c, x, y, w, h in layout(i):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1 if c == "cat" else 2,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    return {"images": images, "annotations": annotations, "categories": [
        {"id": 1, "name": "cat", "supercategory": "pets"}, {"id": 2, "name": "dog", "supercategory": "pets"}]}


@pytest.mark.timeout(900)
def test_the_loop_end_to_end_with_the_cli_alone(lloop, server, workers, tokens, tmp_path):
    ok(lloop("login", server.url, "--token", tokens["alice"], "--json"))
    name = unique("cli-loop")
    project = ok(lloop("project", "create", name, "--use", "--json"))
    pid = project["id"]
    assert project["name"] == name and project["role"] == "admin"
    assert json.loads(lloop.config.read_text())["project"] == str(pid)

    # unknown projects: by id and by name, a clear 404 (exit 4)
    one_error_line(lloop("-p", "987654321", "images", "list"), 4, "404")
    one_error_line(lloop("-p", "no such project", "images", "list"), 4, "no such project")
    one_error_line(lloop("images", "list", "-p", "987654321"), 4)

    # 1. upload a zip (unannotated scenes and one broken file): each file's outcome
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(20, 23):
            zf.writestr(f"extra/scene{i}.png", scene(W, H, layout(i)))
        zf.writestr("extra/broken.png", scene(W, H, layout(1))[:200])
    up = lloop("images", "upload", str(archive), "--json")
    uploaded = ok(up)
    assert (uploaded["accepted"], uploaded["rejected"], uploaded["duplicate"]) == (3, 1, 0)
    outcomes = {f["name"]: f for f in uploaded["files"]}
    assert outcomes["more.zip/extra/broken.png"]["outcome"] == "rejected"
    assert outcomes["more.zip/extra/broken.png"]["reason"] in ("truncated", "corrupt")
    assert all(outcomes[f"more.zip/extra/scene{i}.png"]["outcome"] == "accepted" for i in range(20, 23))
    assert [j["status"] for j in uploaded["jobs"]] == ["succeeded"] and "ingest" in up.stderr  # the job's bar
    again = lloop("images", "upload", str(archive))  # text output: counts, then every file not accepted
    assert again.returncode == 0 and again.stdout.startswith("upload: 3 duplicate, 1 rejected")
    assert "rejected more.zip/extra/broken.png" in again.stdout

    # 2. import COCO: its images in a folder, classes created by name, boxes attached by file name
    folder = tmp_path / "coco"
    folder.mkdir()
    names = [f"scene{i}.png" for i in range(1, 13)]
    for i, n in enumerate(names, 1):
        (folder / n).write_bytes(scene(W, H, layout(i)))
    (tmp_path / "coco.json").write_text(json.dumps(_coco(names)))
    imported = ok(lloop("coco", "import", str(tmp_path / "coco.json"), str(folder), "--json"))
    assert imported["accepted"] == 12 and imported["rejected"] == 0
    classes = ok(lloop("class", "list", "--json"))
    assert sorted(c["name"] for c in classes) == ["cat", "dog"] and {c["group"] for c in classes} == {"pets"}
    label_map = ok(lloop("label-map", "create", "pets", "cat", "dog", "--json"))
    assert [(e["id"], e["name"]) for e in label_map["entries"]] == [(1, "cat"), (2, "dog")]
    boxed = ok(lloop("images", "list", "--annotated", "--json"))
    assert len(boxed) == 12 and all(i["boxes"] == 2 for i in boxed)
    export = tmp_path / "export.json"
    assert lloop("coco", "export", "-o", str(export), "-q").returncode == 0
    assert len(json.loads(export.read_text())["annotations"]) == 24

    # 3. a dataset, built and downloaded verified (a bad --config is one usage error, nothing written)
    out = tmp_path / "datasets"
    bad = lloop("dataset", "get", "--name", "boxes", "--handler", "suggest@1", "--label-map", "pets",
                "--config", "{oops", "--out", str(out))
    usage_error(bad, "not valid JSON")
    assert not out.exists()
    refused = lloop("dataset", "get", "--name", "boxes", "--handler", "suggest@1", "--label-map", "pets",
                    "--config", '{"size": 5}', "--out", str(out))
    one_error_line(refused, 5, "config.size")
    assert not out.exists() or list(out.iterdir()) == []
    got = ok(lloop("dataset", "get", "--name", "boxes", "--handler", "suggest@1", "--label-map", "pets",
                   "--config", '{"size": 64, "regions": 4}', "--out", str(out), "--json"))
    assert got["status"] == "ready" and Path(got["path"]) == out / got["key"]
    manifest = verify_folder(got["path"], got["manifest"]["files"])
    assert sum(manifest["records"].values()) == 12 * 2 * 4
    assert ok(lloop("dataset", "build", "--name", "boxes", "--handler", "suggest@1", "--label-map", "pets",
                    "--config", '{"size": 64, "regions": 4}', "--json"))["key"] == got["key"]  # the cache

    # 4. train a fresh root on it and follow the curve
    trained = lloop("train", "--dataset", got["key"], "--epochs", "2", "--batch-size", "16", "--json")
    ck = ok(trained)
    assert ck["status"] == "trained" and ck["architecture"] == "box_suggester" and ck["input_size"] == 64
    assert [e["epoch"] for e in ck["curve"]] == [0, 1, 2] and ck["dataset_key"] == got["key"]
    assert "epoch 1:" in trained.stderr and "epoch 2:" in trained.stderr  # the curve, as it came
    shown = lloop("checkpoint", "show", str(ck["id"]))
    assert shown.returncode == 0 and f"checkpoint {ck['id']}" in shown.stdout and "trained" in shown.stdout

    # 5. deploy it (ONNX, checked against Keras, active)
    dep = ok(lloop("deploy", str(ck["id"]), "--json"))
    assert dep["status"] == "ready" and dep["active"] and dep["checkpoint_id"] == ck["id"]
    assert dep["max_abs_diff"] is not None and dep["max_abs_diff"] < 1e-3

    # 6. suggest a box on an image the model has not seen (the uploaded zip's scene20)
    image = next(i for i in ok(lloop("images", "list", "--not-annotated", "--json"))
                 if i["original_name"].endswith("scene20.png"))
    cat = layout(20)[0]
    rough = [str(v) for v in (cat[1] - 4, cat[2] - 4, cat[3] + 8, cat[4] + 8)]
    suggestion = ok(lloop("suggest", str(image["id"]), "--region", *rough, "--json"))
    box = suggestion["annotation"]
    assert box["source"] == "model" and box["status"] == "proposed" and box["deployment_id"] == dep["id"]
    assert suggestion["class_name"] in ("cat", "dog") and 0 <= box["score"] <= 1
    assert 0 <= box["x"] < W and 0 <= box["y"] < H and box["w"] > 0 and box["h"] > 0
    text = lloop("suggest", str(image["id"]), "--point", str(cat[1] + 20), str(cat[2] + 15))
    assert text.returncode == 0 and text.stdout.startswith("box ") and " ms)" in text.stdout
    boxes = ok(lloop("boxes", "list", str(image["id"]), "--json"))
    assert len(boxes["items"]) == 2 and boxes["revision"] == 2

    # 7. the jobs it ran
    jobs = ok(lloop("jobs", "list", "--limit", "50", "--json"))
    kinds = {j["kind"] for j in jobs}
    assert {"ingest", "dataset.build", "checkpoint.train", "deployment.build"} <= kinds, kinds
    assert all(j["status"] == "succeeded" for j in jobs)
    watched = lloop("jobs", "watch", jobs[0]["id"], "--json")
    assert watched.returncode == 0 and json.loads(watched.stdout.splitlines()[-1])["status"] == "succeeded"
    one_error_line(lloop("jobs", "show", "00000000-0000-0000-0000-000000000000"), 4)
