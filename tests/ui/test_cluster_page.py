"""The cluster view on real Galera nodes behind a real HAProxy (the API suite's balanced cluster):
the dashboard's cluster page in headless Chromium, through a kill -9 of a node and its return, and
``galerakv cluster status --watch`` in a real terminal (a pty), quit with q.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import screenshot, sign_in, text, visible, wait_for
from tests.support.configs import merge, write_config
from tests.support.local_cluster import LocalCluster
from tests.support.net import free_port
from tests.support.server import ServerProcess, wait_ready

pytestmark = pytest.mark.cluster

ADMIN = "admin-token-for-the-dashboard-1"
READ = "read-token-for-the-dashboard-02"


@pytest.fixture
def cluster(galera_balancer_api_cluster: dict[str, Any]) -> tuple[LocalCluster, dict[str, Any]]:
    data = dict(galera_balancer_api_cluster)
    return data.pop("__cluster__"), data


@pytest.fixture(params=["balancer"])
def server(cluster: tuple[LocalCluster, dict[str, Any]], tmp_path: Path,
           request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A real ``galerakv serve`` on the cluster (through HAProxy unless a test asks for route
    "nodes" by indirect parametrization), auth on (an admin and a read token)."""
    local, data = cluster
    port = free_port()
    config = merge(data, {"server": {"backend": "mariadb", "route": request.param, "host": "127.0.0.1",
                                     "port": port},
                          "ui": {"cluster_config": str(local.config)},
                          "auth": {"enabled": True, "tokens": [
                              {"name": "ops", "token": ADMIN, "scopes": {}, "admin": True},
                              {"name": "reader", "token": READ, "scopes": {"*": "read"}}]}})
    process = ServerProcess(write_config(tmp_path / "galerakv.toml", config), port)
    process.start()
    wait_ready(process)
    yield process
    process.stop()


def _states(page: WebDriver) -> dict[str, str]:
    return {card.get_attribute("data-node"): card.get_attribute("data-state")
            for card in page.find_elements(By.CSS_SELECTOR, "#nodes article.node")}


def _all_synced(page: WebDriver) -> bool:
    return _states(page) == {"db1": "Synced", "db2": "Synced", "db3": "Synced"}


@pytest.mark.browser
def test_cluster_page_follows_a_killed_node_and_its_return(
        page: WebDriver, server: ServerProcess, cluster: tuple[LocalCluster, dict[str, Any]]) -> None:
    local, _ = cluster
    sign_in(page, server.url, ADMIN, "cluster")
    wait_for("three Synced nodes", lambda: _all_synced(page), timeout=20)
    wait_for("a healthy verdict", lambda: page.find_element(By.ID, "verdict").get_attribute("data-verdict")
             == "healthy")
    writers = page.find_elements(By.CSS_SELECTOR, "#nodes [data-writer]")
    assert len(writers) == 1, "exactly one node is marked as the writer"
    writer = writers[0].find_element(By.XPATH, "ancestor::article").get_attribute("data-node")
    assert writer == "db1"  # HAProxy's active server for writes; the others are its backups
    assert "127.0.0.55:3306" in text(page, "nodes"), "an admin token sees the node addresses"
    rows = page.find_elements(By.CSS_SELECTOR, "#balancer tbody tr")
    assert len(rows) == 6 and all("UP" in r.text for r in rows)
    assert "No problem found." in text(page, "doctor-summary")
    screenshot(page, "cluster")

    victim = "db3"
    local.kill9(victim)
    killed = time.monotonic()
    try:
        wait_for(f"{victim} shown down", lambda: _states(page).get(victim) == "down", timeout=5)
        wait_for("the doctor's node-down finding",
                 lambda: visible(page, f'#findings li[data-code="node-down"][data-node="{victim}"]'), timeout=5)
        shown = time.monotonic() - killed
        print(f"{victim} shown down with the doctor's node-down finding {shown:.1f} s after kill -9")
        assert shown < 5.5
        finding = page.find_element(By.CSS_SELECTOR, f'#findings li[data-code="node-down"][data-node="{victim}"]')
        assert "fix:" in finding.text
        assert page.find_element(By.ID, "verdict").get_attribute("data-verdict") == "degraded"
        screenshot(page, "cluster-node-down")
    finally:
        local.ok("up")  # the shared cluster comes back whatever happened above
    wait_for("three Synced nodes again", lambda: _all_synced(page), timeout=60)
    wait_for("the finding gone", lambda: not visible(page, '#findings li[data-code="node-down"]'), timeout=10)


@pytest.mark.browser
@pytest.mark.parametrize("server", ["balancer", "nodes"], indirect=True)
def test_a_read_token_sees_the_cluster_without_addresses(page: WebDriver, server: ServerProcess) -> None:
    sign_in(page, server.url, READ, "cluster")
    wait_for("three Synced nodes", lambda: _all_synced(page), timeout=20)
    assert "127.0.0." not in page.find_element(By.TAG_NAME, "main").text
    body = httpx.get(server.url + "/ui/api/cluster", headers={"Authorization": f"Bearer {READ}"}).json()
    assert "address" not in str(body)
    if body["server"]["route"] == "nodes":  # the writer is the server's own choice
        assert body["writer"] == body["server"]["writer"] and body["writer"] in ("db1", "db2", "db3")
    else:  # HAProxy's active server for writes
        assert body["writer"] == "db1"
    writers = page.find_elements(By.CSS_SELECTOR, "#nodes [data-writer]")
    assert [w.find_element(By.XPATH, "ancestor::article").get_attribute("data-node") for w in writers] == \
        [body["writer"]]
    assert httpx.get(server.url + "/ui/api/cluster").status_code == 401


def _read_until(fd: int, pattern: str, timeout: float, raw: bool = False) -> str:
    """Read until ``pattern`` shows (matched with escape sequences removed); all read so far,
    without them (with them when ``raw``)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the other side closed
                break
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
        if re.search(pattern, plain):
            return seen.decode(errors="replace") if raw else plain
    raise AssertionError(f"{pattern!r} not shown within {timeout} s; the terminal showed:\n{seen[-3000:]!r}")


def test_status_watch_redraws_in_a_terminal_and_quits_on_q(cluster: tuple[LocalCluster, dict[str, Any]]) -> None:
    local, _ = cluster
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 140, 0, 0))  # 60 rows, 140 columns
    env = {**os.environ, "COLUMNS": "140", "LINES": "60", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "galerakv.cli.main", "cluster", "status", "--watch",
                             "--config", str(local.config)],
                            stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True)
    os.close(terminal)
    try:
        first = _read_until(controller, r"doctor: no problem found", 20)
        for name in ("db1", "db2", "db3"):
            assert re.search(rf"{name}\s+127\.0\.0\.\d+:3306\s+Synced", first), first[-2000:]
        assert re.search(r"db1\s.*writer", first) and "verdict: healthy" in first
        # redrawn: a second frame comes, with a later time in its title
        stamp = re.findall(r"cluster galerakv_api_lb\s+(\d\d:\d\d:\d\d)", first)[-1]
        _read_until(controller, rf"cluster galerakv_api_lb\s+(?!{stamp})\d\d:\d\d:\d\d", 5)
        os.write(controller, b"q")
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)


def test_status_watch_off_a_terminal_prints_one_frame_a_second(cluster: tuple[LocalCluster, dict[str, Any]]) -> None:
    local, _ = cluster
    # Ctrl-C reaches it as on a terminal, even when this run inherited SIGINT ignored (a shell
    # starts background jobs so, and Python then keeps it ignored)
    proc = subprocess.Popen([sys.executable, "-m", "galerakv.cli.main", "cluster", "status", "--watch",
                             "--config", str(local.config)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        out = _read_until(proc.stdout.fileno(), r"(?s)(doctor: no problem found.*){2}", 20, raw=True)
        assert out.count("verdict: healthy") >= 2 and "\x1b[" not in out, "plain frames, one after the other"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
