"""The model tree from the page: fork, train with live curves, the parent's curve overlaid on a child,
deploy, a second deployment, and the rollback to the first."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.support.modeltree import root


def _points(page, chart: str) -> int:
    loc = page.locator(f"[data-chart={chart}] .chart")
    return int(loc.get_attribute("data-points") or 0) if loc.count() else 0


def test_fork_train_live_curve_deploy_and_roll_back(web, alice, pets, tokens):
    pid = pets["pid"]
    base = root(alice, pets)
    page = web.sign_in(tokens["alice"], f"/models?project={pid}")
    tree = page.get_by_test_id("model-tree")
    expect(tree.locator(f"[data-checkpoint='{base['id']}']")).to_have_attribute("data-status", "fresh")

    tree.locator(f"[data-checkpoint='{base['id']}'] a").click()
    page.locator("input[name=fork-name]").fill("first try")
    page.get_by_role("button", name="Fork").click()
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] not in ("", str(base["id"])) and "/checkpoints/" in url)
    child = int(page.url.rstrip("/").split("/")[-1])
    expect(page.get_by_role("heading", name="first try")).to_be_visible()
    expect(page.get_by_test_id("lineage").locator(f"[data-ancestor='{base['id']}']")).to_be_visible()

    form = page.get_by_test_id("train-form")
    expect(form.locator("input[name=epochs]")).to_have_value("10")  # TrainIn's default, from the OpenAPI document
    expect(form.locator("select[name=dataset_key]")).to_have_value(pets["dataset"]["key"])
    form.locator("input[name=epochs]").fill("0")  # refused by the API, the field marked
    form.get_by_role("button", name="Train").click()
    expect(form.locator(".field.invalid[data-field=epochs]")).to_be_visible()
    form.locator("input[name=epochs]").fill("2")
    form.locator("input[name=batch_size]").fill("8")
    form.locator("input[name=report_every_steps]").fill("1")
    form.get_by_role("button", name="Train").click()
    expect(page.get_by_test_id("checkpoint-page")).to_have_attribute("data-status", "training")

    # the live per-step curve gains points while the job runs
    step_chart = page.locator("[data-chart=steps] .chart")
    expect(step_chart).to_be_visible(timeout=120_000)
    first = _points(page, "steps")
    deadline = time.monotonic() + 60
    while _points(page, "steps") <= first and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _points(page, "steps") > first, "the step curve gained no points"
    assert page.get_by_test_id("checkpoint-page").get_attribute("data-status") == "training"
    web.shot("training")

    expect(page.get_by_test_id("checkpoint-page")).to_have_attribute("data-status", "trained", timeout=240_000)
    expect(page.locator("[data-chart=loss] .chart")).to_have_attribute("data-points", "3")  # epoch 0 (untrained), 1, 2
    trained = alice.get(f"{pets['base']}/checkpoints/{child}").get_json()
    assert [e["epoch"] for e in trained["curve"]] == [0, 1, 2]
    expect(page.get_by_role("link", name="Weights (.keras)")).to_be_visible()

    # deploy from the page: the row follows the build and ends ready and active, with the ONNX check
    page.get_by_role("button", name="Deploy").click()
    table = page.get_by_test_id("deployments")
    rows = table.locator("tr[data-deployment]")
    expect(rows).to_have_count(1)
    first_dep = rows.first.get_attribute("data-deployment")
    expect(rows.first).to_have_attribute("data-status", "ready", timeout=180_000)
    expect(rows.first).to_have_attribute("data-active", "true")
    diff = alice.get(f"{pets['base']}/deployments/{first_dep}").get_json()["max_abs_diff"]
    shown = float(rows.first.locator("td").nth(5).inner_text())  # 3 significant digits
    assert abs(shown - diff) <= 0.01 * abs(diff), (shown, diff)

    page.get_by_role("button", name="Deploy").click()  # a second deployment takes over
    expect(rows).to_have_count(2)
    second = table.locator(f"tr[data-deployment]:not([data-deployment='{first_dep}'])")
    expect(second).to_have_attribute("data-active", "true", timeout=180_000)
    expect(table.locator(f"tr[data-deployment='{first_dep}']")).to_have_attribute("data-active", "false")

    table.locator(f"tr[data-deployment='{first_dep}']").get_by_role("button", name="Roll back to this").click()
    expect(table.locator(f"tr[data-deployment='{first_dep}']")).to_have_attribute("data-active", "true")
    expect(second).to_have_attribute("data-active", "false")
    active = alice.get(f"{pets['base']}/deployments?active=true").get_json()["items"]
    assert [d["id"] for d in active] == [int(first_dep)]
    web.shot("checkpoint")

    # a fork of the trained child shows its parent's curve overlaid
    page.locator("input[name=fork-name]").fill("second try")
    page.get_by_role("button", name="Fork").click()
    expect(page.get_by_role("heading", name="second try")).to_be_visible()
    expect(page.locator("[data-chart=loss] .u-legend")).to_contain_text("(parent first try)")

    page.goto(f"/models?project={pid}")
    node = page.get_by_test_id("model-tree").locator(f"[data-checkpoint='{child}']")
    expect(node).to_have_attribute("data-status", "trained")
    expect(node).to_contain_text("val_loss")
    web.shot("models")
