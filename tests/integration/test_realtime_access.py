"""Socket.IO access follows the catalog live: a removed member, a revoked token and a deleted project
lose their rooms at once, in every API process (two gunicorn servers here, sockets on both).

Absence is proven by order, not by waiting: Redis delivers a channel's messages in order, so once a
socket has received a later "fence" event sent to a room it keeps (its own `user:<id>`), it would
already have received any earlier event of the rooms it should have left."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
import requests
import socketio

from api.live_access import user_room
from store.accounts import issue_token
from store.schema import User
from tests.conftest import unique
from tests.support.procs import ROOT, Server, settings_env
from tests.support.sio import Listener
from tests.support.waiting import wait_until
from tests.integration.test_jobs import _submit_wait


@pytest.fixture(scope="module")
def replica(settings, catalog, tokens, tmp_path_factory):
    """A second API server on the same Redis and catalog, as another replica would be."""
    srv = Server(settings, tmp_path_factory.mktemp("replica"))
    yield srv
    srv.stop()


def _http(server, token, method, path, **kw):
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw)


def _listen(server, token, *rooms) -> Listener:
    listener = Listener(server.url, token)
    for room in rooms:
        assert listener.join(**room)["ok"], room
    return listener


def _mark(runtime, rooms, project_id=None) -> str:
    """Emit a marker `job` event to `rooms` from this process (another emitter than the API and workers)."""
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    runtime.events.emit("job", {"id": marker, "status": "marker", "project_id": project_id}, rooms)
    return marker


def _fence(runtime, listeners_by_user: dict[int, list[Listener]]) -> None:
    """Wait until every listener has received an event sent after everything emitted before."""
    for user_id, listeners in listeners_by_user.items():
        marker = _mark(runtime, [user_room(user_id)])
        for listener in listeners:
            listener.wait_for(marker, "marker", timeout=15)


def _ids(listener: Listener) -> set[str]:
    return {e["id"] for e in listener.events}


def _user_id(sql, name: str) -> int:
    return sql("SELECT id FROM users WHERE name = :n", n=name)[0][0]


def test_a_removed_member_receives_no_further_event_of_the_project(app, project, server, replica, workers, tokens,
                                                                    runtime, redis_client, sql):
    """bob (removed) and carol (kept) listen on both servers; over 2 s of real worker events after the
    removal carol receives every one of them and bob none, neither by the project room nor the job room."""
    pid, alice = project["id"], tokens["alice"]
    job_id, release = _submit_wait(app, pid, "deployment", _user_id(sql, "alice"))
    rooms = ({"project": pid}, {"job": job_id})
    bob = [_listen(server, tokens["bob"], *rooms), _listen(replica, tokens["bob"], *rooms)]
    carol = [_listen(server, tokens["carol"], rooms[0]), _listen(replica, tokens["carol"], rooms[0])]
    try:
        for listener in bob + carol:
            listener.wait_for(job_id, "running")  # bob hears the project while a member

        assert _http(server, alice, "DELETE", f"/api/projects/{pid}/members/bob").status_code == 204
        removed_at = [len(listener.events) for listener in carol]
        after = [_mark(runtime, [f"project:{pid}", f"job:{job_id}"], pid)]
        start = time.monotonic()
        while time.monotonic() - start < 2.0:  # 2 s of activity: the running job's progress, and probes
            probe = _http(server, alice, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": pid})
            assert probe.status_code == 202, probe.text
            after.append(probe.json()["id"])
            time.sleep(0.4)
        redis_client.set(release, "1")
        for listener in carol:
            for probe_id in after[1:]:
                listener.wait_for(probe_id, "succeeded")
            listener.wait_for(job_id, "succeeded")
        after.append(_mark(runtime, [f"project:{pid}", f"job:{job_id}"], pid))
        for listener in carol:
            listener.wait_for(after[-1], "marker")
        _fence(runtime, {_user_id(sql, "bob"): bob})

        for listener, mark in zip(carol, removed_at):
            assert set(after) <= _ids(listener)
            assert any(e["id"] == job_id and e["status"] == "running" for e in listener.events[mark:])
        for listener in bob:
            assert not set(after) & _ids(listener), "a removed member got an event sent after the removal"
            assert "succeeded" not in listener.statuses(job_id)
            assert listener.join(project=pid)["ok"] is False and listener.join(job=job_id)["ok"] is False
    finally:
        redis_client.set(release, "1")
        for listener in bob + carol:
            listener.close()


def test_a_revoked_token_disconnects_its_sockets(settings, project, server, replica, tokens, runtime, sql):
    """Revoked with the CLI (a process without any Socket.IO server): both sockets of that token are
    disconnected, the same user's socket on another token keeps its rooms."""
    pid, bob_id = project["id"], _user_id(sql, "bob")
    with runtime.sessions() as session:
        laptop = issue_token(session, session.get(User, bob_id), "laptop")
        session.commit()
    revoked = [_listen(server, laptop, {"project": pid}), _listen(replica, laptop, {"project": pid})]
    kept = _listen(replica, tokens["bob"], {"project": pid})
    try:
        done = subprocess.run([sys.executable, "-m", "api.cli", "token", "revoke", laptop[:10]], cwd=ROOT,
                              env=settings_env(settings), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == "revoked", done.stderr
        for listener in revoked:
            wait_until(lambda: not listener.sio.connected, 15, "the revoked token's socket is disconnected")
        kept.wait_for(_mark(runtime, [f"project:{pid}"], pid), "marker")
        with pytest.raises(socketio.exceptions.ConnectionError):
            Listener(server.url, laptop)
    finally:
        for listener in revoked + [kept]:
            listener.close()


def test_nobody_stays_in_a_deleted_projects_rooms(server, replica, workers, tokens, runtime, sql):
    """Members and a superuser, on both servers, in the project's room and in one of its job rooms."""
    alice, bob, root = tokens["alice"], tokens["bob"], tokens["root"]
    pid = _http(server, alice, "POST", "/api/projects", json={"name": unique("doomed")}).json()["id"]
    assert _http(server, alice, "PUT", f"/api/projects/{pid}/members/bob", json={"role": "viewer"}).status_code == 200
    job = _http(server, alice, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": pid}).json()
    wait_until(lambda: _http(server, alice, "GET", f"/api/jobs/{job['id']}").json()["status"] == "succeeded", 30,
               "the probe ends (a project with unfinished jobs is not deleted)")
    rooms = ({"project": pid}, {"job": job["id"]})
    by_user = {
        _user_id(sql, "alice"): [_listen(server, alice, *rooms)],
        _user_id(sql, "bob"): [_listen(replica, bob, *rooms)],
        _user_id(sql, "root"): [_listen(server, root, rooms[0]), _listen(replica, root, rooms[0])],
    }
    everyone = [listener for listeners in by_user.values() for listener in listeners]
    try:
        before = _mark(runtime, [f"project:{pid}", f"job:{job['id']}"], pid)
        for listener in everyone:
            listener.wait_for(before, "marker")  # all of them are in the rooms

        assert _http(server, alice, "DELETE", f"/api/projects/{pid}").status_code == 204
        after = _mark(runtime, [f"project:{pid}", f"job:{job['id']}"], pid)
        _fence(runtime, by_user)
        for listener in everyone:
            assert after not in _ids(listener), "a socket stayed in a deleted project's room"
            assert listener.join(project=pid)["ok"] is False
    finally:
        for listener in everyone:
            listener.close()
