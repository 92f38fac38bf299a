"""A real headless Chromium (Debian's chromium and chromium-driver), driven with Selenium.

Nothing is downloaded at run time: the driver is /usr/bin/chromedriver (so Selenium Manager is
never asked), and Chromium runs with its background networking off. scripts/test installs
both packages.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"
T = TypeVar("T")


def missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing: apt-get install chromium chromium-driver (scripts/test does)"
    return None


@contextmanager
def chromium() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="galerakv-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except Exception as exc:  # the page is redrawing: a stale element, say
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s, still waiting for {what} (last: {last!r})")
        time.sleep(interval)


def visible(driver: WebDriver, css: str) -> list[WebElement]:
    return [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def screenshot(driver: WebDriver, name: str) -> Path:
    """A full-page PNG in docs/images, where docs/dashboard.md shows it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"dashboard-{name}.png"
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # type: ignore[attr-defined]
                           {"width": 1280, "height": max(600, min(height, 2400)), "deviceScaleFactor": 1,
                            "mobile": False})
    try:
        assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]
    return path


def sign_in(driver: WebDriver, url: str, token: str | None, page: str = "cluster") -> None:
    """Open the dashboard at ``page`` (signing in with ``token`` when the server asks for one)."""
    driver.get(f"{url}/ui/#/{page}")
    if token is not None:
        field = wait_for("the sign-in form", lambda: visible(driver, "#token"))[0]
        field.send_keys(token)
        driver.find_element(By.ID, "signin-submit").click()
    wait_for(f"the {page} page", lambda: visible(driver, f"#page-{page}"))
