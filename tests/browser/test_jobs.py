"""The live jobs table and the job page: REST submissions appear and move without a reload; Cancel and
Retry from the page."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from services import jobs as job_service


def _navigations(page) -> list[str]:
    seen: list[str] = []
    page.on("framenavigated", lambda frame: seen.append(frame.url) if frame == page.main_frame else None)
    return seen


def _submit_wait(app, project_id: int, queue: str, user_id: int) -> tuple[str, str]:
    """The test job kind, which runs until released (through the real submit path)."""
    from api.extensions import db
    from services.queues import Queue

    release = f"lltest:release:{uuid.uuid4().hex}"
    with app.app_context():
        job = job_service.submit(app.extensions["celery"], app.extensions["loopline.runtime"], db.session, "test.wait",
                                 params={"release_key": release}, queue=Queue(queue), project_id=project_id,
                                 user_id=user_id)
        db.session.commit()
        return job.id, release


def test_a_probe_submitted_over_rest_appears_and_succeeds_without_a_reload(web, alice, project, tokens):
    page = web.sign_in(tokens["alice"], f"/jobs?project={project['id']}")
    expect(page.get_by_test_id("jobs")).to_be_visible()
    expect(page.locator(".live.on")).to_be_visible()
    navigations = _navigations(page)

    res = alice.post("/api/jobs", json={"kind": "probe", "queue": "training", "project_id": project["id"]})
    assert res.status_code == 202
    row = page.locator(f"tr[data-job='{res.get_json()['id']}']")
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(row.locator(".status")).to_have_text("succeeded")
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    assert navigations == [], navigations  # no reload, no navigation: the row moved live

    row.get_by_role("link", name="probe").click()
    expect(page.get_by_test_id("job-page")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("[data-section=Result]")).to_contain_text('"queue": "training"')  # the result, as the worker wrote it


def test_cancel_and_retry_from_the_page(web, app, alice, project, tokens, sql, redis_client):
    alice_id = sql("SELECT id FROM users WHERE name = 'alice'")[0][0]
    blocker, release = _submit_wait(app, project["id"], "training", alice_id)  # holds the one training process
    alice.wait_job(blocker, statuses=("running",))
    probe = alice.post("/api/jobs", json={"kind": "probe", "queue": "training", "project_id": project["id"]}).get_json()
    others = [alice.post("/api/jobs", json={"kind": "probe", "queue": q, "project_id": project["id"]}).get_json()
              for q in ("inference", "augmentation", "deployment")]  # they run meanwhile: rows that move on their own

    page = web.sign_in(tokens["alice"], f"/jobs?project={project['id']}")
    for other in others:
        expect(page.locator(f"tr[data-job='{other['id']}']")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    queued = page.locator(f"tr[data-job='{probe['id']}']")
    expect(queued).to_have_attribute("data-status", "queued")
    running = page.locator(f"tr[data-job='{blocker}']")
    expect(running).to_have_attribute("data-status", "running")
    web.shot("jobs")

    queued.get_by_role("button", name="Cancel").click()
    expect(queued).to_have_attribute("data-status", "cancelled")
    assert alice.get(f"/api/jobs/{probe['id']}").get_json()["status"] == "cancelled"

    running.get_by_role("link").click()  # the running job's page: cancel it there
    expect(page.get_by_test_id("job-page")).to_have_attribute("data-status", "running")
    expect(page.get_by_test_id("job-events").locator("tbody tr").first).to_be_visible()  # its events arrive
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("job-page")).to_have_attribute("data-status", "cancelled", timeout=20_000)
    redis_client.set(release, "1")

    page.goto(f"/jobs/{probe['id']}")
    expect(page.get_by_test_id("job-page")).to_have_attribute("data-status", "cancelled")
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(lambda url: probe["id"] not in url and "/jobs/" in url)
    retried = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("job-page")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    again = alice.get(f"/api/jobs/{retried}").get_json()
    assert (again["kind"], again["queue"], again["project_id"]) == ("probe", "training", project["id"])


def test_retry_refused_shows_the_apis_message(web, app, alice, project, tokens, sql, redis_client):
    """The API's refusal (409) is what the page shows."""
    alice_id = sql("SELECT id FROM users WHERE name = 'alice'")[0][0]
    job_id, release = _submit_wait(app, project["id"], "augmentation", alice_id)
    alice.wait_job(job_id, statuses=("running",))
    alice.post(f"/api/jobs/{job_id}/cancel")
    alice.wait_job(job_id, statuses=("cancelled",), timeout=20)
    redis_client.set(release, "1")
    page = web.sign_in(tokens["alice"], f"/jobs/{job_id}")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("alert")).to_contain_text("cannot be retried")
