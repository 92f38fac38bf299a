"""Run the commands of a document (tests/support/markdown.py) as a reader would, in one terminal.

Each command runs in its own ``bash`` with ``set -o pipefail``, in a working
directory the test owns, with the ``galerakv`` of the Python running the tests
first on PATH and no ``GALERAKV_CONFIG``. What a command leaves for the next
one carries over as in a terminal: its shell variables (``ETAG=$(curl ...)``:
every assignment is exported with ``set -a`` and read back after the command)
and its working directory (``cd``). Only standard output is compared with the
output the document shows (tests/support/shown.py); standard error (curl's
progress meter when its output is not a terminal) is shown when a command fails.

``DocShell(substitute={...})`` replaces text in every command before it runs
(``127.0.0.1:8080`` with the address of the server the test started), and
``drop_sudo=True`` removes a leading ``sudo `` (the suite already runs as root,
and ``sudo`` may not be installed).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.markdown import Command
from tests.support.shown import mismatch

_SUDO = re.compile(r"(^|[;&|]\s*|\n\s*)sudo\s+")


@dataclass(frozen=True)
class Ran:
    command: Command
    text: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def report(self) -> str:
        shown = self.command.shown if self.command.shown is not None else "(nothing shown)"
        return (f"{self.command.where}: $ {self.text}\n(exit {self.returncode}, {self.seconds:.1f} s)\n"
                f"--- the document shows:\n{shown}\n--- standard output:\n{self.stdout}"
                f"--- standard error:\n{self.stderr}")


def venv_bin() -> Path:
    """The directory of the Python running the tests, which holds its ``galerakv`` command."""
    directory = Path(sys.executable).parent
    if not (directory / "galerakv").exists():
        raise AssertionError(f"no galerakv command next to {sys.executable}: pip install -e . first")
    return directory


class DocShell:
    """A terminal for one test: a working directory, an environment, what the commands left."""

    def __init__(self, cwd: Path, *, substitute: dict[str, str] | None = None, drop_sudo: bool = False) -> None:
        self.cwd = cwd
        self.substitute = dict(substitute or {})
        self.drop_sudo = drop_sudo
        env = {k: v for k, v in os.environ.items() if k != "GALERAKV_CONFIG"}
        env["PATH"] = f"{venv_bin()}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        self.env = env
        self.log: list[Ran] = []

    def text_of(self, command: Command) -> str:
        """The command as it will run: substitutions made, ``sudo`` dropped if asked."""
        text = command.text
        for old, new in self.substitute.items():
            text = text.replace(old, new)
        if self.drop_sudo:
            text = _SUDO.sub(r"\1", text)
        return text

    def run(self, command: Command, timeout: float = 60) -> Ran:
        """Run ``command``; its result, whatever it is."""
        text = self.text_of(command)
        state, where = self.cwd / ".doc-shell-env", self.cwd / ".doc-shell-cwd"
        script = (f"set -o pipefail\nset -a\ncd {_quote(self._workdir())} || exit 97\n{text}\n"
                  f"__doc_rc=$?\nenv -0 > {_quote(str(state))}\npwd > {_quote(str(where))}\nexit $__doc_rc\n")
        began = time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
            ran = Ran(command, text, done.returncode, done.stdout, done.stderr, time.monotonic() - began)
        except subprocess.TimeoutExpired as e:
            ran = Ran(command, text, -1, _str(e.stdout), _str(e.stderr) + f"\n(timed out after {timeout} s)",
                      time.monotonic() - began)
        self._carry_over(state, where)
        self.log.append(ran)
        return ran

    def check(self, command: Command, timeout: float = 60) -> Ran:
        """Run ``command``: it must exit 0 and print what the document shows (when it shows something)."""
        ran = self.run(command, timeout)
        if ran.returncode != 0:
            raise AssertionError(f"the command failed\n{ran.report()}")
        if command.shown is not None:
            reason = mismatch(command.shown, ran.stdout)
            if reason:
                raise AssertionError(f"the output differs from the document: {reason}\n{ran.report()}")
        return ran

    def check_stream(self, command: Command, timeout: float = 15) -> Ran:
        """Run a command that never ends (a watch) until it has printed what the document shows, then Ctrl-C.

        It must print that within ``timeout`` seconds; what it prints until then is compared.
        """
        assert command.shown is not None, f"{command.where}: a stream is checked against output shown"
        text = self.text_of(command)
        out, err = self.cwd / ".doc-shell-stream.out", self.cwd / ".doc-shell-stream.err"
        began = time.monotonic()
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.Popen(["bash", "-c", f"set -o pipefail\ncd {_quote(self._workdir())}\nexec {text}"],
                                    cwd=self.cwd, env=self.env, stdout=stdout, stderr=stderr,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                while time.monotonic() - began < timeout and proc.poll() is None:
                    if mismatch(command.shown, out.read_text()) is None:
                        break
                    time.sleep(0.1)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        ran = Ran(command, text, proc.returncode, out.read_text(), err.read_text(), time.monotonic() - began)
        self.log.append(ran)
        reason = mismatch(command.shown, ran.stdout)
        if reason:
            raise AssertionError(f"the stream did not print what the document shows within {timeout} s: "
                                 f"{reason}\n{ran.report()}")
        return ran

    def start(self, command: Command, log: Path) -> subprocess.Popen[bytes]:
        """Start a command that runs until stopped (``galerakv serve``), its output to ``log``; the caller stops it."""
        with log.open("ab") as out:
            return subprocess.Popen(["bash", "-c", f"cd {_quote(self._workdir())}\nexec {self.text_of(command)}"],
                                    cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def _workdir(self) -> str:
        return self.env.get("__DOC_SHELL_PWD", str(self.cwd))

    def _carry_over(self, state: Path, where: Path) -> None:
        if state.exists():
            pairs = (item.split("=", 1) for item in state.read_text().split("\0") if "=" in item)
            env = {k: v for k, v in pairs if k not in ("_", "SHLVL", "PWD", "OLDPWD", "__doc_rc")}
            self.env = env
            state.unlink()
        if where.exists():
            self.env["__DOC_SHELL_PWD"] = where.read_text().strip()
            where.unlink()


@contextlib.contextmanager
def serving(shell: DocShell, command: Command, port: int, timeout: float = 60) -> Iterator[str]:
    """``command`` (a ``galerakv serve``) started by ``shell``, ready on ``port``; its URL. Stopped on exit."""
    log = shell.cwd / f"serve-{port}.log"
    proc = shell.start(command, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{command.where}: $ {shell.text_of(command)} exited:\n{log.read_text()}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{command.where}: not ready after {timeout} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()  # the shell exec'd the command: this is galerakv serve itself
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _str(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
