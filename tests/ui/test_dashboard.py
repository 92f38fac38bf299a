"""The dashboard in a real headless Chromium against a real ``galerakv serve`` on SQLite: keys
(navigation, viewer, create, edit and delete with their preconditions), tokens, traffic,
keyboard and labels. The cluster page on real Galera nodes is tests/ui/test_cluster_page.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import screenshot, sign_in, text, visible, wait_for
from tests.support.configs import write_config
from tests.support.net import free_port
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

RW = "rw-token-for-the-dashboard-0001"
READ = "read-token-for-the-dashboard-01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server on SQLite with auth on: a read-write and a read-only token on namespace app."""
    folder = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    data = {"server": {"backend": "sqlite", "sqlite_path": str(folder / "kv.sqlite3"), "port": port},
            "auth": {"enabled": True, "tokens": [
                {"name": "writer", "token": RW, "scopes": {"app": "readwrite"}},
                {"name": "reader", "token": READ, "scopes": {"app": "read"}}]}}
    process = ServerProcess(write_config(folder / "galerakv.toml", data), port)
    process.start()
    api = httpx.Client(base_url=process.url + "/v1/ns/app/kv/", headers={"Authorization": f"Bearer {RW}"})
    for key, value, ctype in [("config/db/url", b"mariadb://127.0.0.1:3306", "text/plain"),
                              ("config/name", b"shop", "text/plain; charset=utf-8"),
                              ("readme.json", b'{"owner":"ops","replicas":3}', "application/json"),
                              ("blob", bytes(range(256)), "application/octet-stream")]:
        assert api.put(key, content=value, headers={"Content-Type": ctype}).status_code == 201
    yield process
    process.stop()


def _api(server: ServerProcess, token: str = RW) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/v1/ns/app/kv/", headers={"Authorization": f"Bearer {token}"})


def _open_namespace(page: WebDriver, ns: str = "app") -> None:
    field = page.find_element(By.ID, "ns")
    field.clear()
    field.send_keys(ns)
    page.find_element(By.ID, "ns-open").click()
    wait_for("the listing", lambda: visible(page, "#listing button"))


def _click(page: WebDriver, css: str) -> None:
    wait_for(css, lambda: visible(page, css))[0].click()


def test_keys_page_navigates_shows_values_and_creates(page: WebDriver, server: ServerProcess) -> None:
    sign_in(page, server.url, RW, "keys")
    assert "app" in [o.get_attribute("value") for o in page.find_elements(By.CSS_SELECTOR, "#ns-list option")]
    _open_namespace(page)
    # one delimiter level at a time: the folder config/ and the top-level keys
    assert [b.text for b in visible(page, "#listing button.prefix")] == ["config/"]
    assert [b.text for b in visible(page, "#listing button.key")] == ["blob", "readme.json"]
    _click(page, '#listing button[data-prefix="config/"]')
    wait_for("config/'s listing", lambda: [b.text for b in visible(page, "#listing button")] == ["db/", "name"])
    assert [b.text for b in visible(page, "#crumbs button")] == ["app:", "config/"]
    _click(page, '#listing button[data-key="config/name"]')
    wait_for("the value", lambda: text(page, "v-value") == "shop")
    assert text(page, "v-type") == "text/plain; charset=utf-8"
    assert text(page, "v-size") == "4 B"
    assert text(page, "v-etag").startswith('"')
    assert text(page, "v-expires") == "never"
    # JSON is pretty-printed, binary shown as hex (and base64 on demand)
    _click(page, '#crumbs button[data-prefix=""]')
    _click(page, '#listing button[data-key="readme.json"]')
    wait_for("pretty JSON", lambda: text(page, "v-value") == json.dumps({"owner": "ops", "replicas": 3}, indent=2))
    _click(page, '#listing button[data-key="blob"]')
    wait_for("a hex dump", lambda: text(page, "v-value").startswith("00000000  00 01 02 03"))
    assert not visible(page, "#edit"), "a binary value is not edited as text"
    page.find_element(By.CSS_SELECTOR, '#v-view option[value="base64"]').click()
    assert text(page, "v-value").startswith("AAECAwQFBgc")
    # create with If-None-Match: an existing key is refused, a new one stored
    page.find_element(By.CSS_SELECTOR, "#create-block summary").click()
    page.find_element(By.ID, "create-key").send_keys("blob")
    page.find_element(By.ID, "create-value").send_keys("overwrite?")
    page.find_element(By.ID, "create-submit").click()
    wait_for("the refusal", lambda: "already exists" in text(page, "keys-error"))
    assert _api(server).get("blob").content == bytes(range(256))
    page.find_element(By.ID, "create-key").clear()
    page.find_element(By.ID, "create-key").send_keys("notes")
    page.find_element(By.ID, "create-submit").click()
    wait_for("the new key opened", lambda: text(page, "viewer-key") == "notes")
    assert _api(server).get("notes").content == b"overwrite?"
    screenshot(page, "keys")


def test_an_edit_after_a_concurrent_change_shows_the_conflict_and_stores_nothing(
        page: WebDriver, server: ServerProcess) -> None:
    api = _api(server)
    api.put("config/db/url", content=b"mariadb://127.0.0.1:3306")
    sign_in(page, server.url, RW, "keys")
    _open_namespace(page)
    _click(page, '#listing button[data-prefix="config/"]')
    _click(page, '#listing button[data-prefix="config/db/"]')
    _click(page, '#listing button[data-key="config/db/url"]')
    _click(page, "#edit")
    box = page.find_element(By.ID, "edit-value")
    box.clear()
    box.send_keys("mariadb://mine")
    # another client changes the key meanwhile
    assert api.put("config/db/url", content=b"mariadb://theirs").status_code == 200
    theirs = api.get("config/db/url").headers["etag"]
    page.find_element(By.ID, "save").click()
    wait_for("the conflict", lambda: visible(page, "#conflict"))
    assert "someone changed this key" in text(page, "conflict-text")
    assert theirs in text(page, "conflict-text")
    assert text(page, "conflict-value") == "mariadb://theirs"
    assert api.get("config/db/url").content == b"mariadb://theirs", "the conflicting edit stored something"
    # delete with If-Match: the viewer now holds the current ETag, so it goes
    _click(page, "#delete")
    _click(page, "#delete-confirm")
    wait_for("the deletion", lambda: "Deleted config/db/url" in text(page, "keys-error"))
    assert api.get("config/db/url").status_code == 404


def test_a_long_level_pages_with_the_cursor_and_expiry_is_shown(page: WebDriver, server: ServerProcess) -> None:
    api = _api(server)
    ops = [{"op": "put", "key": f"many/{i:03d}", "value": "x"} for i in range(130)]
    assert api.post(server.url + "/v1/ns/app/batch", json={"ops": ops}).status_code == 200
    assert api.put("many/000", params={"ttl": 3600}, content=b"soon gone").status_code == 200
    sign_in(page, server.url, RW, "keys")
    _open_namespace(page)
    _click(page, '#listing button[data-prefix="many/"]')
    wait_for("the first page", lambda: len(visible(page, "#listing button.key")) == 100)
    _click(page, "#more")
    wait_for("the second page", lambda: len(visible(page, "#listing button.key")) == 130)
    assert not visible(page, "#more"), "no More button after the last page"
    keys = [b.get_attribute("data-key") for b in visible(page, "#listing button.key")]
    assert keys == [f"many/{i:03d}" for i in range(130)]
    _click(page, '#listing button[data-key="many/000"]')
    wait_for("the value", lambda: text(page, "v-value") == "soon gone")
    assert text(page, "v-expires") not in ("", "never")


def test_a_read_token_sees_but_cannot_edit(page: WebDriver, server: ServerProcess) -> None:
    sign_in(page, server.url, READ, "keys")
    assert "token reader" in text(page, "who")
    _open_namespace(page)
    _click(page, '#listing button[data-key="readme.json"]')
    wait_for("the value", lambda: '"owner"' in text(page, "v-value"))
    assert not visible(page, "#edit") and not visible(page, "#delete") and not visible(page, "#create-block")
    # forced from the page with the same token, the API refuses and nothing changes
    status = page.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/v1/ns/app/kv/readme.json', {method: 'PUT', body: 'x',
              headers: {'Authorization': 'Bearer ' + sessionStorage.getItem('galerakv-token')}})
          .then((r) => done(r.status));""")
    assert status == 403
    assert _api(server).get("readme.json").content == b'{"owner":"ops","replicas":3}'
    # the token is kept in the tab, never in the address
    assert READ not in page.current_url


def test_a_wrong_token_is_refused_at_sign_in(page: WebDriver, server: ServerProcess) -> None:
    page.get(server.url + "/ui/#/keys")
    field = wait_for("the sign-in form", lambda: visible(page, "#token"))[0]
    field.send_keys("not-a-token-of-this-server")
    page.find_element(By.ID, "signin-submit").click()
    wait_for("the refusal", lambda: "did not accept" in text(page, "signin-error"))
    assert not visible(page, "#page-keys")


def test_traffic_page_counts_a_bounded_load(page: WebDriver, server: ServerProcess) -> None:
    sign_in(page, server.url, RW, "traffic")
    before = int(wait_for("the counter", lambda: text(page, "requests-total")))
    with _api(server) as api:
        for i in range(300):  # bounded: 300 requests, then it stops
            assert api.put(f"load/{i % 20}", content=b"x" * 100).status_code in (200, 201)
        assert api.get("load/999").status_code == 404  # one error, by code
    wait_for("the counter to take in the load", lambda: int(text(page, "requests-total")) >= before + 301)
    wait_for("a line on the requests chart",
             lambda: page.find_element(By.CSS_SELECTOR, "#chart-rps polyline").get_attribute("points"))
    wait_for("not_found on the errors chart", lambda: "not_found" in text(page, "legend-errors"))
    assert "p99" in text(page, "legend-latency")
    screenshot(page, "traffic")


def test_sqlite_cluster_page_shows_the_single_file(page: WebDriver, server: ServerProcess) -> None:
    sign_in(page, server.url, RW, "cluster")
    wait_for("the SQLite facts", lambda: visible(page, "#sqlite-facts dd"))
    facts = text(page, "sqlite-facts")
    assert "Revision" in facts and "Write-ahead log" in facts
    assert "kv.sqlite3" not in facts, "a token without admin sees no file path"
    assert "SQLite on one machine: ready" in text(page, "verdict")


def test_every_control_is_labelled_and_reachable_by_keyboard(page: WebDriver, server: ServerProcess) -> None:
    sign_in(page, server.url, RW, "keys")
    unlabelled = page.execute_script("""
        const bad = [];
        for (const e of document.querySelectorAll('input, select, textarea, button, a[href], pre[tabindex]')) {
          const label = (e.labels && e.labels.length) || e.getAttribute('aria-label') ||
                        (e.tagName !== 'INPUT' && e.tagName !== 'SELECT' && e.tagName !== 'TEXTAREA' &&
                         e.textContent.trim());
          if (!label) bad.push(e.outerHTML.slice(0, 80));
        }
        return bad;""")
    assert unlabelled == []
    # from the top of the page, Tab reaches the page links in order and Enter follows one
    page.get(server.url + "/ui/#/cluster")
    wait_for("the cluster page", lambda: visible(page, "#page-cluster"))
    page.find_element(By.TAG_NAME, "body").click()
    focused: list[str] = []
    while "nav-keys" not in focused and len(focused) < 6:
        page.switch_to.active_element.send_keys(Keys.TAB)
        now = page.switch_to.active_element
        focused.append(now.get_attribute("id") or now.text)
    assert focused[-4:] == ["Skip to content", "nav-cluster", "nav-traffic", "nav-keys"], focused
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for("the keys page", lambda: visible(page, "#page-keys"))
    field = page.find_element(By.ID, "ns")
    field.clear()
    field.send_keys("app" + Keys.ENTER)
    wait_for("the listing", lambda: visible(page, "#listing button"))
    first = visible(page, "#listing button")[0]
    first.send_keys(Keys.ENTER)
    wait_for("the listing or viewer to follow the key", lambda: visible(page, "#crumbs button[data-prefix='config/']")
             or visible(page, "#viewer"))


def test_the_dashboard_is_off_with_its_key(tmp_path: Path) -> None:
    port = free_port()
    process = ServerProcess(write_config(tmp_path / "galerakv.toml", {
        "server": {"backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3"), "port": port},
        "ui": {"enabled": False}}), port)
    process.start()
    try:
        r = httpx.get(process.url + "/ui/")
        assert r.status_code == 404 and "ui.enabled" in r.json()["detail"]
    finally:
        process.stop()
