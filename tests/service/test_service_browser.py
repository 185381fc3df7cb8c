"""The web page in a real browser: Debian's Chromium driven by Playwright, its camera a fake device
playing a few seconds of the Hamilton clip, or a print of the performer's portrait moved by hand
(tests/live_spoofs.py), each made here, at test time, as a .y4m file. Screenshots of each page go to
the test artefacts folder (never committed: real people's faces)."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
from bounded_waits import busy_ms
from service_helpers import LIN_SECONDS, clip_frames, index_faces, spoof_frames, wait_liveness, write_y4m

CHROMIUM = os.environ.get("FACENET_KERAS_CHROMIUM", "/usr/bin/chromium")
LIN = "Lin-Manuel Miranda"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("playwright") is None or not shutil.which(CHROMIUM),
    reason="needs playwright (pip) and chromium (apt-get install chromium)",
)


# Elements whose right edge passes the viewport's: named in the assertion message when a page scrolls sideways.
WIDER_THAN_SCREEN = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
    .map(e => `${e.tagName.toLowerCase()}#${e.id}.${[...e.classList].join('.')}`
        + ` right=${e.getBoundingClientRect().right}`)
    .slice(0, 8)"""

# A box and its name drawn at the right edge of the video, as the overlay does for a face there.
NAME_AT_THE_RIGHT_EDGE = """() => {
    const box = document.createElement('div'), label = document.createElement('span');
    box.className = 'face-box'; box.style.cssText = 'left: 92%; top: 40%; width: 7%; height: 20%';
    label.className = 'face-label'; label.textContent = 'Lin-Manuel Miranda 0.42';
    box.appendChild(label); document.querySelector('#overlay').appendChild(box);
}"""


def assert_fits(page, width: int = 390) -> None:
    """Nothing on the page is wider than a ``width`` px phone screen (no sideways scrolling)."""
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"page {scroll} px wide on a {width} px screen: {page.evaluate(WIDER_THAN_SCREEN)}"


@pytest.fixture(scope="module")
def camera_clip(shared_data, tmp_path_factory):
    """4 s of the clip at 10 fps, 480 px wide: Lin-Manuel Miranda facing the camera (~8 MB of y4m)."""
    frames, fps = clip_frames(shared_data / "video" / "short_hamilton_clip.mp4", *LIN_SECONDS, every=3, width=480)
    return write_y4m(frames, round(fps), tmp_path_factory.mktemp("camera") / "hamilton.y4m")


@pytest.fixture(scope="module")
def spoof_clip(shared_data, detector, tmp_path_factory):
    """A print of his portrait waved in front of the camera: 2 s at 15 fps, played in a loop (~10 MB)."""
    frames, _ = spoof_frames(shared_data, seed=7, seconds=2.0, detector=detector)
    return write_y4m(list(frames[::2]), 15, tmp_path_factory.mktemp("camera") / "spoof.y4m")


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch(playwright, clip):
    """Headless Chromium whose camera plays ``clip`` (a .y4m) in a loop."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}",
            "--no-sandbox",
        ],
    )


@pytest.fixture(scope="module")
def browser(playwright, camera_clip):
    b = launch(playwright, camera_clip)
    yield b
    b.close()


def open_page(browser, base, key, **context):
    """The page in a new context, with ``key`` given in the key box (none when ``key`` is None)."""
    ctx = browser.new_context(**context)
    ctx.grant_permissions(["camera"], origin=base)
    page = ctx.new_page()
    page.set_default_timeout(busy_ms(30))  # Playwright's own 30 s, stretched on a busy machine
    page.goto(base + "/")
    if key is not None:
        use_key(page, key)
        page.wait_for_selector("#key-state:has-text('key set')")
    return page


def use_key(page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")


def test_enrol_from_upload_then_his_name_over_the_live_video(browser, live_server, shared_data, artefacts, detector):
    base, keys, log = live_server
    page = open_page(browser, base, keys["write"], viewport={"width": 1100, "height": 800})
    page.click("#tabs button[data-tab=enrol]")
    page.fill("#enrol-name", LIN)
    page.set_input_files("#enrol-files", str(shared_data / "video" / "lin-manuel-miranda.png"))
    page.click("#enrol-form button[type=submit]")
    page.wait_for_selector("#enrol-result.ok:has-text('enrolled')", timeout=busy_ms(120))
    page.screenshot(path=str(artefacts / "page-enrol.png"))

    page.click("#tabs button[data-tab=camera]")
    page.click("#camera-start")
    # The overlay is redrawn every frame, so a label found by one call may be detached (all zeros) by
    # the next: the name's box and the video are measured together, in the page, in one frame.
    rects = page.wait_for_function(
        """name => {
          const label = [...document.querySelectorAll('.face-box .face-label')]
            .find((el) => el.isConnected && el.textContent.includes(name));
          if (!label) return null;
          return {box: label.parentElement.getBoundingClientRect().toJSON(),
                  video: document.querySelector('#video').getBoundingClientRect().toJSON()};
        }""",
        arg=LIN,
        timeout=busy_ms(120),
    ).json_value()
    box, video = rects["box"], rects["video"]
    assert box["width"] > 20 and video["left"] <= box["left"] and box["right"] <= video["right"] + 1, rects
    page.screenshot(path=str(artefacts / "page-camera.png"))

    page.click("#tabs button[data-tab=gallery]")
    page.wait_for_selector(f"#gallery-table td:has-text('{LIN}')")
    page.screenshot(path=str(artefacts / "page-gallery.png"))
    page.click("#tabs button[data-tab=style]")
    page.wait_for_selector("#style-name option[value='image:starry_night']", state="attached")
    page.screenshot(path=str(artefacts / "page-style.png"))

    # People: three photos of one person indexed on the server, grouped and named in the page
    served = log.parent  # the server's gallery.sqlite, and its face index beside it
    index_faces(
        shared_data,
        served / "photos",
        {"bbt_amy": [1, 2, 3]},
        served / "gallery.sqlite",
        served / "gallery.library.sqlite",
        detector,
    )
    page.click("#tabs button[data-tab=people]")
    page.click("#people-cluster")
    card = page.wait_for_selector(".cluster-card:has-text('3 faces')", timeout=busy_ms(60))
    card.wait_for_selector("img.thumb[src^='blob:']")  # thumbnails fetched with the key
    card.query_selector("input").fill("Amy")
    card.query_selector("button[type=submit]").click()
    page.click("#people-named button[data-name=Amy]", timeout=busy_ms(60))
    page.wait_for_selector("#people-photos-grid figure:nth-child(3) img[src^='blob:']", timeout=busy_ms(60))
    captions = page.locator("#people-photos-grid figcaption").all_inner_texts()
    assert sorted(c.split(" ")[0] for c in captions) == ["1.png", "2.png", "3.png"]  # with distances
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    page.evaluate(NAME_AT_THE_RIGHT_EDGE)  # a face at the frame's right edge must not widen the page either
    assert_fits(page)
    page.screenshot(path=str(artefacts / "page-people-phone.png"), full_page=True)
    page.context.close()
    assert "Amy" not in log.read_text() and "bbt_amy" not in log.read_text()


def test_enrolment_asks_which_face_and_whether_to_add_to_an_existing_name(browser, live_server, shared_data, artefacts):
    """A photo with three faces: the page shows their boxes over the photo and enrols the one clicked;
    a name already enrolled: the page asks before adding the photos to that person."""
    import httpx

    base, keys, _ = live_server
    name = "Page Group"
    page = open_page(browser, base, keys["write"], viewport={"width": 1100, "height": 900})
    try:
        page.click("#tabs button[data-tab=enrol]")
        page.fill("#enrol-name", name)
        page.set_input_files("#enrol-files", str(shared_data / "group" / "face_recognition__obama_and_biden.jpg"))
        page.click("#enrol-form button[type=submit]")
        page.wait_for_selector("#enrol-question:has-text('shows 3 faces')", timeout=120_000)
        boxes = page.locator("#enrol-photo .choose-face")
        assert boxes.count() == 3
        rects = [boxes.nth(i).bounding_box() for i in range(3)]
        photo = page.locator("#enrol-photo img").bounding_box()
        areas = [r["width"] * r["height"] for r in rects]
        assert areas == sorted(areas, reverse=True) and areas[-1] > 100  # largest first, drawn to scale
        for r in rects:  # every box lies on the photo
            assert photo["x"] - 1 <= r["x"] and r["x"] + r["width"] <= photo["x"] + photo["width"] + 1, (r, photo)
            assert photo["y"] - 1 <= r["y"] and r["y"] + r["height"] <= photo["y"] + photo["height"] + 1, (r, photo)
        page.screenshot(path=str(artefacts / "page-enrol-choose-face.png"))
        boxes.nth(1).click()
        page.wait_for_selector(f"#enrol-result.ok:has-text('enrolled {name} (1 photo(s))')", timeout=120_000)

        page.set_input_files("#enrol-files", str(shared_data / "faces" / "alex_lacamoire" / "1.jpg"))
        page.click("#enrol-form button[type=submit]")
        page.wait_for_selector(f"#enrol-question:has-text('{name} is already enrolled')", timeout=60_000)
        page.screenshot(path=str(artefacts / "page-enrol-existing-name.png"))
        page.click(f"#enrol-answers button:has-text('Add to {name}')")
        page.wait_for_selector(f"#enrol-result:has-text('enrolled {name} (2 photo(s))')", timeout=120_000)
        listed = httpx.get(base + "/v1/people/" + name, headers={"Authorization": f"Bearer {keys['read']}"}).json()
        assert [p["source"] for p in listed["photos"]] == ["face_recognition__obama_and_biden.jpg", "1.jpg"]
    finally:
        page.context.close()
        httpx.delete(base + "/v1/people/" + name, headers={"Authorization": f"Bearer {keys['write']}"})


def test_a_photo_held_up_to_the_camera_is_refused_on_a_phone_screen(
    playwright, spoof_clip, live_server, shared_data, artefacts
):
    """The Verify tab's liveness challenge with a print of the enrolled man's portrait as the camera:
    the page ends in a visible refusal that says liveness failed."""
    import httpx

    base, keys, _ = live_server
    r = httpx.post(
        base + "/v1/people",
        data={"name": LIN},
        timeout=120,
        files=[("photos", ("p.png", (shared_data / "video" / "lin-manuel-miranda.png").read_bytes()))],
        headers={"Authorization": f"Bearer {keys['write']}"},
    )
    assert r.status_code in (201, 409), r.text  # 409: the other test enrolled him already
    with httpx.Client(base_url=base, timeout=30) as c:
        wait_liveness(c.get)
    b = launch(playwright, spoof_clip)
    try:
        page = open_page(
            b, base, keys["read"], viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2
        )
        page.click("#camera-start")
        page.wait_for_selector("#camera-state:has-text('camera on')", timeout=busy_ms(60))
        assert page.evaluate("() => document.querySelector('#video').videoWidth") > 0
        # nothing wider than the phone: no sideways scrolling
        assert_fits(page)
        page.click("#tabs button[data-tab=verify]")
        page.wait_for_selector(f"#verify-name option[value='{LIN}']", state="attached", timeout=busy_ms(60))
        page.click("#verify-form button[type=submit]")
        page.wait_for_selector("#prompt:not([hidden])", timeout=busy_ms(30))  # the prompts are shown
        result = page.wait_for_selector("#verify-result.error:has-text('Refused')", timeout=busy_ms(180))
        page.screenshot(path=str(artefacts / "page-verify-spoof-phone.png"), full_page=True)
        assert "liveness check failed" in result.text_content() and "Welcome" not in result.text_content()
    finally:
        b.close()


# ---------------------------------------------------------------- the page as a newcomer meets it, at both widths

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "device_scale_factor": 2}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
WIDTHS = pytest.mark.parametrize("screen", [PHONE, DESKTOP], ids=["phone", "desktop"])
# each tab's main control, which must be on the first screen (not pushed below the camera)
FIRST_CONTROL = {
    "camera": "#camera-start",
    "photo": "#recognize-form button[type=submit]",
    "enrol": "#enrol-form button[type=submit]",
    "verify": "#verify-form button[type=submit]",
    "gallery": "#gallery-refresh",
    "people": "#people-cluster",
    "style": "#style-form button[type=submit]",
}
CAMERA_TABS = {"camera", "enrol", "verify"}
HOSTILE = '<img src=x onerror="window.pwned=1">Alex'  # a name that is HTML: shown as text, never run


@WIDTHS
def test_the_camera_only_on_the_tabs_that_use_it_and_each_form_on_the_first_screen(
    browser, live_server, screen, artefacts
):
    base, keys, _ = live_server
    page = open_page(browser, base, keys["write"], **screen)
    width, height = screen["viewport"]["width"], screen["viewport"]["height"]
    try:
        page.click("#camera-start")
        page.wait_for_selector("#camera-state:has-text('camera on')", timeout=busy_ms(60))
        for tab, control in FIRST_CONTROL.items():
            page.click(f"#tabs button[data-tab={tab}]")
            page.wait_for_selector(f"#tab-{tab}:not([hidden])")
            assert page.is_visible("#stage") == (tab in CAMERA_TABS), tab
            box = page.locator(control).bounding_box()
            assert box is not None and box["y"] + box["height"] <= height, (tab, box)  # no scrolling to reach it
            if tab in CAMERA_TABS and width < 600:  # a phone: the tab's form first, the camera below it
                assert page.locator(f"#tab-{tab}").bounding_box()["y"] < page.locator("#stage").bounding_box()["y"], tab
            assert_fits(page, width)
            page.screenshot(path=str(artefacts / f"page-tab-{tab}-{width}.png"))
    finally:
        page.context.close()


@WIDTHS
def test_a_missing_or_refused_key_says_so_and_a_good_one_shows_its_scope(browser, live_server, shared_data, screen):
    base, keys, _ = live_server
    page = open_page(browser, base, None, **screen)
    try:
        hint = page.locator("#key-hint")
        assert hint.is_visible() and "facenet-keras keys create --scope read" in hint.inner_text()
        page.click("#camera-start")  # the video alone, with no word why nobody is named, was the old page
        page.wait_for_selector("#camera-state.error:has-text('no API key')", timeout=busy_ms(60))
        page.click("#tabs button[data-tab=photo]")
        page.set_input_files("#recognize-file", str(shared_data / "faces" / "alex_lacamoire" / "1.jpg"))
        page.click("#recognize-form button[type=submit]")
        page.wait_for_selector("#recognize-result.error:has-text('no API key')")

        use_key(page, "fk_00000000.not-a-key")
        page.wait_for_selector("#key-state.error:has-text('refused')")
        assert hint.is_visible()
        assert page.evaluate("() => sessionStorage.length") == 0  # a refused key is not kept

        use_key(page, keys["read"])
        page.wait_for_selector("#key-state.ok:has-text('scope read')")
        assert not hint.is_visible()
        page.click("#tabs button[data-tab=enrol]")  # a read key cannot enrol: the server's reason, shown
        page.fill("#enrol-name", "Nobody")
        page.set_input_files("#enrol-files", str(shared_data / "faces" / "alex_lacamoire" / "1.jpg"))
        page.click("#enrol-form button[type=submit]")
        page.wait_for_selector("#enrol-result.error:has-text(\"needs a key of scope 'write'\")")
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def hostile_person(live_server, shared_data):
    """Alex Lacamoire enrolled from one photo under a name that is HTML; removed afterwards."""
    import urllib.parse

    import httpx

    base, keys, _ = live_server
    write = {"Authorization": f"Bearer {keys['write']}"}
    photo = (shared_data / "faces" / "alex_lacamoire" / "1.jpg").read_bytes()
    r = httpx.post(
        base + "/v1/people", data={"name": HOSTILE}, files=[("photos", ("1.jpg", photo))], headers=write, timeout=120
    )
    assert r.status_code == 201, r.text
    yield HOSTILE
    httpx.delete(base + "/v1/people/" + urllib.parse.quote(HOSTILE, safe=""), headers=write, timeout=30)


@WIDTHS
def test_an_uploaded_photo_is_recognised_and_two_are_compared(
    browser, live_server, shared_data, hostile_person, screen, artefacts
):
    base, keys, _ = live_server
    faces = shared_data / "faces" / "alex_lacamoire"
    page = open_page(browser, base, keys["read"], **screen)
    try:
        page.click("#tabs button[data-tab=photo]")
        page.set_input_files("#recognize-file", str(faces / "2.jpg"))
        page.click("#recognize-form button[type=submit]")
        page.wait_for_selector("#recognize-result.ok:has-text('1 recognised')", timeout=busy_ms(120))
        label = page.locator("#recognize-photo .face-box .face-label").first
        assert label.inner_text().startswith(HOSTILE)  # the name as text ...
        assert page.locator("#recognize-names li").first.inner_text().startswith(HOSTILE)
        assert page.locator("#tab-photo img[src=x]").count() == 0 and page.evaluate("() => window.pwned") is None
        box, photo = label.locator("..").bounding_box(), page.locator("#recognize-photo img").bounding_box()
        assert photo["x"] <= box["x"] and box["x"] + box["width"] <= photo["x"] + photo["width"] + 1, (box, photo)
        assert_fits(page, screen["viewport"]["width"])
        page.screenshot(path=str(artefacts / f"page-photo-{screen['viewport']['width']}.png"), full_page=True)

        page.set_input_files("#compare-file1", str(faces / "1.jpg"))
        page.set_input_files("#compare-file2", str(faces / "3.png"))
        page.click("#compare-form button[type=submit]")
        page.wait_for_selector("#compare-result.ok:has-text('Same person')", timeout=busy_ms(120))
        page.set_input_files("#compare-file2", str(shared_data / "video" / "lin-manuel-miranda.png"))
        page.click("#compare-form button[type=submit]")
        page.wait_for_selector("#compare-result.error:has-text('Not the same person')", timeout=busy_ms(120))
    finally:
        page.context.close()


@WIDTHS
def test_style_offers_the_fast_method_first_names_its_styles_and_gives_the_result_with_its_time(
    browser, live_server, shared_data, screen, tmp_path
):
    import re

    from PIL import Image

    base, keys, _ = live_server
    page = open_page(browser, base, keys["write"], **screen)
    try:
        page.click("#tabs button[data-tab=style]")
        page.wait_for_selector("#style-name option[value='preset:swirling_blue']", state="attached")
        assert page.eval_on_selector("#style-method", "s => s.options[0].value") == "fast"
        assert page.input_value("#style-method") == "fast" and not page.is_visible("#style-steps")
        assert page.locator("#style-name option[value^='preset:']").count() == 26
        assert page.inner_text("#style-name option[value='preset:swirling_blue']") == "swirling blue"
        page.select_option("#style-method", "optimize")  # no built-in styles there; Steps shown
        assert page.is_visible("#style-steps") and page.locator("#style-name option[value^='preset:']").count() == 0
        page.select_option("#style-method", "fast")
        assert not page.is_visible("#style-steps")
        page.select_option("#style-name", "preset:swirling_blue")
        page.set_input_files("#style-content", str(shared_data / "style" / "content" / "chelsea_cat.png"))
        page.fill("#style-size", "64")
        page.click("#style-form button[type=submit]")
        done = page.wait_for_selector("#style-result.ok:has-text('done in')", timeout=busy_ms(120)).inner_text()
        assert re.fullmatch(r"done in \d+\.\d s", done), done
        link = page.locator("#style-download")
        assert link.is_visible() and link.get_attribute("download") == "stylised-swirling_blue.png"
        with page.expect_download() as got:
            link.click()
        path = tmp_path / "out.png"
        got.value.save_as(path)
        image = Image.open(path)
        assert image.format == "PNG" and max(image.size) == 64
    finally:
        page.context.close()
