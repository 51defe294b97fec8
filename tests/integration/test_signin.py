"""Dashboard sign-in: a token becomes an HttpOnly session cookie; cookie-authenticated writes need the
session's CSRF token and the server's own Origin; Socket.IO accepts the same session; sign-out and
token revocation end it on the server."""

from __future__ import annotations

import pytest
import requests
import socketio
import websocket
from sqlalchemy import update

from api.auth import SESSION_COOKIE
from store.accounts import hash_token, issue_token
from store.schema import ApiToken, User
from store.schema.base import utcnow
from tests.conftest import unique
from tests.support.sio import Listener
from tests.support.waiting import wait_until


def _sign_in(client, token, **kw):
    return client.post("/api/session", json={"token": token}, **kw)


def _cookie_header(res) -> str:
    return next(v for k, v in res.headers.items() if k == "Set-Cookie" and v.startswith(SESSION_COOKIE + "="))


def _fresh_token(runtime, user_name="alice") -> str:
    with runtime.sessions() as session:
        user = session.query(User).filter_by(name=user_name).one()
        token = issue_token(session, user, unique("browser"))
        session.commit()
    return token


def test_sign_in_sets_an_httponly_cookie_and_answers_the_csrf_token(app, tokens):
    client = app.test_client()
    res = _sign_in(client, tokens["alice"])
    assert res.status_code == 200, res.get_json()
    body = res.get_json()
    assert body["user"]["name"] == "alice" and len(body["csrf_token"]) >= 32
    cookie = _cookie_header(res)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert tokens["alice"] not in cookie and body["csrf_token"] not in cookie
    again = client.get("/api/session")
    assert again.status_code == 200 and again.get_json()["csrf_token"] == body["csrf_token"]
    assert client.get("/api/me").get_json()["user"]["name"] == "alice"


def test_over_https_the_cookie_is_secure(app, tokens):
    res = _sign_in(app.test_client(), tokens["alice"], base_url="https://localhost")
    assert res.status_code == 200 and "Secure" in _cookie_header(res)


def test_a_bad_token_signs_nobody_in(app):
    client = app.test_client()
    res = _sign_in(client, "ll_not-a-token")
    assert res.status_code == 401 and res.get_json()["error"]["fields"] == {"token": ["invalid or revoked token"]}
    assert "Set-Cookie" not in res.headers
    assert client.get("/api/session").status_code == 401
    assert _sign_in(client, "").status_code == 400


def test_signing_in_from_another_site_is_refused(app, tokens):
    res = _sign_in(app.test_client(), tokens["alice"], headers={"Origin": "https://evil.example"})
    assert res.status_code == 403 and res.get_json()["error"]["code"] == "csrf"


def test_cookie_writes_need_the_csrf_header_and_the_servers_origin(app, tokens, sql):
    client = app.test_client()
    csrf = _sign_in(client, tokens["alice"]).get_json()["csrf_token"]
    name = unique("csrf")
    attempts = [
        {},                                                                   # no header: a form post from anywhere
        {"X-CSRF-Token": "wrong"},
        {"X-CSRF-Token": csrf, "Origin": "https://evil.example"},             # the header leaked, the origin did not
        {"X-CSRF-Token": csrf, "Origin": "null"},
        {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"},
    ]
    for headers in attempts:
        res = client.post("/api/projects", json={"name": name}, headers=headers)
        assert res.status_code == 403, (headers, res.get_json())
        assert res.get_json()["error"]["code"] == "csrf"
    assert sql("SELECT id FROM projects WHERE name = :n", n=name) == []
    assert client.get("/api/projects").status_code == 200  # reads need no header
    made = client.post("/api/projects", json={"name": name}, headers={"X-CSRF-Token": csrf, "Origin": "http://localhost"})
    assert made.status_code == 201, made.get_json()
    assert client.delete(f"/api/projects/{made.get_json()['id']}", headers={"X-CSRF-Token": csrf}).status_code == 204


def test_bearer_tokens_need_no_csrf_header(alice):
    assert alice.post("/api/projects", json={"name": unique("bearer")}).status_code == 201


def test_sign_out_ends_the_session_on_the_server(app, tokens):
    client = app.test_client()
    first = _sign_in(client, tokens["alice"])
    cookie = _cookie_header(first).split(";")[0].split("=", 1)[1]
    csrf = first.get_json()["csrf_token"]
    assert client.delete("/api/session").status_code == 403  # sign-out is a write like any other
    res = client.delete("/api/session", headers={"X-CSRF-Token": csrf})
    assert res.status_code == 204
    assert f"{SESSION_COOKIE}=;" in _cookie_header(res)  # the browser forgets it
    replay = app.test_client()  # a copy of the cookie kept elsewhere is dead too
    replay.set_cookie(SESSION_COOKIE, cookie)
    res = replay.get("/api/me")
    assert res.status_code == 401 and "session has ended" in res.get_json()["error"]["message"]


def test_revoking_the_token_ends_its_sessions(app, runtime):
    token = _fresh_token(runtime)
    client = app.test_client()
    assert _sign_in(client, token).status_code == 200
    with runtime.sessions() as session:
        session.execute(update(ApiToken).where(ApiToken.token_hash == hash_token(token)).values(revoked_at=utcnow()))
        session.commit()
    assert client.get("/api/me").status_code == 401


def test_the_route_is_the_dashboards(alice):
    res = alice.get("/api/session")  # a bearer client has no session to show
    assert res.status_code == 401 and "session cookie" in res.get_json()["error"]["message"]


def _http_sign_in(server, token) -> tuple[requests.Session, str]:
    browser = requests.Session()
    res = browser.post(server.url + "/api/session", json={"token": token}, timeout=10)
    assert res.status_code == 200, res.text
    return browser, res.json()["csrf_token"]


def _cookie_socket(server, cookie: str) -> socketio.Client:
    """The client sends its own Origin (the server's), as a page of the dashboard does."""
    sio = socketio.Client(reconnection=False)
    sio.connect(server.url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, transports=["websocket"], wait_timeout=10)
    return sio


def _raw_connect(server, cookie: str, origin: str) -> str:
    """Engine.IO over a bare websocket with a chosen Origin: the answer to the namespace connect packet."""
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                                     cookie=f"{SESSION_COOKIE}={cookie}", origin=origin, timeout=10)
    try:
        assert ws.recv().startswith("0")  # engine.io open
        ws.send("40")                      # socket.io connect to "/"
        return ws.recv()
    finally:
        ws.close()


def test_socketio_accepts_the_session_and_sign_out_closes_it(server, runtime, project, tokens):
    browser, csrf = _http_sign_in(server, tokens["alice"])
    cookie = browser.cookies[SESSION_COOKIE]
    sio = _cookie_socket(server, cookie)
    try:
        assert sio.call("join", {"project": project["id"]}, timeout=5)["ok"]
        res = browser.delete(server.url + "/api/session", headers={"X-CSRF-Token": csrf, "Origin": server.url}, timeout=10)
        assert res.status_code == 204
        wait_until(lambda: not sio.connected, 15, "the signed-out session's socket is disconnected")
        with pytest.raises(socketio.exceptions.ConnectionError):
            _cookie_socket(server, cookie)
    finally:
        sio.disconnect()


def test_socketio_refuses_a_cookie_from_another_origin(server, tokens):
    browser, _ = _http_sign_in(server, tokens["alice"])
    cookie = browser.cookies[SESSION_COOKIE]
    assert _raw_connect(server, cookie, server.url).startswith("40{")
    refused = _raw_connect(server, cookie, "https://evil.example")
    assert refused.startswith("44") and "may not connect with the session cookie" in refused
    Listener(server.url, tokens["alice"]).close()  # a token from anywhere still connects
