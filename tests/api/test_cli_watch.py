"""``galerakv watch`` as a subprocess against a real ``galerakv serve``: JSON lines, exit statuses, errors.

The server comes from ``live_server`` (SQLite; the MariaDB variants are marked ``cluster``).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from galerakv.cli.watch import server_url
from galerakv.client import Batch, Client
from tests.support.configs import write_config
from tests.support.net import free_port
from tests.support.server import ServerProcess

NS = "cli-watch"
LINE_TIMEOUT = 20.0  # seconds to wait for one line of output, at most
EXIT_TIMEOUT = 20.0


def galerakv(*args: str) -> list[str]:
    return [sys.executable, "-m", "galerakv.cli.main", *args]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Watcher:
    """A running ``galerakv watch``; its stdout lines arrive on a queue (read by a thread)."""

    def __init__(self, *args: str, cwd: Path) -> None:
        # Ctrl-C as in a terminal, even when the suite itself was started in the background
        # (a shell's background job inherits SIGINT ignored, and so would the watcher)
        self.proc = subprocess.Popen(galerakv("watch", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, cwd=cwd,
                                     preexec_fn=_default_sigint)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self) -> str:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no line from galerakv watch within {LINE_TIMEOUT} s") from None
        assert line is not None, f"galerakv watch ended early: {self.stop()}"
        return line

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``sig``; the exit status and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"galerakv watch did not exit within {EXIT_TIMEOUT} s of signal {sig}") from None
        assert self.proc.stderr is not None
        return self.proc.returncode, self.proc.stderr.read()


@pytest.fixture
def watchers() -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def factory(*args: str, cwd: Path) -> Watcher:
        watcher = Watcher(*args, cwd=cwd)
        started.append(watcher)
        return watcher

    yield factory
    for watcher in started:
        if watcher.proc.poll() is None:
            watcher.proc.kill()
            watcher.proc.wait()


@pytest.mark.parametrize(("sig", "where"), [(signal.SIGTERM, "--url"), (signal.SIGINT, "--config")],
                         ids=["SIGTERM-url", "SIGINT-config"])
def test_watch_prints_one_json_line_per_change_and_exits_0(live_server: Callable[..., ServerProcess],
                                                           watchers: Callable[..., Watcher], tmp_path: Path,
                                                           sig: int, where: str) -> None:
    server = live_server()
    with Client(server.url) as kv:
        start = kv.put(NS, "job/0", "before").revision
        assert start is not None
        # --config: the server's address is taken from the same file the server reads
        target = ["--url", server.url] if where == "--url" else ["--config", str(server.config_path)]
        watcher = watchers(NS, "--prefix", "job/", "--since", str(start), *target, cwd=tmp_path)
        first = kv.put(NS, "job/1", "queued")
        kv.put(NS, "other", "not under the prefix")
        assert json.loads(watcher.line()) == {"type": "put", "key": "job/1", "revision": first.revision,
                                              "etag": first.etag, "content_type": "text/plain; charset=utf-8",
                                              "value": "queued"}
        second = kv.put(NS, "job/1", b"\xff\x00", if_match=first.etag)
        kv.delete(NS, "job/1")
        results = kv.batch(NS, Batch().put("job/2", "a").put("job/3", json={"n": 3}))
        lines = [json.loads(watcher.line()) for _ in range(4)]
    assert lines == [
        {"type": "put", "key": "job/1", "revision": second.revision, "etag": second.etag,
         "content_type": "application/octet-stream", "value_base64": "/wA="},
        {"type": "delete", "key": "job/1", "revision": (second.revision or 0) + 1, "prev_etag": second.etag},
        {"type": "put", "key": "job/2", "revision": (results.revision or 0) - 1, "etag": results[0].etag,
         "content_type": "text/plain; charset=utf-8", "value": "a"},
        {"type": "put", "key": "job/3", "revision": results.revision, "etag": results[1].etag,
         "content_type": "application/json", "value": '{"n":3}'},
    ]
    status, stderr = watcher.stop(sig)
    assert status == 0, stderr
    assert "Traceback" not in stderr and stderr == ""


def test_keys_only(live_server: Callable[..., ServerProcess], watchers: Callable[..., Watcher],
                   tmp_path: Path) -> None:
    server = live_server()
    with Client(server.url) as kv:
        written = kv.put(NS, "k", "secret value")
    # since the revision before this write: on Galera the history holds earlier tests' changes too
    since = str((written.revision or 1) - 1)
    watcher = watchers(NS, "--since", since, "--keys-only", "--url", server.url, cwd=tmp_path)
    assert json.loads(watcher.line()) == {"type": "put", "key": "k", "revision": written.revision,
                                          "etag": written.etag, "content_type": "text/plain; charset=utf-8"}
    assert watcher.stop()[0] == 0


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(galerakv("watch", *args), capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_errors_are_one_line_and_exit_1(live_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = live_server()
    with Client(server.url) as kv:
        head = kv.put(NS, "k", "v").revision
    future = _one_error_line(_run(NS, "--since", "999999", "--url", server.url, cwd=tmp_path))
    assert future == f"error: 400 invalid_query: since=999999 is a future revision: the store is at revision {head}"
    not_a_number = _one_error_line(_run(NS, "--since", "-3", "--url", server.url, cwd=tmp_path))
    assert "--since is a revision" in not_a_number and "'-3'" in not_a_number
    bad_ns = _one_error_line(_run("bad ns", "--url", server.url, cwd=tmp_path))
    assert bad_ns.startswith("error: 400 invalid_namespace: ")
    # nothing listens there: the client's retries, then one line
    unreachable = _one_error_line(_run(NS, "--since", "0", "--url", f"http://127.0.0.1:{free_port()}", cwd=tmp_path))
    assert "no server answered after 8 attempts" in unreachable and "Connection refused" in unreachable


def test_compacted_is_one_line_and_exit_1(live_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = live_server(watch={"history_revisions": 1000, "compact_interval": 0.2})
    with Client(server.url) as kv:
        for i in range(5):  # 1280 revisions: the history keeps the last 1000
            ops = Batch()
            for j in range(256):
                ops.put(f"bulk/{i}/{j}", "v")
            kv.batch(NS, ops)
        deadline = time.monotonic() + 20
        while kv.status()["watch"]["compact_revision"] < 280:  # compaction runs every 0.2 s
            assert time.monotonic() < deadline, "no compaction within 20 s"
            time.sleep(0.05)
    line = _one_error_line(_run(NS, "--since", "1", "--url", server.url, cwd=tmp_path))
    assert line.startswith("error: 410 compacted: the history after revision 1 is no longer kept")


def test_a_config_error_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "galerakv.toml", {"server": {"port": 0}})
    result = _run(NS, "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "port" in result.stderr


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:8080"), ("0.0.0.0", "http://127.0.0.1:8080"),
                                           ("::", "http://[::1]:8080"), ("::1", "http://[::1]:8080"),
                                           ("kv.example.org", "http://kv.example.org:8080")])
def test_server_url_from_the_listen_address(host: str, url: str) -> None:
    assert server_url(host, 8080) == url
