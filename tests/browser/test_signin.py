"""Signing in and out, what each user may see, and CSRF: what a person sees and does."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import unique


def test_sign_in_keeps_no_token_and_sign_out_ends_the_session(web, tokens):
    page = web.page
    page.goto("/jobs")
    expect(page.get_by_role("heading", name="loopline")).to_be_visible()

    page.fill("input[name=token]", "ll_not-a-real-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("invalid or revoked token")
    expect(page.locator(".field.invalid[data-field=token]")).to_be_visible()

    page.fill("input[name=token]", tokens["alice"])
    page.click("button[type=submit]")
    expect(page.get_by_test_id("user")).to_have_text("alice")
    stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert tokens["alice"] not in stored and stored == "[{},{}]"
    cookie = next(c for c in web.context.cookies() if c["name"] == "loopline_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert tokens["alice"] not in cookie["value"]
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: the page cannot read it

    page.reload()  # the session survives a reload: the page asks GET /api/session again
    expect(page.get_by_test_id("user")).to_have_text("alice")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("input[name=token]")).to_be_visible()
    assert page.evaluate("() => fetch('/api/session').then(r => r.status)") == 401
    page.reload()
    expect(page.locator("input[name=token]")).to_be_visible()


def test_a_user_sees_only_their_projects_and_the_apis_404_for_others(web, alice, bob, carol, project, tokens):
    other = bob.post("/api/projects", json={"name": unique("bobs")}).get_json()
    bob.post("/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": other["id"]})
    mine = alice.post("/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": project["id"]}).get_json()

    page = web.sign_in(tokens["alice"], "/projects")
    table = page.get_by_test_id("projects")
    expect(table.get_by_role("link", name=project["name"])).to_be_visible()
    expect(table).not_to_contain_text(other["name"])

    page.goto("/jobs")
    expect(page.locator(f"[data-job='{mine['id']}']")).to_be_visible()
    expect(page.get_by_test_id("jobs").locator("tbody tr")).not_to_have_count(0)
    project_options = page.get_by_test_id("job-filters").locator("select").first.locator("option")
    expect(project_options).not_to_contain_text([other["name"]])
    for row in page.get_by_test_id("jobs").locator("tbody tr[data-job]").all():
        assert alice.get(f"/api/jobs/{row.get_attribute('data-job')}").status_code == 200

    page.goto(f"/projects/{other['id']}")
    expect(page.get_by_role("alert")).to_have_text(re.compile(rf"project {other['id']} not found"))
    expect(page.locator("body")).not_to_contain_text(other["name"])
    page.goto(f"/models?project={other['id']}")
    expect(page.get_by_role("alert").first).to_contain_text("not found")


def test_actions_the_role_does_not_allow_are_not_shown(web, alice, project, tokens):
    done = alice.post("/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": project["id"]}).get_json()
    alice.wait_job(done["id"])

    page = web.sign_in(tokens["carol"], f"/projects/{project['id']}")  # carol is a viewer
    expect(page.get_by_test_id("members").locator("[data-member=alice]")).to_be_visible()
    expect(page.get_by_role("button", name="Remove")).to_have_count(0)
    expect(page.get_by_label("Add a member (user name)")).to_have_count(0)
    page.goto(f"/jobs?project={project['id']}")
    row = page.locator(f"[data-job='{done['id']}']")
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row.get_by_role("button")).to_have_count(0)  # no Retry for a viewer, no Cancel for another's job

    web.sign_in(tokens["alice"], f"/projects/{project['id']}")  # the admin manages members
    members = page.get_by_test_id("members")
    expect(members.get_by_role("button", name="Remove")).to_have_count(3)
    with page.expect_response(lambda r: r.url.endswith("/members/carol") and r.request.method == "PUT") as put:
        members.get_by_label("role of carol").select_option("annotator")
    assert put.value.status == 200
    expect(members.get_by_label("role of carol")).to_have_value("annotator")
    roles = {m["user"]["name"]: m["role"] for m in alice.get(f"/api/projects/{project['id']}/members").get_json()["items"]}
    assert roles["carol"] == "annotator"
    page.get_by_label("Add a member (user name)").fill("nobody-" + unique("x"))
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("alert")).to_contain_text("not found")


def test_writes_without_the_csrf_header_or_from_another_origin_are_refused(web, alice, tokens):
    page = web.sign_in(tokens["alice"], "/projects")
    name = unique("csrf")
    no_header = page.evaluate("""name => fetch('/api/projects', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({name})}).then(async r => [r.status, await r.json()])""", name)
    assert no_header[0] == 403, no_header
    csrf = page.evaluate("() => fetch('/api/session').then(r => r.json()).then(b => b.csrf_token)")
    # the same cookie and a valid CSRF token, but sent from another site's page
    foreign = web.context.request.post(f"{web.url}/api/projects", data={"name": name},
                                       headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert foreign.status == 403, foreign.text()
    names = [p["name"] for p in alice.get("/api/projects?limit=500").get_json()["items"]]
    assert name not in names
    # and the page's own write, with the header and its own origin, goes through
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
