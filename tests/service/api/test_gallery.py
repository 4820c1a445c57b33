"""The gallery page at `/`, in a real headless browser against a real `gan-serve` on the
shipped models: images the browser actually decoded, the seeds they show, regenerating one
image, new seeds, an interpolation strip, keyboard only, and no JavaScript error. /docs
renders in the same browser without one request to another host.

Debian's `chromium` and `chromium-driver` (scripts/test.sh installs them) driven by selenium;
nothing is downloaded. The page's screenshot goes to GALLERY_SCREENSHOT when set (the README's
docs/gallery.png comes from `GALLERY_SCREENSHOT=docs/gallery.png python -m pytest
tests/service/api/test_gallery.py`), else to the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from service.pipeline import seeding
from tests.support.gan_serve import gan_serve, poll

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[3]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1000",
]


def installed(*names: str) -> str:
    """The first of `names` on PATH; fail (never skip) when none is: the suite runs whole."""
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.fail(f"{' or '.join(names)} is not installed (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real gan-serve on the shipped models (models/), as a new user starts it."""
    log_path = tmp_path_factory.mktemp("gallery") / "server.log"
    with gan_serve({}, log_path, ready_timeout_s=120) as served:
        yield served.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = installed("chromium", "chromium-browser")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(installed("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    return poll(condition, timeout=timeout, interval=0.05)


def decoded(driver: WebDriver, selector: str) -> list[WebElement]:
    """The images under `selector` the browser has decoded (naturalWidth > 0)."""
    images: list[WebElement] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".filter(img => img.complete && img.naturalWidth > 0)",
        selector,
    )
    return images


def tiles(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#images .tile")


def shown_seeds(driver: WebDriver) -> list[str]:
    return [tile.find_element(By.CSS_SELECTOR, ".seed").text for tile in tiles(driver)]


def status(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "status").text)


def severe_log_entries(driver: WebDriver) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_hosts(driver: WebDriver) -> set[str]:
    """Hosts of every http(s) request the browser sent since the last call."""
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlsplit(message["params"]["request"]["url"])
            if url.scheme in ("http", "https"):
                hosts.add(url.hostname or "")
    return hosts


def test_the_gallery_generates_regenerates_and_interpolates_in_a_real_browser(
    server_url: str, browser: WebDriver, tmp_path: Path
) -> None:
    driver = browser
    driver.get(server_url + "/")
    # The first grid: 16 images of the default model, decoded by the browser.
    wait(lambda: len(decoded(driver, "#images img")) == 16)
    first = tiles(driver)[0].find_element(By.TAG_NAME, "img")
    assert driver.execute_script("return arguments[0].naturalWidth", first) == 28
    assert first.value_of_css_property("image-rendering") == "pixelated"
    assert first.size["width"] >= 4 * 28  # shown large
    assert (
        Select(driver.find_element(By.ID, "model")).first_selected_option.get_attribute("value")
        == "fashion-cdcgan"
    )

    # Keyboard only: a class, n and a seed, then Enter submits the form.
    label = driver.find_element(By.ID, "label")
    label.send_keys("7")  # typing in a select picks the option starting with it: "7 Sneaker"
    assert Select(label).first_selected_option.get_attribute("value") == "7"
    count = driver.find_element(By.ID, "n")
    count.clear()
    count.send_keys("8")
    seed = driver.find_element(By.ID, "seed")
    seed.clear()
    seed.send_keys("12345", Keys.ENTER)
    wait(lambda: "request seed 12345" in status(driver) and len(tiles(driver)) == 8)
    wait(lambda: len(decoded(driver, "#images img")) == 8)
    assert shown_seeds(driver) == [str(seeding.derive(12345, i)) for i in range(8)]
    captions = [tile.find_element(By.CSS_SELECTOR, ".caption").text for tile in tiles(driver)]
    assert all(caption.endswith("· Sneaker") for caption in captions), captions

    # Regenerate the third image alone: the same seed, the same image.
    third = tiles(driver)[2]
    before = third.find_element(By.TAG_NAME, "img").get_attribute("src")
    third.find_element(By.CSS_SELECTOR, ".regenerate").send_keys(Keys.ENTER)
    wait(lambda: third.get_attribute("data-regenerated") == "1")
    assert third.find_element(By.TAG_NAME, "img").get_attribute("src") == before
    assert third.find_element(By.CSS_SELECTOR, ".seed").text == str(seeding.derive(12345, 2))
    assert f"Regenerated seed {seeding.derive(12345, 2)}" in status(driver)

    # Its curl: the same request, which the service answers with a PNG.
    third.find_element(By.CSS_SELECTOR, ".copy").send_keys(Keys.ENTER)
    wait(lambda: "curl -X POST" in status(driver))
    command = status(driver).split(": ", 1)[1]
    url = command.split("'")[1]
    assert url.startswith(f"{server_url}/samples?n=1&")
    assert f"seed={seeding.derive(12345, 2)}" in url and "label=7" in url
    answer = httpx.post(url, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"

    # New seeds: a fresh request seed, eight new images, each with its own seed shown.
    driver.find_element(By.ID, "new-seeds").send_keys(Keys.ENTER)
    wait(lambda: "request seed 12345" not in status(driver) and "request seed" in status(driver))
    wait(lambda: len(decoded(driver, "#images img")) == 8)
    drawn = int(driver.find_element(By.ID, "seed").get_attribute("value") or "-1")
    assert shown_seeds(driver) == [str(seeding.derive(drawn, i)) for i in range(8)]

    # Pick two images (space on their checkboxes), interpolate: a strip from one to the other.
    picks = driver.find_elements(By.CSS_SELECTOR, "#images .pick")
    picks[0].send_keys(Keys.SPACE)
    picks[7].send_keys(Keys.SPACE)
    steps = driver.find_element(By.ID, "steps")
    steps.clear()
    steps.send_keys("8")
    driver.find_element(By.ID, "interpolate").send_keys(Keys.ENTER)
    wait(lambda: len(decoded(driver, "#strip img")) == 8)
    frames = driver.find_elements(By.CSS_SELECTOR, "#strip img")
    strip = [img.get_attribute("src") for img in frames]
    ends = [tiles(driver)[i].find_element(By.TAG_NAME, "img").get_attribute("src") for i in (0, 7)]
    assert [strip[0], strip[-1]] == ends  # the same label: the strip ends at both images
    assert "8 frames from seed" in status(driver)

    assert severe_log_entries(driver) == []
    assert requested_hosts(driver) <= {"127.0.0.1"}
    screenshot = Path(os.environ.get("GALLERY_SCREENSHOT") or tmp_path / "gallery.png")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, height + 120)  # the whole page, strip included
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000


def test_the_gallery_reports_a_bad_seed_without_a_javascript_error(
    server_url: str, browser: WebDriver
) -> None:
    driver = browser
    driver.get(server_url + "/")
    wait(lambda: len(decoded(driver, "#images img")) == 16)
    seed = driver.find_element(By.ID, "seed")
    seed.clear()
    seed.send_keys(str(seeding.MAX_SEED + 1), Keys.ENTER)
    wait(lambda: "error" in (driver.find_element(By.ID, "status").get_attribute("class") or ""))
    assert "(seed)" in status(driver)
    # The browser logs the 422 response itself; nothing else (no exception) may appear.
    entries = severe_log_entries(driver)
    assert all("/samples" in e["message"] and "422" in e["message"] for e in entries), entries


def test_the_api_docs_render_without_any_other_host(server_url: str, browser: WebDriver) -> None:
    driver = browser
    requested_hosts(driver)  # forget earlier requests
    driver.get(server_url + "/docs")
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"))
    assert "/samples" in driver.find_element(By.TAG_NAME, "body").text
    assert requested_hosts(driver) == {"127.0.0.1"}
    assert [e for e in severe_log_entries(driver) if "favicon" not in e["message"]] == []


def test_the_page_and_its_files_reference_no_other_host(server_url: str) -> None:
    for path in ("/", "/static/gallery.js", "/static/gallery.css"):
        response = httpx.get(server_url + path)
        assert response.status_code == 200, path
        assert "http://" not in response.text and "https://" not in response.text, path
    assert httpx.get(server_url + "/static/nope.js").status_code == 404
