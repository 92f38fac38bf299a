"""Fixtures of the dashboard tests: one headless Chromium for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import chromium, missing


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    reason = missing()
    assert reason is None, reason  # never skipped: scripts/test installs Chromium
    with chromium() as driver:
        yield driver


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser on a blank page, its tab storage (the signed-in token) cleared after the test."""
    yield browser
    browser.execute_script("sessionStorage.clear()")
    browser.get("about:blank")
