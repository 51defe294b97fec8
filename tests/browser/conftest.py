"""Browser tests: Playwright driving Debian's Chromium against the real server (gunicorn serving the
built dashboard from api/static) and the real worker pools. Every page gets a guard: a request to any
host but the server under test fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "api" / "static"
CHROMIUM = os.environ.get("LOOPLINE_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "docs"


def _sources_newer_than_build() -> bool:
    index = STATIC / "index.html"
    if not index.exists():
        return True
    built = index.stat().st_mtime
    web = ROOT / "web"
    sources = [*web.joinpath("src").rglob("*"), web / "index.html", web / "vite.config.ts", web / "package-lock.json"]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


@pytest.fixture(scope="session")
def bundle():
    """The built dashboard the server serves; built here when missing or older than its sources."""
    if _sources_newer_than_build():
        if not (ROOT / "web" / "node_modules").exists():
            pytest.fail("the dashboard is not built and web/node_modules is missing: run `cd web && npm ci && npm run build`")
        subprocess.run(["npm", "run", "build"], cwd=ROOT / "web", check=True, capture_output=True)
    return STATIC


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set LOOPLINE_TEST_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
        yield b
        b.close()


class Guard:
    """Every request the page makes, and those that went to another host than the server."""

    def __init__(self, origin: str):
        self.origin = origin
        self.netloc = urlsplit(origin).netloc
        self.foreign: list[str] = []
        self.errors: list[str] = []

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob", "about") or parts.netloc == self.netloc

    def check(self) -> None:
        assert not self.foreign, f"requests to other hosts than {self.origin}: {self.foreign}"


@pytest.fixture()
def web(bundle, browser, server, workers):
    """A fresh browser context on the server under test (no cookies), with the foreign-host guard."""
    guard = Guard(server.url)
    context = browser.new_context(base_url=server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)

    def route(r):
        if guard.allowed(r.request.url):
            r.continue_()
        else:
            guard.foreign.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    context.on("request", lambda req: None if guard.allowed(req.url) else guard.foreign.append(req.url))
    page = context.new_page()
    page.on("pageerror", lambda exc: guard.errors.append(str(exc)))
    page.on("websocket", lambda ws: None if guard.allowed(
        ws.url.replace("ws://", "http://").replace("wss://", "https://")) else guard.foreign.append(ws.url))
    yield Web(page, context, guard, server.url)
    context.close()
    guard.check()
    assert not guard.errors, f"errors in the page: {guard.errors}"


class Web:
    def __init__(self, page, context, guard, url):
        self.page, self.context, self.guard, self.url = page, context, guard, url

    def sign_in(self, token: str, then: str | None = None):
        page = self.page
        self.context.clear_cookies()  # whoever was signed in here before
        page.goto("/")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=user]")
        if then:
            page.goto(then)
        return page

    def shot(self, name: str) -> Path:
        """A screenshot: into docs/ when LOOPLINE_SCREENSHOTS=1 (to refresh the README's), else the test log."""
        folder = SHOTS if os.environ.get("LOOPLINE_SCREENSHOTS") == "1" else Path(os.environ.get("TMPDIR", "/tmp")) / "loopline-shots"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"dashboard-{name}.png"
        self.page.evaluate("() => window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        return path
