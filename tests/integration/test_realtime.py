"""Socket.IO through the real server (gunicorn, threaded) and the Redis message queue."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import requests
import socketio

from tests.conftest import unique
from tests.support.procs import ROOT
from tests.support.sio import Listener


def _http(server, token, method, path, **kw):
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw)


def test_connect_without_a_valid_token_is_refused(server):
    for auth in (None, {"token": "ll_wrong"}, {"token": 5}):
        client = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(server.url, auth=auth, transports=["websocket"], wait_timeout=5)


def test_events_reach_a_client_in_another_process(server, workers, tokens):
    """The acceptance path: a listener process joins a project room; a probe submitted over HTTP
    shows up there as queued → running → succeeded."""
    token = tokens["alice"]
    pid = _http(server, token, "POST", "/api/projects", json={"name": unique("rt")}).json()["id"]
    script = textwrap.dedent(
        """
        import json, sys, time, socketio
        seen = []
        sio = socketio.Client(reconnection=False)
        sio.on("job", lambda d: seen.append([d["id"], d["status"]]))
        sio.connect(sys.argv[1], auth={"token": sys.argv[2]}, transports=["websocket"])
        assert sio.call("join", {"project": int(sys.argv[3])})["ok"]
        print("joined", flush=True)
        deadline = time.time() + 30
        while not any(status == "succeeded" for _, status in seen) and time.time() < deadline:
            time.sleep(0.05)
        sio.disconnect()
        print(json.dumps(seen), flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script, server.url, token, str(pid)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "joined"
    job = _http(server, token, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": pid}).json()
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err
    statuses = []
    for job_id, status in json.loads(out.strip().splitlines()[-1]):
        if job_id == job["id"] and (not statuses or statuses[-1] != status):
            statuses.append(status)
    assert statuses == ["queued", "running", "succeeded"], (out, err)


def test_rooms_are_isolated_between_projects(server, workers, tokens):
    a_token, b_token = tokens["alice"], tokens["bob"]
    project_a = _http(server, a_token, "POST", "/api/projects", json={"name": unique("a")}).json()["id"]
    project_b = _http(server, b_token, "POST", "/api/projects", json={"name": unique("b")}).json()["id"]
    alice, bob = Listener(server.url, a_token), Listener(server.url, b_token)
    try:
        assert alice.join(project=project_a)["ok"]
        refused = alice.join(project=project_b)
        assert refused["ok"] is False and str(project_b) in refused["error"]
        assert bob.join(project=project_b)["ok"]

        job_b = _http(server, b_token, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": project_b}).json()
        assert alice.join(job=job_b["id"])["ok"] is False  # nor B's job room
        job_a = _http(server, a_token, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": project_a}).json()
        bob.wait_for(job_b["id"], "succeeded")
        alice.wait_for(job_a["id"], "succeeded")
        # one more job each, seen by its own client: events reach a socket in the order they were
        # published, so any event of the other project would have come before these
        last_a = _http(server, a_token, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": project_a}).json()
        last_b = _http(server, b_token, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": project_b}).json()
        alice.wait_for(last_a["id"], "succeeded")
        bob.wait_for(last_b["id"], "succeeded")
        assert {e["project_id"] for e in alice.events} == {project_a}
        assert {e["project_id"] for e in bob.events} == {project_b}
    finally:
        alice.close()
        bob.close()


def test_a_job_of_no_project_reaches_its_submitters_sockets_only(server, workers, tokens):
    """No room to join for it: its events go to the submitter's own sockets, whatever rooms they joined."""
    a_token, b_token = tokens["alice"], tokens["bob"]
    alice, bob = Listener(server.url, a_token), Listener(server.url, b_token)
    try:
        mine = _http(server, a_token, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": None}).json()
        alice.wait_for(mine["id"], "succeeded")
        assert alice.statuses(mine["id"])[0] == "queued"
        # bob's own job after it: events reach his socket in order, so alice's would have come first
        his = _http(server, b_token, "POST", "/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": None}).json()
        bob.wait_for(his["id"], "succeeded")
        assert {e["id"] for e in bob.events} == {his["id"]}
    finally:
        alice.close()
        bob.close()


def test_job_room_follows_one_job(app, server, workers, tokens, redis_client, sql):
    """A client that joins a running job's room sees its progress and its end; the last event is
    exactly what the REST API returns for the job."""
    from tests.integration.test_jobs import _submit_wait

    token = tokens["alice"]
    alice_id = sql("SELECT id FROM users WHERE name = 'alice'")[0][0]
    job_id, release = _submit_wait(app, None, "deployment", alice_id)
    listener = Listener(server.url, token)
    try:
        assert listener.join(job=job_id)["ok"]
        deadline = time.monotonic() + 10
        while not any(e["status"] == "running" and e["details"].get("steps") for e in listener.events):
            assert time.monotonic() < deadline, listener.events
            time.sleep(0.05)
        redis_client.set(release, "1")
        listener.wait_for(job_id, "succeeded")
        assert listener.events[-1]["result"]["attempt"] == 1
        assert listener.events[-1] == _http(server, token, "GET", f"/api/jobs/{job_id}").json()
    finally:
        redis_client.set(release, "1")
        listener.close()
