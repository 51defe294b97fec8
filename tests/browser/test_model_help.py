"""Model help from the page, with a real box_suggester deployed: the assist tool's proposal accepted with
Enter and stored as accepted; the model's proposals reviewed one by one from the keyboard into the
failed-cases set and a dataset requested from it; class examples cut by the server; and the deployment's
ONNX file run in the browser (onnxruntime-web in a worker) giving the server's answer within 1e-3."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.support.modeltree import deployed


@pytest.fixture()
def suggester(alice, labelled_pets, tmp_path):
    return {**labelled_pets, "deployment": deployed(alice, labelled_pets, "box_suggester", tmp_path)}


def _images(alice, base):
    return [i["id"] for i in alice.get(f"{base}/images?order=oldest&limit=50").get_json()["items"]]


def test_assist_proposal_accepted_with_enter_and_the_model_run_in_the_browser(web, alice, suggester, tokens):
    pid, base = suggester["pid"], suggester["base"]
    image = _images(alice, base)[0]
    page = web.sign_in(tokens["alice"], f"/projects/{pid}/images/{image}")
    expect(page.get_by_test_id("stage-image")).to_be_visible()
    before = len(alice.get(f"{base}/images/{image}/annotations").get_json()["items"])
    page.keyboard.press("a")
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-tool", "assist")
    r = page.get_by_test_id("stage-image").bounding_box()
    sx, sy = r["width"] / 160, r["height"] / 120
    page.mouse.move(r["x"] + 5 * sx, r["y"] + 5 * sy)
    page.mouse.down()
    page.mouse.move(r["x"] + 60 * sx, r["y"] + 50 * sy, steps=5)
    page.mouse.up()
    proposal = page.locator(".overlay g.box[data-source=model][data-status=proposed]")
    expect(proposal).to_have_count(1, timeout=30_000)
    timing = page.get_by_test_id("assist-time")
    expect(timing).to_be_visible()
    assert float(timing.get_attribute("data-ms")) > 0
    web.shot("assist")
    page.keyboard.press("Enter")
    expect(page.locator(".overlay g.box[data-source=model][data-status=accepted]")).to_have_count(1)
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-saving", "false")
    items = alice.get(f"{base}/images/{image}/annotations").get_json()["items"]
    assert len(items) == before + 1
    [model_box] = [b for b in items if b["source"] == "model"]
    assert model_box["status"] == "accepted" and model_box["deployment_id"] == suggester["deployment"]["id"]

    # the same deployment in the browser: its answer for the same input equals the server's
    page.goto(f"/projects/{pid}/try?image={image}")
    page.get_by_role("button", name="Run").click()
    diff = page.get_by_test_id("try-diff")
    expect(diff).to_be_visible(timeout=60_000)
    assert float(diff.get_attribute("data-diff")) <= 1e-3
    browser = json.loads(page.get_by_test_id("try-browser").get_attribute("data-answer"))
    server = json.loads(page.get_by_test_id("try-server").get_attribute("data-answer"))
    assert browser["class_name"] == server["class_name"]
    assert all(abs(browser["scores"][k] - v) <= 1e-3 for k, v in server["scores"].items())
    assert all(abs(browser["box"][k] - server["box"][k]) <= 64e-3 for k in "xywh")  # 1e-3 of the 64 px input
    web.shot("try-model")


def test_review_queue_to_failed_cases_and_a_dataset_from_them(web, alice, suggester, tokens):
    pid, base, cls = suggester["pid"], suggester["base"], suggester["cls"]
    dep = suggester["deployment"]["id"]
    images = _images(alice, base)[:3]
    for n, image in enumerate(images):  # the model's proposals, as pre-annotation stores them
        rev = alice.get(f"{base}/images/{image}/annotations").get_json()["revision"]
        res = alice.post(f"{base}/images/{image}/annotations", json={
            "revision": rev, "class_id": cls["cat"], "x": 10 + n, "y": 10, "w": 40, "h": 30,
            "source": "model", "score": 0.9 - n / 10, "deployment_id": dep})
        assert res.status_code == 201, res.get_json()
    page = web.sign_in(tokens["alice"], f"/projects/{pid}/review")
    review = page.get_by_test_id("review")
    expect(review).to_have_attribute("data-remaining", "3")
    expect(page.get_by_test_id("stage-image")).to_be_visible()
    web.shot("review")
    page.keyboard.press("v")  # valid
    expect(review).to_have_attribute("data-remaining", "2")
    expect(page.get_by_test_id("stage-image")).to_be_visible()
    page.keyboard.press("m")
    page.keyboard.type("not a cat at all")
    page.keyboard.press("Enter")
    page.keyboard.press("i")  # invalid, with the note
    expect(review).to_have_attribute("data-remaining", "1")
    expect(page.get_by_test_id("stage-image")).to_be_visible()
    page.keyboard.press("2")  # the class corrected to dog, then Enter
    page.keyboard.press("Enter")
    expect(review).to_have_attribute("data-remaining", "0")
    counts = page.get_by_test_id("review-counts")
    for k in ("valid", "invalid", "corrected"):
        expect(counts.locator(f"[data-count={k}] .tile-value")).to_have_text("1")
    expect(page.get_by_test_id("queue-empty")).to_be_visible()

    failed = alice.get(f"{base}/failed-cases").get_json()
    assert failed["total"] == 2
    notes = {c["review"]["note"] for c in failed["items"]}
    assert "not a cat at all" in notes
    assert any(c["review"]["corrected_class_id"] == cls["dog"] for c in failed["items"])

    page.goto(f"/projects/{pid}/review?view=failed")
    expect(page.get_by_test_id("failed-cases")).to_have_attribute("data-total", "2")
    expect(page.locator(".case img").first).to_have_js_property("complete", True)
    form = page.get_by_test_id("failed-dataset")
    form.locator("select[name=handler]").select_option("detection@1")
    form.locator("select[name=label_map_id]").select_option(str(suggester["lm"]))
    web.shot("failed-cases")
    form.get_by_role("button", name="Request a dataset from the failed cases").click()
    page.wait_for_url("**/datasets/*")
    key = page.url.rstrip("/").split("/")[-1]
    dataset = alice.get(f"/api/datasets/{key}").get_json()
    assert dataset["subset"] == "failed" and dataset["project_id"] == pid

    # class examples: crops cut by the server
    page.goto(f"/projects/{pid}/examples")
    crops = page.locator(f".examples[data-class='{cls['cat']}'] img")
    expect(crops.first).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", crops.first.element_handle()) > 0
    web.shot("examples")
