"""Debian's chromium, headless, driven through Selenium and Debian's chromium-driver, both
at their system paths: nothing is downloaded, and Selenium Manager never runs (it runs
only when no driver path is given)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ddm.fs import atomic_write

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 800)  # the README's screenshots
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--disable-gpu",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
    # the test plays the clip from script, without a user's click
    "--autoplay-policy=no-user-gesture-required",
    # nothing from the network: no component updates, no sync, no first-run fetches
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
)


def missing_parts() -> list[str]:
    """The Debian packages this machine lacks (`make test` installs them)."""
    parts = {"chromium": CHROMIUM, "chromium-driver": CHROMEDRIVER}
    return [package for package, path in parts.items() if not path.exists()]


@contextmanager
def chromium(folder: Path) -> Iterator[Any]:  # a selenium WebDriver
    """Headless chromium with its profile and driver log in `folder`, quit on leaving;
    skips the test when the Debian packages are missing."""
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    missing = missing_parts()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (`make test` installs them with apt-get)")
    with pytest.MonkeyPatch.context() as patch:
        # Selenium Manager downloads drivers and browsers it does not find: it must not run.
        patch.setenv("SE_OFFLINE", "true")
        patch.setattr(SeleniumManager, "binary_paths", _no_selenium_manager)
        driver = _start(folder / "profile", folder / "chromedriver.log")
    try:
        yield driver
    finally:
        driver.quit()


def _no_selenium_manager(*_: Any) -> None:
    raise AssertionError("Selenium Manager was asked for a driver: give the system's path")


def _start(profile: Path, driver_log: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # the console, read at the end: a refused script, style or image is logged there
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(driver_log))
    driver = webdriver.Chrome(service=service, options=options)
    _fit_viewport(driver)
    return driver


def viewport(driver: Any) -> tuple[int, int]:
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight];")
    return width, height


def _fit_viewport(driver: Any) -> None:
    """Grows the window by what its frame takes, so the page itself is WINDOW."""
    driver.get("about:blank")
    width, height = viewport(driver)
    driver.set_window_size(2 * WINDOW[0] - width, 2 * WINDOW[1] - height)


def save_screenshot(driver: Any, target: Path) -> None:
    """The viewport as a small PNG: 256 colours (a page is text and flat colour) and
    optimised; written atomically."""
    from PIL import Image

    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as out:
        small.save(out, format="PNG", optimize=True)
