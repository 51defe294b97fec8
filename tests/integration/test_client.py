"""The client SDK, its tf.data loader and `lloop dataset get` against the real API (gunicorn, Socket.IO)
and real worker pools: builds awaited by event and by polling, verified downloads, resume, corruption."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from loopline_client import ChecksumMismatch, Loopline, LooplineError, UnsafeArchive
from loopline_client.cli import run
from loopline_client.sdk import _unpack, verify_folder
from loopline_client.tfdata import label_names, load_dataset
from tests.conftest import unique
from tests.support.api import ApiClient
from tests.support.ingest import image_ids, ingest
from tests.support.procs import ROOT, free_port
from tests.support.scenes import layout, scene

W, H = 160, 120


@pytest.fixture(scope="module")
def pets(app, tokens, workers):
    """One project for the module: six images with a cat and a dog each, boxed exactly; label map [cat, dog].
    Tests tell their datasets apart by `seed`, so each one gets its own key and build."""
    alice = ApiClient(app.test_client(), tokens["alice"])
    pid = alice.post("/api/projects", json={"name": unique("client")}).get_json()["id"]
    base = f"/api/projects/{pid}"
    cls = {n: alice.post(f"{base}/classes", json={"name": n}).get_json()["id"] for n in ("cat", "dog")}
    ids = image_ids(ingest(alice, pid, {f"scene{i}.png": scene(W, H, layout(i)) for i in range(6)}))
    truth = {}
    for name, image in ids.items():
        objects = layout(int(name[5:-4]))
        res = alice.put(f"{base}/images/{image}/annotations", json={"revision": 0, "items": [
            {"class_id": cls[c], "x": x, "y": y, "w": w, "h": h} for c, x, y, w, h in objects]})
        assert res.status_code == 200, res.get_json()
        truth[image] = objects
    lm = alice.post(f"{base}/label-maps", json={"name": "pets", "classes": [cls["cat"], cls["dog"]]}).get_json()["id"]
    return {"pid": pid, "lm": lm, "truth": truth}


@pytest.fixture()
def sdk(server, tokens):
    return Loopline(server.url, tokens["alice"], poll_interval=0.5)


def get(sdk: Loopline, pets, dest, seed: int, **kw):
    config = {"size": 64, "variations": 2, "validation_fraction": 0.0, "seed": seed}
    return sdk.request_dataset(pets["pid"], "pets", "detection@1", pets["lm"], config=config, dest=dest, **kw)


def built(alice, pets, seed: int) -> dict:
    """A ready dataset built through the API only (nothing downloaded)."""
    res = alice.post("/api/datasets", json={"project_id": pets["pid"], "name": "pets", "handler": "detection@1",
                                            "label_map_id": pets["lm"], "config": {
                                                "size": 64, "variations": 2, "validation_fraction": 0.0,
                                                "seed": seed}})
    assert res.status_code == 202, res.get_json()
    assert alice.wait_job(res.get_json()["job"]["id"])["status"] == "succeeded"
    return alice.get(f"/api/datasets/{res.get_json()['dataset']['key']}").get_json()


def test_a_build_awaited_over_socketio_gives_a_verified_folder_that_tf_data_reads(server, tokens, pets, tmp_path,
                                                                                   capsys):
    sdk = Loopline(server.url, tokens["alice"], poll_interval=60)  # only an event can end the wait in time
    folder = get(sdk, pets, tmp_path, seed=1)
    assert sdk.waited_with == "socketio"
    dataset = sdk.dataset(folder.name)
    assert dataset["status"] == "ready" and dataset["downloads"] == 1
    assert folder == tmp_path / dataset["key"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [dataset["key"]]  # no .part, no temporary folder
    assert verify_folder(folder, dataset["manifest"]["files"])["records"] == {"train": 12, "validation": 0}
    err = capsys.readouterr().err
    assert "100%" in err and "kB" in err  # tqdm's bar

    assert label_names(folder) == ["cat", "dog"]
    records = list(load_dataset(folder).as_numpy_iterator())
    assert len(records) == 12
    originals = 0
    for r in records:
        assert r["image"].dtype == np.uint8 and r["image"].shape == (r["height"], r["width"], 3)
        assert max(r["width"], r["height"]) == 64
        assert r["boxes"].dtype == np.float32 and r["boxes"].shape == (2, 4)
        assert ((r["boxes"] >= 0) & (r["boxes"] <= 1)).all()
        assert (r["boxes"][:, 0] < r["boxes"][:, 2]).all() and (r["boxes"][:, 1] < r["boxes"][:, 3]).all()
        texts = [t.decode() for t in r["texts"]]
        assert list(r["labels"]) == [label_names(folder).index(t) + 1 for t in texts]
        image, variation = r["source_id"].decode().split(":")
        if variation == "v0":  # only resized: the boxes are the drawn ones, in ymin, xmin, ymax, xmax order
            originals += 1
            expected = {c: [y / H, x / W, (y + h) / H, (x + w) / W] for c, x, y, w, h in pets["truth"][int(image)]}
            assert np.allclose(r["boxes"], [expected[t] for t in texts], atol=1e-3)
    assert originals == 6
    assert list(load_dataset(folder, "validation").as_numpy_iterator()) == []
    encoded = next(load_dataset(folder, decode=False).as_numpy_iterator())["image"]
    assert isinstance(encoded, bytes) and encoded[:2] == b"\xff\xd8"  # the JPEG itself


def test_a_second_request_reuses_the_folder_and_a_damaged_one_is_fetched_again(sdk, pets, tmp_path):
    folder = get(sdk, pets, tmp_path, seed=2, progress=False)
    downloads = sdk.dataset(folder.name)["downloads"]
    assert get(sdk, pets, tmp_path, seed=2, progress=False) == folder
    assert sdk.dataset(folder.name)["downloads"] == downloads  # served from the disk

    shard = next((folder / "data").glob("train-*.tfrecord"))
    good = shard.read_bytes()
    shard.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert get(sdk, pets, tmp_path, seed=2, progress=False) == folder
    assert shard.read_bytes() == good
    assert sdk.dataset(folder.name)["downloads"] == downloads + 1


def test_an_interrupted_download_resumes_from_where_it_stopped(sdk, alice, pets, tmp_path):
    dataset = built(alice, pets, seed=3)
    key, size = dataset["key"], dataset["size_bytes"]
    half = size // 2
    head = requests.get(f"{sdk.url}/api/datasets/{key}/archive", headers={
        "Authorization": sdk.http.headers["Authorization"], "Range": f"bytes=0-{half - 1}"}, timeout=30)
    assert head.status_code == 206 and len(head.content) == half
    (tmp_path / f"{key}.zip.part").write_bytes(head.content)
    before = sdk.dataset(key)

    folder = sdk.request_dataset(pets["pid"], "pets", "detection@1", pets["lm"], dest=tmp_path, progress=False,
                                 config={"size": 64, "variations": 2, "validation_fraction": 0.0, "seed": 3})
    after = sdk.dataset(key)
    assert folder == tmp_path / key and verify_folder(folder, dataset["manifest"]["files"])
    assert after["bytes_served"] - before["bytes_served"] == size - half  # one 206 for the rest only
    assert after["downloads"] == before["downloads"]  # a full (200) download would count
    assert not (tmp_path / f"{key}.zip.part").exists()

    # a .part of some other file (If-Range names another ETag): the server sends it all, the client starts over
    shutil.rmtree(folder)
    (tmp_path / f"{key}.zip.part").write_bytes(b"\0" * half)
    assert sdk.fetch({**after, "sha256": "0" * 64}, tmp_path, progress=False) == folder
    assert sdk.dataset(key)["downloads"] == after["downloads"] + 1 and verify_folder(folder)


def test_a_corrupted_partial_download_ends_in_checksum_mismatch_and_no_folder(sdk, alice, pets, tmp_path):
    dataset = built(alice, pets, seed=4)
    key = dataset["key"]
    (tmp_path / f"{key}.zip.part").write_bytes(b"\0" * (dataset["size_bytes"] // 2))
    with pytest.raises(ChecksumMismatch, match=key):
        get(sdk, pets, tmp_path, seed=4, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor the bad .part
    folder = get(sdk, pets, tmp_path, seed=4, progress=False)  # the next try starts over and succeeds
    assert verify_folder(folder, dataset["manifest"]["files"])["key"] == key


def test_a_bad_config_is_refused_with_the_server_message_and_fields(sdk, pets, tmp_path):
    with pytest.raises(LooplineError) as caught:
        sdk.request_dataset(pets["pid"], "pets", "detection@1", pets["lm"], dest=tmp_path,
                            config={"variations": 0, "colour": "red"})
    err = caught.value
    assert err.status == 400 and err.code == "invalid_config"
    assert set(err.fields) == {"config.variations", "config.colour"}
    assert "variations" in err.message and "invalid config" in str(err)
    with pytest.raises(LooplineError) as caught:
        sdk.request_dataset(pets["pid"], "pets", "segmentation@1", pets["lm"], dest=tmp_path)
    assert caught.value.status == 400 and "detection@1" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_without_socketio_the_wait_falls_back_to_polling(server, tokens, pets, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the socket cannot connect at all
    sdk = Loopline(server.url, tokens["alice"], poll_interval=0.3, socketio_url=closed)
    folder = get(sdk, pets, tmp_path, seed=5, progress=False)
    assert sdk.waited_with == "polling"
    assert verify_folder(folder)["key"] == folder.name


def test_the_cli_prints_the_folder_and_reports_errors_in_one_line(server, tokens, pets, tmp_path, capsys,
                                                                   monkeypatch):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"size": 64, "variations": 1, "seed": 6}))
    out = tmp_path / "out"
    args = ["dataset", "get", "--project", str(pets["pid"]), "--name", "pets", "--label-map", str(pets["lm"]),
            "--out", str(out)]
    env = {"PATH": "/usr/bin:/bin", "LOOPLINE_TOKEN": tokens["alice"], "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run([str(ROOT / ".venv/bin/lloop"), "--url", server.url, *args, "--config", f"@{config}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip())
    assert proc.stdout == f"{folder}\n" and folder.parent == out and verify_folder(folder)["config"]["seed"] == 6
    assert "build" in proc.stderr or "100%" in proc.stderr

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LOOPLINE_URL", raising=False)
    monkeypatch.delenv("LOOPLINE_TOKEN", raising=False)
    capsys.readouterr()
    base = ["--url", server.url, "--token", tokens["alice"]]
    inline = json.dumps({"seed": 6, "variations": 1, "size": 64})
    assert run([*base, *args, "--config", inline, "--quiet"]) == 0
    again = capsys.readouterr()
    assert again.out == f"{folder}\n" and again.err == ""

    assert run([*base, *args, "--config", '{"variations": 0}']) == 5  # the server refused it: 400
    bad = capsys.readouterr()
    assert bad.out == "" and len(bad.err.strip().splitlines()) == 1 and "config.variations" in bad.err
    for wrong, says in (("{not json", "not valid JSON"), ("[1]", "JSON object"), ("@/nonexistent.json", "cannot read")):
        assert run([*base, *args, "--config", wrong]) == 2  # a usage error, said once
        err = capsys.readouterr().err
        assert says in err and err.count(says) == 1 and "Invalid value for '--config'" in err
    assert run(["--url", server.url, "--token", "ll_wrong", *args]) == 3
    refused = capsys.readouterr().err
    assert "401" in refused and len(refused.strip().splitlines()) == 1


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/absolute.txt", "data/../../escaped.txt", "C:/x.txt",
                                    "link"])
def test_an_archive_member_outside_the_folder_is_refused_before_anything_is_written(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"files": {}}))
        info = zipfile.ZipInfo(member)
        if member == "link":
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if member == "link" else "x")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive):
        _unpack(archive, dest / "key", {})
    assert list(dest.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_the_client_imports_nothing_of_the_server_nor_tensorflow_until_asked():
    code = ("import sys, loopline_client, loopline_client.cli, loopline_client.tfdata; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'api', 'workers', 'store', 'handlers', 'models', 'tensorflow'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "[]", out.stderr
