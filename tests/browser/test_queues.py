"""The queues page: waiting and in-flight counts, the workers consuming each queue and what they run
now, refreshed every few seconds without a reload."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.test_jobs import _submit_wait


def test_queues_show_workers_and_what_they_run(web, app, alice, project, workers, tokens, sql, redis_client):
    page = web.sign_in(tokens["alice"], "/queues")
    table = page.get_by_test_id("queues")
    for queue in ("inference", "augmentation", "training", "deployment"):
        expect(table.locator(f"tr[data-queue={queue}]")).to_be_visible()
    pool = workers["augmentation"]
    worker_row = page.get_by_test_id("workers-augmentation").locator(f"tr[data-worker='{pool.hostname}']")
    expect(worker_row).to_contain_text("idle")
    expect(worker_row).to_contain_text("celery")  # its versions

    alice_id = sql("SELECT id FROM users WHERE name = 'alice'")[0][0]
    job_id, release = _submit_wait(app, project["id"], "augmentation", alice_id)
    expect(worker_row.get_by_role("link", name="test.wait")).to_be_visible(timeout=15_000)
    expect(table.locator("tr[data-queue=augmentation] [data-col=in_flight]")).to_have_text("1")
    web.shot("queues")
    redis_client.set(release, "1")
    alice.wait_job(job_id)
    expect(worker_row).to_contain_text("idle", timeout=15_000)
