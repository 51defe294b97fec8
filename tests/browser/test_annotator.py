"""The annotator from the page: boxes drawn with the mouse on a downscaled image are stored in the original
image's pixels (within 1 px), move, resize, delete, class hotkeys, undo/redo, hide-all, next/previous by
keyboard; two browser contexts on one image (the second gets the 409 view and loses nothing); bad input
refused with the API's message; a zip with a corrupt member uploaded from the page with each outcome."""

from __future__ import annotations

import io
import zipfile

from playwright.sync_api import expect

from tests.browser.conftest import Guard
from tests.support.ingest import image_ids, ingest
from tests.support.scenes import scene

W, H = 1600, 1200  # shown downscaled in a ~1100 x 700 stage


def _project(alice, project, n=3):
    pid = project["id"]
    base = f"/api/projects/{pid}"
    cls = {c: alice.post(f"{base}/classes", json={"name": c, **({"group": "pets"} if c != "car" else {})}).get_json()["id"]
           for c in ("cat", "dog", "car")}
    files = {f"big{i}.png": scene(W, H, [("cat", 100 + 40 * i, 100, 300, 200)]) for i in range(n)}
    ids = image_ids(ingest(alice, pid, files))
    order = sorted(ids.values(), reverse=True)  # the gallery's default: newest first
    return pid, base, cls, order


def _stored(alice, base, image):
    return alice.get(f"{base}/images/{image}/annotations").get_json()


def _to_screen(page, ix, iy):
    """Where image pixel (ix, iy) is on the screen, from the image element's own box (the page's mapping
    is checked against the browser's layout, not against itself)."""
    r = page.get_by_test_id("stage-image").bounding_box()
    return r["x"] + ix * r["width"] / W, r["y"] + iy * r["height"] / H


def _drag(page, a, b, steps=6):
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=steps)
    page.mouse.up()


def _saved(page, revision):
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-revision", str(revision))
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-saving", "false")


def test_draw_move_resize_delete_hotkeys_undo_hide_and_keyboard_navigation(web, alice, project, tokens):
    pid, base, cls, order = _project(alice, project)
    first = order[1]  # the middle image: it has a previous and a next
    page = web.sign_in(tokens["alice"], f"/projects/{pid}/images")
    gallery = page.get_by_test_id("gallery")
    expect(gallery.locator("a.thumb[data-image]")).to_have_count(3)
    web.shot("gallery")
    gallery.locator(f"a.thumb[data-image='{first}']").click()
    stage_img = page.get_by_test_id("stage-image")
    expect(stage_img).to_be_visible()
    shown = stage_img.bounding_box()
    assert shown["width"] < W * 0.8, shown  # downscaled
    expect(page.get_by_test_id("crosshair")).to_have_count(0)
    page.mouse.move(*_to_screen(page, 800, 600))
    expect(page.get_by_test_id("crosshair")).to_be_visible()  # on by default

    # draw: the stored box is the drawn one in original pixels
    _drag(page, _to_screen(page, 200.0, 150.0), _to_screen(page, 700.0, 500.0))
    _saved(page, 1)
    [box] = _stored(alice, base, first)["items"]
    assert box["class_id"] == cls["cat"]  # the first class until another is picked
    for k, want in (("x", 200), ("y", 150), ("w", 500), ("h", 350)):
        assert abs(box[k] - want) <= 1, (k, box[k], want)

    # move by 100 image pixels right and 50 down
    _drag(page, _to_screen(page, 450, 300), _to_screen(page, 550, 350))
    _saved(page, 2)
    [box] = _stored(alice, base, first)["items"]
    assert abs(box["x"] - 300) <= 1 and abs(box["y"] - 200) <= 1 and abs(box["w"] - 500) <= 1, box

    # resize by the south-east handle to (900, 650)
    handle = page.locator("[data-handle=se]")
    hb = handle.bounding_box()
    _drag(page, (hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2), _to_screen(page, 900, 650))
    _saved(page, 3)
    [box] = _stored(alice, base, first)["items"]
    assert abs(box["x"] - 300) <= 1 and abs(box["w"] - 600) <= 1 and abs(box["h"] - 450) <= 1, box

    # class hotkey 2 (dog) on the selected box, undo and redo
    page.keyboard.press("2")
    _saved(page, 4)
    assert _stored(alice, base, first)["items"][0]["class_id"] == cls["dog"]
    page.keyboard.press("Control+z")
    _saved(page, 5)
    assert _stored(alice, base, first)["items"][0]["class_id"] == cls["cat"]
    page.keyboard.press("Control+Shift+z")
    _saved(page, 6)
    assert _stored(alice, base, first)["items"][0]["class_id"] == cls["dog"]

    # hide all and show again; the shortcuts on ?
    page.keyboard.press("h")
    expect(page.locator(".overlay g.box")).to_have_count(0)
    page.keyboard.press("h")
    expect(page.locator(".overlay g.box")).to_have_count(1)
    page.keyboard.press("?")
    expect(page.get_by_test_id("shortcuts")).to_contain_text("repeat the previous image's boxes")
    web.shot("annotator")
    page.keyboard.press("Escape")

    # the class search shows classes grouped; Enter picks the first match
    page.keyboard.press("/")
    page.keyboard.type("ca")
    expect(page.locator(".class-group[data-group=pets] [data-class-id]")).to_have_count(1)
    expect(page.locator(".class-group[data-group=''] [data-class-id]")).to_have_count(1)
    page.keyboard.press("Escape")

    # delete, and undo the delete (the box comes back as a new row)
    page.locator(".overlay g.box").first.click()
    page.keyboard.press("Delete")
    _saved(page, 7)
    assert _stored(alice, base, first)["items"] == []
    page.keyboard.press("Control+z")
    _saved(page, 8)
    assert [b["class_id"] for b in _stored(alice, base, first)["items"]] == [cls["dog"]]

    # next and previous by keyboard; "repeat the previous image's boxes" on the next one
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-image", str(order[2]))
    load_ms = float(page.evaluate("document.documentElement.dataset.imageLoadMs"))
    page.keyboard.press("r")
    _saved(page, 1)
    [copy] = _stored(alice, base, order[2])["items"]
    assert copy["class_id"] == cls["dog"] and abs(copy["w"] - 600) <= 1
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-image", str(first))
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-image", str(order[0]))
    assert load_ms < 150, f"the prefetched next image took {load_ms} ms"


def _context(browser, server):
    """A second browser context with the same foreign-host guard as the `web` fixture."""
    guard = Guard(server.url)
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(15_000)
    ctx.route("**/*", lambda r: r.continue_() if guard.allowed(r.request.url) else (guard.foreign.append(r.request.url), r.abort()))
    return ctx, guard


def test_two_editors_of_one_image_the_second_sees_the_409_view_and_loses_nothing(web, browser, server, alice, bob, project, tokens):
    pid, base, cls, order = _project(alice, project, n=1)
    image = order[0]
    a = web.sign_in(tokens["alice"], f"/projects/{pid}/images/{image}")
    ctx, guard = _context(browser, server)
    try:
        b = ctx.new_page()
        b.goto("/")
        b.fill("input[name=token]", tokens["bob"])
        b.click("button[type=submit]")
        b.wait_for_selector("[data-testid=user]")
        b.goto(f"/projects/{pid}/images/{image}")
        expect(b.get_by_test_id("stage-image")).to_be_visible()
        expect(a.get_by_test_id("stage-image")).to_be_visible()

        _drag(a, _to_screen(a, 100, 100), _to_screen(a, 400, 300))  # alice first: revision 1
        _saved(a, 1)
        b.keyboard.press("2")  # bob's next box is a dog
        _drag(b, _to_screen(b, 800, 500), _to_screen(b, 1200, 900))  # bob still holds revision 0
        conflict = b.get_by_test_id("conflict")
        expect(conflict).to_be_visible()
        expect(conflict).to_contain_text("revision 1")
        expect(b.locator(".overlay g[data-ghost]")).to_have_count(1)  # alice's box, as it is now
        assert len(_stored(alice, base, image)["items"]) == 1  # nothing of bob's was written
        b.get_by_role("button", name="Re-apply mine").click()
        expect(b.get_by_test_id("annotator")).to_have_attribute("data-revision", "2")
        stored = _stored(alice, base, image)["items"]
        assert sorted(x["class_id"] for x in stored) == sorted([cls["cat"], cls["dog"]])  # both kept
        assert next(x for x in stored if x["class_id"] == cls["dog"])["created_by"] != \
            next(x for x in stored if x["class_id"] == cls["cat"])["created_by"]
    finally:
        ctx.close()
    guard.check()


def test_bad_input_is_refused_with_the_api_message_and_nothing_is_written(web, alice, project, tokens):
    pid, base, cls, order = _project(alice, project, n=1)
    image = order[0]
    gone = alice.post(f"{base}/classes", json={"name": "gone"}).get_json()["id"]
    page = web.sign_in(tokens["alice"], f"/projects/{pid}/images/{image}")
    expect(page.get_by_test_id("stage-image")).to_be_visible()
    page.locator(f"[data-class-id='{gone}']").click()  # picked, then deleted by someone else
    assert alice.delete(f"{base}/classes/{gone}").status_code in (200, 204)
    _drag(page, _to_screen(page, 100, 100), _to_screen(page, 300, 300))
    alert = page.locator(".annotator > .error[role=alert]")
    expect(alert).to_contain_text(str(gone))
    expect(page.get_by_test_id("annotator")).to_have_attribute("data-saving", "false")
    expect(page.locator(".overlay g.box")).to_have_count(0)  # back to what the server holds
    assert _stored(alice, base, image) == {"image_id": image, "revision": 0, "items": []}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_upload_a_zip_with_a_corrupt_member_and_see_each_outcome(web, alice, project, tokens):
    pid = project["id"]
    good = scene(200, 150, [("cat", 10, 10, 50, 40)])
    ingest(alice, pid, {"already.png": scene(90, 60, [("dog", 5, 5, 20, 20)])})
    page = web.sign_in(tokens["alice"], f"/projects/{pid}/upload")
    page.locator("input[name=files]").set_input_files([
        {"name": "batch.zip", "mimeType": "application/zip", "buffer": _zip({
            "good.png": good, "copy.png": scene(90, 60, [("dog", 5, 5, 20, 20)]), "broken.png": good[:40]})},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
    ])
    expect(page.get_by_test_id("chosen")).to_contain_text("2 files")
    page.get_by_role("button", name="Upload").click()
    ingest_card = page.get_by_test_id("ingest")
    expect(ingest_card).to_have_attribute("data-status", "succeeded", timeout=60_000)
    rows = page.get_by_test_id("outcomes").locator("tr[data-file]")
    expect(rows).to_have_count(4)
    outcome = {r.get_attribute("data-file"): r.get_attribute("data-outcome") for r in rows.all()}
    assert outcome["batch.zip/good.png"] == "accepted", outcome
    assert outcome["batch.zip/copy.png"] == "duplicate", outcome
    assert outcome["batch.zip/broken.png"] == "rejected", outcome
    assert outcome["notes.txt"] == "rejected", outcome
    why = page.get_by_test_id("outcomes").locator("tr[data-file='batch.zip/broken.png'] td").nth(2).inner_text()
    assert why.strip(), "a rejected file shows why"
    web.shot("upload")
