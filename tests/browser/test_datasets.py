"""The datasets page: the request form generated from the handler's options refuses a bad value with
the field marked, builds a good one live (building → ready), answers a repeat from the cache, and the
dataset's health charts count what the project holds."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import unique
from tests.support.scenes import layout

WATCH_STATUSES = """name => {
  window.__seen = [];
  const note = () => document.querySelectorAll(`tr[data-name="${name}"]`).forEach(tr => {
    const s = tr.getAttribute('data-status');
    if (window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);
  });
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                      attributeFilter: ['data-status']});
}"""


def test_request_form_refuses_builds_live_and_health_counts(web, alice, labelled_pets, tokens):
    pid = labelled_pets["pid"]
    name = unique("pets")
    page = web.sign_in(tokens["alice"], f"/datasets?project={pid}")
    form = page.get_by_test_id("dataset-form")
    form.locator("select[name=handler]").select_option("detection@1")
    size = form.locator("input[name='config.size']")
    expect(size).to_have_value("512")  # the handler's default, from GET /api/handlers
    expect(form.locator("[data-field='config.size'] .help")).to_contain_text("32 – 2048")
    form.locator("input[name=name]").fill(name)

    size.fill("20")  # below the option's minimum: the server says so, and the field is marked
    form.get_by_role("button", name="Request").click()
    expect(form.get_by_role("alert")).to_contain_text("invalid config: size: must be an integer between 32 and 2048")
    expect(form.locator(".field.invalid[data-field='config.size'] .field-error")).to_contain_text("between 32 and 2048")
    expect(form.locator(".field.invalid")).to_have_count(1)
    assert alice.get(f"/api/datasets?project_id={pid}&name={name}").get_json()["total"] == 0

    size.fill("160")  # the scenes are 160 x 120: boxes keep their pixel sizes
    page.evaluate(WATCH_STATUSES, name)
    form.get_by_role("button", name="Request").click()
    answer = page.get_by_test_id("dataset-answer")
    expect(answer).to_have_attribute("data-http", "202")
    expect(form.locator(".field.invalid")).to_have_count(0)
    row = page.locator(f"tr[data-name='{name}']")
    expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
    assert page.evaluate("() => window.__seen") == ["building", "ready"]
    web.shot("datasets")

    form.get_by_role("button", name="Request").click()  # the same definition again: from the cache
    expect(answer).to_have_attribute("data-http", "200")
    expect(answer).to_contain_text("from the cache")
    expect(row.locator("td").nth(7)).to_have_text("1")  # hits

    row.get_by_role("link", name=name).click()
    health = page.get_by_test_id("health")
    expect(health).to_be_visible()
    boxes = [b for i in range(30) for b in layout(i) if b[0] in ("cat", "dog")]
    records = health.locator("[data-chart=records] [data-bar]")
    assert sum(int(v) for v in records.evaluate_all("bs => bs.map(b => b.dataset.value)")) == 30
    classes = health.locator("[data-chart=classes]")
    for cls in ("cat", "dog"):
        expected = sum(1 for b in boxes if b[0] == cls)
        expect(classes.locator(f"tr[data-class={cls}] td").last).to_have_text(str(expected))
        expect(classes.locator(f"[data-bar={cls}]")).to_have_attribute("data-value", str(expected))
    expect(health.locator("[data-chart=objects_per_image] [data-bar='2 objects']")).to_have_attribute("data-value", "30")
    expect(health.locator("[data-chart=box_sizes] [data-bar='32-64']")).to_have_attribute("data-value", str(len(boxes)))
    expect(health.locator("[data-chart=box_sizes] [data-bar]")).to_have_count(1)
    manifest = alice.get(f"/api/datasets?project_id={pid}&name={name}").get_json()["items"][0]["manifest"]
    for split, counts in manifest["health"]["splits"].items():
        expect(health.locator(f"[data-chart=records] [data-bar={split}]")).to_have_attribute("data-value", str(counts["records"]))
    web.shot("dataset-health")

    page.go_back()
    page.once("dialog", lambda d: d.accept())
    page.locator(f"tr[data-name='{name}']").get_by_role("button", name="Delete").click()
    expect(page.locator(f"tr[data-name='{name}']")).to_have_count(0)
    assert alice.get(f"/api/datasets?project_id={pid}&name={name}").get_json()["total"] == 0
