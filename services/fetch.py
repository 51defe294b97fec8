"""Download a user-supplied URL without letting the user aim our workers at internal services (SSRF).

The address check happens where the socket is opened: `_GuardedConnection._new_conn` resolves the
host itself, refuses if any answer is not public (or in `allow_networks`), and connects to exactly
the vetted sockaddr, so a second DNS answer (rebinding) never gets used. The Host header, TLS SNI and
certificate check still use the hostname, because urllib3 takes those from `conn.host`, not from the
socket. Redirects are followed here, one checked hop at a time. A watchdog shuts the sockets down at
the deadline, so a server dripping bytes cannot outlast the overall time limit.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.poolmanager import PoolManager

__all__ = ["FetchPolicy", "FetchRefused", "Fetched", "check_url", "fetch", "fetch_name"]

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; not is_private on Python 3.11
_KINDS = (("unspecified", "is_unspecified"), ("loopback", "is_loopback"), ("link-local", "is_link_local"),
          ("multicast", "is_multicast"), ("private", "is_private"), ("reserved", "is_reserved"),
          ("site-local", "is_site_local"))
_REDIRECTS = (301, 302, 303, 307, 308)


class FetchRefused(ValueError):
    """The URL may not or could not be fetched; `reason` is a short code, str(exc) a sentence for people."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 20.0  # seconds for the whole fetch, redirects included
    max_redirects: int = 5
    allow_networks: tuple[str, ...] = ()  # CIDRs allowed despite not being global, e.g. ("127.0.0.2/32",)
    # origins ("http://localhost:8080") whose host may resolve to any address: one named service the operator
    # connected on purpose (a Label Studio instance), never a network
    allow_origins: tuple[str, ...] = ()
    user_agent: str = "loopline-fetch/1"

    def __post_init__(self) -> None:  # a bad policy is a configuration error: fail when it is made
        if self.max_bytes < 0 or self.timeout <= 0 or self.max_redirects < 0:
            raise ValueError("FetchPolicy needs max_bytes >= 0, timeout > 0 and max_redirects >= 0")
        self.networks()
        self.origins()

    def origins(self) -> frozenset[tuple[str, str, int]]:
        return frozenset(filter(None, (origin_of(o) for o in self.allow_origins)))

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allow_networks)


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL after redirects
    data: bytes
    content_type: str | None


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed=()) -> str | None:
    """Why `ip` may not be dialled, or None. Public (`is_global`) addresses pass, and so does anything in
    `allowed`; the explicit kinds catch what Python 3.11's `is_global` lets through (multicast, 6to4)."""
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:a.b.c.d reaches a.b.c.d
        why = address_problem(ip.ipv4_mapped, allowed)
        return why and f"{why} (IPv4-mapped {ip.ipv4_mapped})"
    if any(ip in net for net in allowed):
        return None
    inner = ip.sixtofour if ip.version == 6 else None
    if inner is not None and (why := address_problem(inner)):
        return f"{why} (6to4 for {inner})"
    for why, attr in _KINDS:
        if getattr(ip, attr, False):
            return why
    if ip in _SHARED:
        return "shared address space (100.64.0.0/10)"
    return None if ip.is_global else "not globally routable"


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port filled in; None when it is not one."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port or (443 if scheme == "https" else 80)


def check_url(url: str, policy: FetchPolicy) -> None:
    """Cheap syntactic check, no DNS: http(s), a host, no credentials, and no refused IP literal.
    The API calls it to answer 400 at request time; `fetch` still checks every address it dials."""
    if not isinstance(url, str) or not url or len(url) > 8192 or re.search(r"[\x00-\x20\x7f]", url):
        raise FetchRefused("bad_url", "not a URL")
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise FetchRefused("bad_url", f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise FetchRefused("bad_url", f"not an absolute http(s) URL: {url[:100]}")
    if scheme not in ("http", "https"):
        raise FetchRefused("scheme", f"only http and https URLs can be fetched, not {scheme}:")
    if not host:
        raise FetchRefused("bad_url", "the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("bad_url", "URLs with credentials are not fetched")
    if origin_of(url) in policy.origins():
        return
    try:
        why = address_problem(ipaddress.ip_address(host.split("%")[0]), policy.networks())
    except ValueError:  # a name, judged when it is resolved
        return
    if why:
        raise FetchRefused("address", f"{host} is {why}")


class _Guard:
    """Per-fetch state the connections share: which networks are allowed, the deadline, and the open
    sockets, which `expire` shuts down (that wakes a blocked read, where closing would not). Sockets,
    not connections: http.client drops `conn.sock` while a close-delimited body is still being read."""

    def __init__(self, policy: FetchPolicy):
        self.allowed = policy.networks()
        self.origins = policy.origins()
        self.deadline = time.monotonic() + policy.timeout
        self.expired = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.expired.is_set():
            raise FetchRefused("timeout", "the fetch took longer than its time limit")
        return left

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
        if self.expired.is_set():
            self.expire()

    def expire(self) -> None:
        with self._lock:
            self.expired.set()
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:  # already closed, or detached into its TLS wrapper
                    pass

    def resolve(self, host: str, port: int) -> list[tuple]:
        """getaddrinfo in a helper thread, so a slow resolver cannot outlast the deadline."""
        box: dict = {}

        def run() -> None:
            try:
                box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as exc:
                box["error"] = exc

        worker = threading.Thread(target=run, daemon=True, name="fetch-resolve")
        worker.start()
        worker.join(self.remaining())
        if "infos" in box:
            return box["infos"]
        if "error" in box:
            raise FetchRefused("unresolvable", f"cannot resolve {host}: {box['error']}")
        raise FetchRefused("timeout", f"resolving {host} took longer than the time limit")


class _GuardedConnection(HTTPConnection):
    """Opens its socket only to addresses the guard has vetted: every DNS answer must pass."""

    def __init__(self, *args, guard: _Guard, **kwargs):
        self._guard = guard
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        guard, host = self._guard, self._dns_host.strip("[]")
        infos = guard.resolve(host, self.port)
        scheme = "https" if isinstance(self, HTTPSConnection) else "http"
        for *_, sockaddr in infos if (scheme, host.lower(), self.port) not in guard.origins else ():
            ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
            if why := address_problem(ip, guard.allowed):
                named = "" if str(ip) == host else f" ({host} resolves to it)"
                raise FetchRefused("address", f"{ip} is {why}{named}")
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                limit = self.timeout if isinstance(self.timeout, (int, float)) else None
                sock.settimeout(min(limit or guard.remaining(), guard.remaining()))
                sock.connect(sockaddr)  # the vetted address itself, never a fresh lookup
                guard.track(sock)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        if isinstance(error, TimeoutError) or guard.expired.is_set():
            raise FetchRefused("timeout", f"connecting to {host} timed out")
        raise FetchRefused("connection", f"cannot connect to {host}: {error}")

    def connect(self) -> None:
        super().connect()
        self._guard.track(self.sock)  # the TLS wrapper, where there is one


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _GuardedPoolManager(PoolManager):
    """Hands every pool the guarded connection classes and this fetch's guard."""

    def __init__(self, guard: _Guard):
        super().__init__()
        self._guard = guard

    def _new_pool(self, scheme, host, port, request_context=None):
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = _GuardedHTTPSConnection if scheme == "https" else _GuardedConnection
        pool.conn_kw = {**pool.conn_kw, "guard": self._guard}
        return pool


def fetch(url: str, policy: FetchPolicy = FetchPolicy(), credentials: tuple[str, dict] | None = None) -> Fetched:
    """GET `url` under `policy`; return the body of the final 2xx response or raise FetchRefused.
    `credentials` = (origin, headers): headers sent only to that origin, on every hop that goes there and on
    no other (a redirect elsewhere never carries them). The adapter is used without a Session: no proxies or netrc from the environment, no cookies, and
    no automatic redirects (a Session would read a whole redirect body into memory)."""
    guard = _Guard(policy)
    adapter = HTTPAdapter(max_retries=0)
    adapter.poolmanager = _GuardedPoolManager(guard)  # replaces the plain one, still unused
    watchdog = threading.Timer(policy.timeout, guard.expire)
    watchdog.daemon = True
    watchdog.start()
    headers = {"User-Agent": policy.user_agent, "Accept": "*/*", "Accept-Encoding": "identity"}
    secret_origin = origin_of(credentials[0]) if credentials else None
    try:
        for _ in range(policy.max_redirects + 1):
            check_url(url, policy)
            sent = {**headers, **credentials[1]} if secret_origin and origin_of(url) == secret_origin else headers
            try:
                request = requests.Request("GET", url, headers=sent).prepare()
                left = guard.remaining()
                resp = adapter.send(request, stream=True, timeout=(left, left), verify=True, proxies={})
                with resp:
                    if resp.status_code in _REDIRECTS and "location" in resp.headers:
                        location = resp.headers["location"].encode("latin1").decode("utf8", "replace")
                        url = urljoin(url, location)
                        continue
                    if not 200 <= resp.status_code < 300:
                        status = f"{resp.status_code} {resp.reason or ''}".strip()
                        raise FetchRefused("http_status", f"{url} answered HTTP {status}")
                    data = _read_body(resp, policy, guard)
                    return Fetched(resp.url, data, resp.headers.get("content-type"))
            except requests.RequestException as exc:
                raise _refusal(exc, url, guard) from None
        raise FetchRefused("too_many_redirects", f"more than {policy.max_redirects} redirects")
    finally:
        watchdog.cancel()
        adapter.close()


def _read_body(resp: requests.Response, policy: FetchPolicy, guard: _Guard) -> bytes:
    """Stream the body, refusing as soon as it outgrows max_bytes (or says it will)."""
    length = resp.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > policy.max_bytes:
        raise FetchRefused("too_large", f"the body is {length} bytes, over the limit of {policy.max_bytes}")
    data = bytearray()
    for chunk in resp.iter_content(64 * 1024):
        data += chunk
        if len(data) > policy.max_bytes:
            raise FetchRefused("too_large", f"the body is over the limit of {policy.max_bytes} bytes")
    guard.remaining()  # a watchdog shutdown looks like a clean end of a body without a length
    return bytes(data)


def _refusal(exc: requests.RequestException, url: str, guard: _Guard) -> FetchRefused:
    if guard.expired.is_set() or isinstance(exc, requests.Timeout):
        return FetchRefused("timeout", f"fetching {url} took longer than the time limit")
    if isinstance(exc, ValueError):  # requests' InvalidURL, MissingSchema, InvalidSchema
        return FetchRefused("bad_url", f"not a valid URL: {url[:100]}")
    cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    cause = getattr(cause, "reason", None) or cause  # urllib3's MaxRetryError wraps what went wrong
    return FetchRefused("connection", f"fetching {url} failed: {str(cause)[:200] or type(cause).__name__}")


def fetch_name(url: str) -> str:
    """A display/file name for a URL, for job reports: the last path segment, else the host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "download"
    segments = [s for s in parts.path.split("/") if s]
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", unquote(segments[-1])).strip() if segments else ""
    if name in ("", ".", ".."):
        name = host or "download"
    return name[:255]
