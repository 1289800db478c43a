"""Issue 16: the review page over real HTTP (waitress on 127.0.0.1, the fake Immich behind it) and in
a real browser (Debian's headless Chromium, driven by Selenium), and the scripted pins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import datetime

import pytest
import requests
from filelock import FileLock

from conftest import SAMPLES, command
from immich_sync.adapters.exif_reader import read_capture_time
from immich_sync.adapters.immich_config import ImmichConfig
from immich_sync.adapters.immich_http import ImmichConnection
from immich_sync.adapters.json_repository import JsonCacheRepository
from immich_sync.adapters.previews import render
from immich_sync.testing.factory import jpeg_bytes, make_asset, sha1_b64
from immich_sync.testing.fake_immich import tiny_jpeg

TAKEN = datetime(2024, 7, 14, 10, 0)


@pytest.fixture
def photos(fake_server, tmp_path):
    """Two assets, each with two same-named files that agree in date and size (ambiguous), in the
    folders t/ and u/; a third such asset in v/ and w/; one asset whose file is plain (found). A
    cache made by immich-cache."""
    fake = fake_server((3, 1, 0))
    root = tmp_path / "Photos"
    ids = {}
    camera = (SAMPLES / "Canon_40D.jpg").read_bytes()  # real photos, so that the pictures show something
    iphone = (SAMPLES / "IMG_5195.HEIC").read_bytes()
    files = {
        "IMG_1.JPG": (("t", "u"), camera),
        "IMG_2.HEIC": (("t", "u"), iphone),
        "IMG_3.JPG": (("t",), jpeg_bytes(TAKEN)),
        "IMG_4.JPG": (("v", "w"), jpeg_bytes(TAKEN)),
    }
    for name, (folders, data) in files.items():
        for folder in folders:
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / name).write_bytes(data)
        first = str(root / folders[0] / name)
        taken = read_capture_time(first).local
        checksum = sha1_b64(data) if name == "IMG_3.JPG" else sha1_b64(b"edited in Immich")
        raw = make_asset(owner_id=fake.user_id, name=name, taken=taken, size=len(data), checksum=checksum)
        ids[name] = fake.add_asset(raw)["id"]
        fake.thumbnails[ids[name]] = render(first, 250)  # Immich's preview of the same photo
    env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}
    run = command(tmp_path, env, "Photos")
    assert run.returncode == 0, run.stderr
    return fake, tmp_path, env, ids


@pytest.fixture
def page(photos):
    """The review page served on 127.0.0.1, as `immich-cache-review` serves it."""
    from waitress import create_server

    from immich_sync.entrypoints.review_web import ReviewState, create_app

    fake, tmp, _env, _ids = photos
    repo = JsonCacheRepository(tmp / "log" / "cache_Photos.json")
    connection = ImmichConnection(ImmichConfig(url=fake.url, api_key=fake.api_key))
    state = ReviewState(repo, "t0ken-for-tests", connection.thumbnail)
    server = create_server(create_app(state), host="127.0.0.1", port=0, threads=4)
    port = server.effective_port
    server.application = create_app(state, allowed_hosts={f"127.0.0.1:{port}", f"localhost:{port}"})
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", state, photos
    server.close()
    connection.close()


def cache_doc(tmp):
    return json.loads((tmp / "log" / "cache_Photos.json").read_text())


def test_every_request_needs_the_token_and_a_local_host_name(page):
    url, state, _ = page
    assert requests.get(f"{url}/").status_code == 403
    assert requests.get(f"{url}/?token=wrong").status_code == 403
    answer = requests.get(f"{url}/?token={state.token}")
    assert answer.status_code == 200 and "Review: 3 assets to look at" in answer.text
    rebound = requests.get(f"{url}/?token={state.token}", headers={"Host": "attacker.example"})
    assert rebound.status_code == 403


def test_only_files_inside_target_are_served_and_previews_live_beside_the_cache(page, tmp_path):
    url, state, (_fake, tmp, _env, _ids) = page
    token = state.token
    (tmp / "Photos" / "escape.jpg").symlink_to("/etc/hostname")
    for path in ("/etc/passwd", str(tmp / "Photos" / ".." / "log" / "cache_Photos.json"), "escape.jpg"):
        assert requests.get(f"{url}/preview", params={"token": token, "path": path}).status_code == 403, path
    inside = requests.get(f"{url}/preview", params={"token": token, "path": str(tmp / "Photos" / "t" / "IMG_1.JPG")})
    assert inside.status_code == 200 and inside.headers["Content-Type"] == "image/jpeg"
    assert inside.content.startswith(b"\xff\xd8")
    previews = tmp / "log" / "cache_Photos.json.previews"
    assert len(list(previews.glob("*.jpg"))) == 1
    assert "previews" not in (tmp / "log" / "cache_Photos.json").read_text()
    odd = requests.get(f"{url}/preview", params={"token": token, "path": "t/none.raw"})
    assert odd.status_code == 200 and odd.headers["Content-Type"].startswith("image/svg+xml")  # a placeholder


def test_immichs_thumbnail_is_fetched_by_the_server_and_the_key_never_reaches_the_page(page):
    url, state, (fake, _tmp, _env, ids) = page
    asset_id = ids["IMG_1.JPG"]
    answer = requests.get(f"{url}/thumbnail/{asset_id}", params={"token": state.token})
    assert answer.status_code == 200 and answer.content == fake.thumbnails[asset_id]
    assert ("GET", f"/api/assets/{asset_id}/thumbnail", None) in fake.requests
    html = requests.get(f"{url}/?token={state.token}").text
    assert fake.api_key not in html and f"thumbnail/{asset_id}?token=" in html


def test_older_servers_thumbnail_spelling(fake_server):
    fake = fake_server((1, 105, 1))
    raw = fake.add_asset(make_asset(owner_id=fake.user_id, name="a.jpg", taken=TAKEN, size=1, checksum="c"))
    connection = ImmichConnection(ImmichConfig(url=fake.url, api_key=fake.api_key))
    data, content_type = connection.thumbnail(raw["id"])
    assert data == tiny_jpeg(raw["id"]) and content_type == "image/jpeg"
    assert ("GET", f"/api/asset/thumbnail/{raw['id']}", None) in fake.requests


def test_a_pin_made_on_the_page_is_saved_and_kept_by_the_next_run(page):
    url, state, (_fake, tmp, env, ids) = page
    asset_id, path = ids["IMG_1.JPG"], str(tmp / "Photos" / "t" / "IMG_1.JPG")
    form = {"token": state.token, "asset": asset_id, "action": "pin", "path": path, "kind": "ambiguous"}
    answer = requests.post(f"{url}/decide", data=form, allow_redirects=False)
    assert answer.status_code == 302 and "nearby=" in answer.headers["Location"]
    match = cache_doc(tmp)["assets"][asset_id]["match"]
    assert (match["status"], match["path"], match["method"], match["pinned"]) == ("found", path, "manual", True)
    assert match["pinnedBy"]
    run = command(tmp, env, "Photos", "--clear")
    assert run.returncode == 0, run.stderr
    assert cache_doc(tmp)["assets"][asset_id]["match"]["path"] == path


def test_while_a_run_holds_the_lock_the_page_is_read_only(page):
    url, state, (_fake, tmp, _env, ids) = page
    before = (tmp / "log" / "cache_Photos.json").read_bytes()
    with FileLock(str(state.repo.lock_path), timeout=0):  # as a run holds it (flock: per open file)
        html = requests.get(f"{url}/?token={state.token}").text
        assert "this page is read-only" in html and "Pin this" not in html
        form = {"token": state.token, "asset": ids["IMG_1.JPG"], "action": "none"}
        answer = requests.post(f"{url}/decide", data=form)
        assert "an immich-cache run holds the cache: nothing was changed" in answer.text
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before


def test_a_failed_save_leaves_the_cache_as_it_was_and_the_page_says_so(page, monkeypatch):
    url, state, (_fake, tmp, _env, ids) = page
    before = (tmp / "log" / "cache_Photos.json").read_bytes()

    def full_disk(cache):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state.repo, "save", full_disk)
    form = {"token": state.token, "asset": ids["IMG_1.JPG"], "action": "none"}
    answer = requests.post(f"{url}/decide", data=form)
    assert "not saved, the cache is as it was: No space left on device" in answer.text
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before


def test_scripted_pins_and_their_errors(photos):
    _fake, tmp, _env, ids = photos

    def review(*args):
        return command(tmp, os.environ, *args, module="immich_sync.entrypoints.review_cli")

    run = review("Photos", f"--pin={ids['IMG_1.JPG']}=u/IMG_1.JPG", f"--pin-none={ids['IMG_2.HEIC']}")
    assert run.returncode == 0, run.stderr
    assert f"{ids['IMG_1.JPG']}: pinned to {tmp / 'Photos' / 'u' / 'IMG_1.JPG'}" in run.stdout
    doc = cache_doc(tmp)["assets"]
    assert doc[ids["IMG_2.HEIC"]]["match"]["status"] == "not_found" and doc[ids["IMG_2.HEIC"]]["match"]["pinned"]
    before = (tmp / "log" / "cache_Photos.json").read_bytes()
    for args, message in [
        ([f"--pin={ids['IMG_1.JPG']}"], "--pin takes ASSET_ID=PATH"),
        ([f"--pin={ids['IMG_1.JPG']}=/etc/hostname"], "is not inside TARGET"),
        (["--unpin=0000"], "no asset 0000 in the cache"),
    ]:
        bad = review("Photos", *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before
    assert review("Photos", f"--unpin={ids['IMG_2.HEIC']}").returncode == 0
    assert cache_doc(tmp)["assets"][ids["IMG_2.HEIC"]]["match"] is None


def test_the_command_serves_on_127_0_0_1_with_a_token(photos):
    _fake, tmp, env, _ids = photos
    proc = subprocess.Popen(
        [sys.executable, "-c", "from immich_sync.entrypoints.review_cli import run; run()", "Photos", "--no-browser"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "3 assets to review" in first
        url = proc.stdout.readline().split("open ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        assert requests.get(url).status_code == 200
        assert requests.get(url.split("?")[0]).status_code == 403
    finally:
        proc.terminate()
        proc.wait(10)


# --- in a real browser
def screenshot(browser) -> None:
    """The README's picture of the page: written to docs/ when IMMICH_SYNC_SCREENSHOT=1 (a run that
    refreshes it), else only checked to be a picture."""
    from pathlib import Path

    data = browser.get_screenshot_as_png()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    if os.environ.get("IMMICH_SYNC_SCREENSHOT") == "1":
        (Path(__file__).parents[2] / "docs" / "review-page.png").write_bytes(data)


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_in_a_browser_pictures_side_by_side_keys_pin_and_nearby_applies_the_folder(page):
    import io

    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, state, (fake, tmp, _env, ids) = page
    browser = chromium()
    try:
        browser.get(f"{url}/?token={state.token}")
        wait = WebDriverWait(browser, 15)
        wait.until(lambda b: b.execute_script("return Array.from(document.images).every(i => i.complete)"))
        first = browser.find_element(By.ID, "card-1")
        assert "IMG_1.JPG" in first.find_element(By.TAG_NAME, "h2").text
        thumb = first.find_element(By.CSS_SELECTOR, "img.thumb")
        previews = first.find_elements(By.CSS_SELECTOR, ".candidate img.preview")
        immichs = Image.open(io.BytesIO(fake.thumbnails[ids["IMG_1.JPG"]])).size
        drawn = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", thumb)
        assert tuple(drawn) == immichs  # Immich's own picture, whole
        widths = [browser.execute_script("return arguments[0].naturalWidth", p) for p in previews]
        assert len(widths) == 2 and all(width > 0 for width in widths)
        shown = [c.text for c in first.find_elements(By.CSS_SELECTOR, ".candidate code")]
        assert shown == ["t/IMG_1.JPG", "u/IMG_1.JPG"]
        # the SHA1 is computed on request
        first.find_element(By.CSS_SELECTOR, "button.hash").click()
        wait.until(lambda b: "other bytes" in first.find_element(By.CSS_SELECTOR, "td.sha1").text)
        screenshot(browser)
        # a click pins the first candidate; the page then offers the same folder to the others
        first.find_element(By.CSS_SELECTOR, 'button.pin[data-n="1"]').click()
        wait.until(lambda b: b.find_elements(By.ID, "nearby"))
        assert "1 asset pinned" in browser.find_element(By.ID, "message").text
        nearby = browser.find_element(By.ID, "nearby").text
        assert "IMG_2.HEIC" in nearby and "t/IMG_2.HEIC" in nearby and "folder t" in nearby
        assert "IMG_4.JPG" not in nearby  # no candidate in t/
        browser.find_element(By.ID, "apply-nearby").click()
        wait.until(lambda b: not b.find_elements(By.ID, "nearby"))
        doc = cache_doc(tmp)["assets"]
        for name in ("IMG_1.JPG", "IMG_2.HEIC"):
            match = doc[ids[name]]["match"]
            assert (match["path"], match["pinned"]) == (str(tmp / "Photos" / "t" / name), True)
        # keys: 2 pins the active asset's second candidate
        assert "IMG_4.JPG" in browser.find_element(By.ID, "card-1").text
        browser.find_element(By.TAG_NAME, "body").send_keys("2")
        wait.until(lambda b: b.find_elements(By.ID, "empty"))
        match = cache_doc(tmp)["assets"][ids["IMG_4.JPG"]]["match"]
        assert (match["path"], match["method"]) == (str(tmp / "Photos" / "w" / "IMG_4.JPG"), "manual")
        # and u unpins, in the list of pinned assets
        browser.find_element(By.CSS_SELECTOR, 'a[data-kind="pinned"]').click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "button.unpin"))
        unpinned = browser.find_element(By.ID, "card-1").get_attribute("data-asset")
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        wait.until(lambda b: "1 asset unpinned" in b.find_element(By.ID, "message").text)
        assert cache_doc(tmp)["assets"][unpinned]["match"] is None
    finally:
        browser.quit()
