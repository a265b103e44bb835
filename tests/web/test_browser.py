"""A real browser on the real `ddm serve`: headless chromium walks from the home page through
datasets, videos, runs and a run to its evaluation, clicks the most confident error, and on
that video's page plays the clip (an H.264 mp4 from ../shared/media) and checks that every
image loaded. The catalog was filled by the CLI end to end (`evaluated_clips`).

Each page visited is saved as a screenshot in $DDM_SCREENSHOT_DIR, else in the test's
temporary folder; `make screenshots` writes the README's into docs/screenshots/."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import WINDOW, chromium, save_screenshot, viewport
from tests.web.conftest import HOSTILE, Catalog
from tests.web.serving import fetch_when_up, free_port, start_serve, stop

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

PLAYED_SECONDS = 0.5  # of the clip, played in the page
WAIT_SECONDS = 30
# The figures each page must show (each a PNG drawn by the server from the catalog).
RUN_IMAGES = ("img.curves",)
EVALUATION_IMAGES = ("img.figure", "img.face")  # ROC and confusion; a face per prediction
VIDEO_IMAGES = ("img.strip", "img.timeline")  # sampled frames with boxes; style flow
# The first row of the predictions table (most wrong first) that the detector got wrong.
FIRST_WRONG_PREDICTION = (
    "(//h2[starts-with(normalize-space(), 'Predictions')]/following-sibling::table[1]"
    "/tbody/tr[td[contains(concat(' ', @class, ' '), ' wrong ')]])[1]//a"
)
# Its first row whatever the verdict: where a CPU's numerics let the detector get every clip
# right, the most wrong prediction is the least confident correct one.
FIRST_PREDICTION = (
    "(//h2[starts-with(normalize-space(), 'Predictions')]/following-sibling::table[1]"
    "/tbody/tr)[1]//a"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        driver.set_page_load_timeout(WAIT_SECONDS)
        yield driver


@pytest.fixture(scope="module")
def served(evaluated_clips: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of `ddm serve --port N` on the filled catalog."""
    port = free_port()
    server = start_serve(tmp_path_factory.mktemp("serve"), evaluated_clips.env, "--port", str(port))
    address = f"http://127.0.0.1:{port}"
    try:
        fetch_when_up(server, f"{address}/api/datasets")
        yield address
    finally:
        code, _, stderr = stop(server)
    assert code in (0, 130) and "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("DDM_SCREENSHOT_DIR")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


def test_from_the_evaluation_to_its_most_confident_error_playing_in_the_page(
    browser: Any, served: str, evaluated_clips: Catalog, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    shoot = _Shooter(browser, screenshots)
    browser.get(served + "/")
    shoot("index", "ddm")
    _click(browser, By.LINK_TEXT, "Datasets")
    shoot("datasets", "Datasets")
    assert "clips" in _cells(browser)
    _click(browser, By.LINK_TEXT, "videos")
    shoot("videos", "Videos")
    assert HOSTILE in _cells(browser)  # the name shown as text; the shooter saw no alert
    _click(browser, By.LINK_TEXT, "runs")
    shoot("runs", "Runs")
    _click(browser, By.CSS_SELECTOR, f'a[href="/runs/{evaluated_clips.run_id}"]')
    shoot("run", f"Run {evaluated_clips.run_id}", RUN_IMAGES)
    _click(browser, By.CSS_SELECTOR, f'a[href="/evaluations/{evaluated_clips.evaluation_id}"]')
    shoot("evaluation", f"Evaluation {evaluated_clips.evaluation_id}", EVALUATION_IMAGES)

    error_id, is_wrong = _most_wrong(served, evaluated_clips.evaluation_id)
    first_wrong = browser.find_element(
        By.XPATH, FIRST_WRONG_PREDICTION if is_wrong else FIRST_PREDICTION
    )
    assert first_wrong.get_attribute("href") == f"{served}/videos/{error_id}"
    first_wrong.click()
    assert browser.current_url == f"{served}/videos/{error_id}"
    _check_playing(browser)
    shoot("video", f"Video {error_id}", VIDEO_IMAGES)
    shoot.scrolled_to("video-figures", VIDEO_IMAGES[0])

    _click(browser, By.LINK_TEXT, "jobs")
    shoot("jobs", "Jobs")
    assert {"extract", "train", "evaluate"} <= set(_cells(browser).split())
    _check_console(browser)


class _Shooter:
    """Checks that the page is the one expected, with no dialog up (a page that ran a
    script from a file name would have raised one) and every image loaded, then saves its
    screenshot."""

    def __init__(self, driver: Any, folder: Path) -> None:
        self.driver = driver
        self.folder = folder

    def __call__(self, name: str, heading: str, images: tuple[str, ...] = ()) -> None:
        from selenium.common.exceptions import NoAlertPresentException
        from selenium.webdriver.common.by import By

        with pytest.raises(NoAlertPresentException):
            self.driver.switch_to.alert  # noqa: B018  (reading it is the check)
        assert self.driver.find_element(By.TAG_NAME, "h1").text.startswith(heading)
        _check_images(self.driver, images)
        assert viewport(self.driver) == WINDOW
        save_screenshot(self.driver, self.folder / f"{name}.png")

    def scrolled_to(self, name: str, selector: str) -> None:
        """A second screenshot of the page, from the heading above `selector` down (figures
        below the fold)."""
        from selenium.webdriver.common.by import By

        element = self.driver.find_element(By.CSS_SELECTOR, selector)
        self.driver.execute_script(
            "let e = arguments[0]; while (e.previousElementSibling && e.tagName !== 'H2')"
            " e = e.previousElementSibling; e.scrollIntoView({block: 'start'});",
            element,
        )
        save_screenshot(self.driver, self.folder / f"{name}.png")


def _click(driver: Any, by: str, target: str) -> None:
    driver.find_element(by, target).click()


def _cells(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(cell.text for cell in driver.find_elements(By.TAG_NAME, "td"))


def _most_wrong(served: str, evaluation_id: int) -> tuple[int, bool]:
    """The video the evaluation's JSON twin lists first among the wrong predictions (it
    lists them most wrong first), or its first prediction where none is wrong; and which."""
    with urllib.request.urlopen(f"{served}/api/evaluations/{evaluation_id}") as response:
        predictions = json.load(response)["predictions"]
    assert predictions, "the evaluation stored no predictions"
    wrong = [p for p in predictions if p["label"] and p["label"] != p["predicted_label"]]
    return (wrong or predictions)[0]["video_id"], bool(wrong)


def _check_playing(driver: Any) -> None:
    """The `<video>` decodes and plays: play() resolves and its time advances."""
    from selenium.webdriver.support.ui import WebDriverWait

    refused = driver.execute_script(
        "const v = document.querySelector('video'); v.muted = true;"
        "return v.play().then(() => null, e => e.name + ': ' + e.message);"
    )
    assert refused is None, f"the browser cannot play the clip: {refused}"
    state = "const v = document.querySelector('video');"
    try:
        WebDriverWait(driver, WAIT_SECONDS).until(
            lambda d: d.execute_script(state + "return v.currentTime;") >= PLAYED_SECONDS
        )
    except Exception as exc:
        facts = driver.execute_script(
            state + "return [v.currentTime, v.readyState, v.networkState, v.error && "
            "v.error.message, v.videoWidth];"
        )
        message = f"the clip did not play (time, ready, network, error, width): {facts}"
        raise AssertionError(message) from exc
    width = driver.execute_script(state + "v.pause(); return v.videoWidth;")
    assert width > 0, "playing, but no frame was decoded"


def _check_images(driver: Any, required: tuple[str, ...]) -> None:
    """Every `<img>` on the page loaded (lazy ones below the fold too: they are asked to
    load now), and each selector in `required` found one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for selector in required:
        assert driver.find_elements(By.CSS_SELECTOR, selector), f"no image {selector}"
    driver.execute_script("for (const i of document.images) i.loading = 'eager';")
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete);")
    )
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src);"
    )
    assert not broken, f"images that did not load: {broken}"


def _check_console(driver: Any) -> None:
    """Nothing refused by the Content-Security-Policy, no failed request, no script error."""
    severe = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
