"""services.fetch against real local servers: an allowed image server on 127.0.0.2 (in allow_networks)
and "tripwire" listeners on 127.0.0.1 that must never see a connection. A non-blocking accept() on the
tripwire tells deterministically whether anything connected, since a finished TCP handshake waits
in the listen backlog."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from services.fetch import FetchPolicy, FetchRefused, check_url, fetch, fetch_name

ALLOWED = "127.0.0.2"
POLICY = FetchPolicy(timeout=3.0, allow_networks=(f"{ALLOWED}/32",))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
_real_getaddrinfo = socket.getaddrinfo


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.paths.append(self.path)
        path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
        release = self.server.release
        if path == "/img":
            self._send(200, PNG, [("Content-Type", "image/png")])
        elif path == "/host":
            self._send(200, self.headers["Host"].encode(), [("Content-Type", "text/plain")])
        elif path == "/redirect":
            self._send(302, headers=[("Location", query["to"][0])])
        elif path == "/rel":
            self._send(302, headers=[("Location", "img")])
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            self._send(302, headers=[("Location", f"/chain/{left - 1}")]) if left else self._send(200, b"end")
        elif path == "/big-length":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"x" * 10)
            release.wait(5)
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(1000):
                if release.is_set():
                    break
                self.wfile.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/big-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"z" * 100_000)
            self.close_connection = True
        elif path == "/stall":
            release.wait(5)
            self._send(200, b"late")
        elif path == "/drip":  # each byte well within any read timeout; only a deadline stops it
            self.send_response(200)
            self.send_header(*(("Connection", "close") if "close" in query else ("Content-Length", "100")))
            self.end_headers()
            for _ in range(100):
                if release.wait(0.2):
                    break
                self.wfile.write(b".")
                self.wfile.flush()
        else:
            self._send(404, b"no such thing")


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer((ALLOWED, 0), _Handler)
    srv.paths, srv.release = [], threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://{ALLOWED}:{srv.server_address[1]}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


class Tripwire:
    """A listener that must stay untouched: a finished handshake would wait in its backlog."""

    def __init__(self, host="127.0.0.1", port=0):
        self.sock = socket.create_server((host, port))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def untouched(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return True
        conn.close()
        return False


@pytest.fixture
def tripwire():
    wire = Tripwire()
    yield wire
    wire.sock.close()


def _fake_dns(monkeypatch, table):
    """Names in `table` resolve to the listed addresses (a list, or a callable giving one per lookup)."""
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        answer = table[host]() if callable(table[host]) else table[host]
        return [info for ip in answer for info in _real_getaddrinfo(ip, port, *args, **kwargs)]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _refused(url, policy=POLICY) -> FetchRefused:
    with pytest.raises(FetchRefused) as info:
        fetch(url, policy)
    return info.value


def test_good_fetch_returns_bytes_and_type(server):
    got = fetch(f"{server.base}/img", POLICY)
    assert (got.data, got.content_type, got.url) == (PNG, "image/png", f"{server.base}/img")


def test_connects_to_the_vetted_address_and_keeps_the_hostname(server, monkeypatch):
    port = server.server_address[1]
    try:
        rebound = Tripwire("127.0.0.1", port)  # where a second lookup would now send us
    except OSError:
        pytest.skip("port taken on 127.0.0.1")
    answers = iter([[ALLOWED]])
    _fake_dns(monkeypatch, {"images.test": lambda: next(answers, ["127.0.0.1"])})
    with rebound.sock:
        got = fetch(f"http://images.test:{port}/host", POLICY)
        assert got.data == f"images.test:{port}".encode()
        assert rebound.untouched()


def test_any_disallowed_answer_refuses(server, monkeypatch, tripwire):
    _fake_dns(monkeypatch, {"mixed.test": [ALLOWED, "127.0.0.1"], "meta.test": ["169.254.169.254"]})
    exc = _refused(f"http://mixed.test:{tripwire.port}/")
    assert exc.reason == "address" and "127.0.0.1 is loopback" in str(exc)
    started = time.monotonic()
    assert _refused("http://meta.test/latest/meta-data/").reason == "address"
    assert time.monotonic() - started < 0.5
    assert tripwire.untouched()


def test_loopback_server_gets_no_connection(tripwire):
    exc = _refused(f"http://127.0.0.1:{tripwire.port}/")
    assert exc.reason == "address" and "127.0.0.1 is loopback" in str(exc)
    assert tripwire.untouched()


def test_metadata_address_refused_without_connecting():
    started = time.monotonic()
    exc = _refused("http://169.254.169.254/latest/meta-data/", FetchPolicy(timeout=5))
    assert exc.reason == "address" and "169.254.169.254 is link-local" in str(exc)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("target", [
    "http://[::1]:{port}/", "http://0.0.0.0:{port}/", "http://10.0.0.1/", "http://localhost:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/", "http://[::ffff:7f00:1]:{port}/", "http://127.1:{port}/",
    "http://2130706433:{port}/", "http://100.64.0.1/", "http://224.0.0.1/", "http://[fe80::1]/",
    "http://[fc00::1]/", "http://[2002:7f00:1::]/", "http://[::]:{port}/", "http://192.168.1.1/",
])
def test_internal_addresses_refused(tripwire, target):
    started = time.monotonic()
    exc = _refused(target.format(port=tripwire.port))
    assert exc.reason == "address", str(exc)
    assert time.monotonic() - started < 0.5
    assert tripwire.untouched()


def test_check_url_refuses_literals_but_does_no_dns():
    with pytest.raises(FetchRefused, match="127.0.0.1 is loopback"):
        check_url("http://127.0.0.1/x", POLICY)
    check_url("http://localhost.invalid/x", POLICY)  # names are only judged when fetched
    check_url(f"http://{ALLOWED}/x", POLICY)


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/", "http://localhost:{port}/",
                                    "http://169.254.169.254/latest/meta-data/"])
def test_redirect_to_internal_address_refused(server, tripwire, target):
    started = time.monotonic()
    exc = _refused(f"{server.base}/redirect?to={target.format(port=tripwire.port)}")
    assert exc.reason == "address"
    assert time.monotonic() - started < 0.5
    assert tripwire.untouched()


def test_redirect_limits_and_relative_redirects(server):
    policy = FetchPolicy(timeout=3.0, max_redirects=2, allow_networks=POLICY.allow_networks)
    assert fetch(f"{server.base}/chain/2", policy).data == b"end"
    assert _refused(f"{server.base}/chain/3", policy).reason == "too_many_redirects"
    got = fetch(f"{server.base}/rel", POLICY)
    assert (got.data, got.url) == (PNG, f"{server.base}/img")
    assert _refused(f"{server.base}/redirect?to=file:///etc/passwd").reason == "scheme"


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "scheme"), ("ftp://example.com/a.png", "scheme"), ("gopher://example.com/", "scheme"),
    ("not a url", "bad_url"), ("http:///nohost", "bad_url"), ("http://user:pw@example.com/", "bad_url"),
    ("http://[::1/", "bad_url"), ("", "bad_url"), ("//example.com/a.png", "bad_url"),
])
def test_bad_urls(url, reason):
    with pytest.raises(FetchRefused) as info:
        check_url(url, POLICY)
    assert info.value.reason == reason
    assert _refused(url).reason == reason


@pytest.mark.parametrize("path", ["/big-length", "/big-chunked", "/big-close"])
def test_body_over_the_limit_refused(server, path):
    policy = FetchPolicy(max_bytes=5000, timeout=3.0, allow_networks=POLICY.allow_networks)
    started = time.monotonic()
    assert _refused(server.base + path, policy).reason == "too_large"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("path", ["/stall", "/drip", "/drip?close=1"])
def test_overall_deadline(server, path):
    policy = FetchPolicy(timeout=0.6, allow_networks=POLICY.allow_networks)
    started = time.monotonic()
    exc = _refused(server.base + path, policy)
    assert exc.reason == "timeout", str(exc)
    assert time.monotonic() - started < 0.6 + 1.0


def test_non_2xx_refused_with_status(server):
    exc = _refused(f"{server.base}/missing")
    assert exc.reason == "http_status" and "404" in str(exc)


def test_unresolvable(monkeypatch):
    def nxdomain():
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    _fake_dns(monkeypatch, {"nowhere.test": nxdomain})
    exc = _refused("http://nowhere.test/a.png")
    assert exc.reason == "unresolvable" and "nowhere.test" in str(exc)


def test_tls_uses_the_hostname_for_sni_and_verifies(tmp_path, monkeypatch):
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=tls.test",
                    "-addext", "subjectAltName=DNS:tls.test"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    names = []
    ctx.sni_callback = lambda _sock, name, _ctx: names.append(name)
    listener = socket.create_server((ALLOWED, 0))

    def serve():
        conn, _ = listener.accept()
        try:
            ctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    _fake_dns(monkeypatch, {"tls.test": [ALLOWED]})
    with listener:
        exc = _refused(f"https://tls.test:{listener.getsockname()[1]}/img")
        thread.join(2)
    assert exc.reason == "connection" and "certificate" in str(exc).lower(), str(exc)
    assert names == ["tls.test"]


def test_policy_rejects_bad_networks():
    with pytest.raises(ValueError):
        FetchPolicy(allow_networks=("not-a-cidr",))


@pytest.mark.parametrize("url, name", [
    ("https://example.com/a/b/cat%20photo.jpg?x=1#y", "cat photo.jpg"), ("https://example.com/", "example.com"),
    ("https://example.com/dir/", "dir"), ("http://example.com/..%2F..%2Fetc%2Fpasswd", ".._.._etc_passwd"),
    ("https://example.com/a/..", "example.com"), ("http://[::1/", "download"),
])
def test_fetch_name(url, name):
    assert fetch_name(url) == name
