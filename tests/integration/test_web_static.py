"""The dashboard's files as the API serves them: hashed assets cached for good, `index.html` for every
route of the app (never for the API's own paths), the right types for scripts, modules, wasm and CSS."""

from __future__ import annotations

import pytest

import api.web


@pytest.fixture()
def build(tmp_path, monkeypatch):
    """A build folder shaped like Vite's output."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><div id="app"></div><script src="/assets/index-3f2a.js"></script>')
    for name, body in {"index-3f2a.js": "export {}", "worker-77aa.mjs": "export {}", "ort-9c1d.wasm": "\0asm",
                       "index-51bb.css": "body{}"}.items():
        (tmp_path / "assets" / name).write_text(body)
    (tmp_path / "favicon.svg").write_text("<svg/>")
    monkeypatch.setattr(api.web, "STATIC_DIR", tmp_path)
    return tmp_path


@pytest.mark.parametrize("name, mimetype", [
    ("index-3f2a.js", "text/javascript"), ("worker-77aa.mjs", "text/javascript"),
    ("ort-9c1d.wasm", "application/wasm"), ("index-51bb.css", "text/css"),
])
def test_assets_are_immutable_with_their_types(client, build, name, mimetype):
    res = client.get(f"/assets/{name}")
    assert res.status_code == 200 and res.mimetype == mimetype
    assert res.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert res.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/projects/3", "/projects/3/jobs?status=failed", "/jobs/0b7c/x", "/apiary"])
def test_every_route_of_the_app_is_index_html_never_cached(client, build, path):
    res = client.get(path)
    assert res.status_code == 200 and res.mimetype == "text/html"
    assert b'<div id="app">' in res.data and res.headers["Cache-Control"] == "no-cache"
    csp = res.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp  # nothing from another origin


def test_the_pages_need_no_token_but_the_data_does(anonymous, build):
    assert anonymous.get("/projects").status_code == 200
    assert anonymous.get("/api/projects").status_code == 401


def test_the_apis_own_paths_keep_their_json_errors(client, build):
    for method, path in (("GET", "/api/nothing"), ("POST", "/api/nothing"), ("GET", "/api"), ("GET", "/metrics/x")):
        res = client.open(path, method=method)
        assert res.status_code in (401, 404) and res.is_json, (method, path, res.status_code)
    assert client.get("/socket.io/?transport=x").status_code == 400  # Engine.IO's, not the page
    assert client.post("/projects").status_code == 405  # the app's routes are read-only


def test_a_missing_asset_is_a_404_not_the_page(client, build):
    res = client.get("/assets/index-0000.js")
    assert res.status_code == 404 and not res.data.startswith(b"<!doctype html>")


def test_top_level_files_of_the_build(client, build):
    res = client.get("/favicon.svg")
    assert res.status_code == 200 and res.mimetype == "image/svg+xml"
    assert client.get("/index.html").headers["Cache-Control"] == "no-cache"
    assert client.get("/../../etc/passwd").status_code in (200, 404)  # never a file outside the build
    assert b"root:" not in client.get("/../../etc/passwd").data


def test_without_a_build_the_page_says_how_to_make_it(client, tmp_path, monkeypatch):
    monkeypatch.setattr(api.web, "STATIC_DIR", tmp_path)
    res = client.get("/projects")
    assert res.status_code == 503 and b"make run" in res.data
