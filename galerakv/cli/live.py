"""``galerakv cluster status --watch``: the dashboard's cluster view in the terminal, redrawn every second.

Drawn with rich (tables, colours, redrawing in place without flicker); the reading is the
toolkit's overview with the doctor, as on the dashboard's cluster page. q (or Ctrl-C) quits.
Off a terminal the frames follow each other, one a second, until Ctrl-C (SIGINT).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from galerakv.cluster.operations.overview import Overview, overview
from galerakv.cluster.transport import make_transport
from galerakv.config import Settings

INTERVAL = 1.0
_VERDICT_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "down": "bold red"}
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def render(view: Overview, width: int = 120) -> RenderableType:
    """One frame: the nodes, the verdict, the balancer's view and the doctor's findings (node
    addresses only on a terminal at least 110 columns wide)."""
    wide = width >= 110
    writer = view.balancer.writer if view.balancer else None
    nodes = Table(title=f"cluster {view.cluster}  {time.strftime('%H:%M:%S', time.localtime(view.taken_at))}",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for column in ("node", "address", "state", "Primary", "ready", "size", "seqno", "fc paused", "recv q",
                   "cert fail", "role"):
        if column != "address" or wide:
            nodes.add_column(column, no_wrap=True, min_width=11 if column == "role" else None)
    for st in view.nodes:
        role = " ".join(r for r in ("writer" if st.name == writer else "",
                                    "maintenance" if st.name in view.maintenance else "") if r)
        address = [view.addresses.get(st.name, "")] if wide else []
        if not st.reachable:
            nodes.add_row(st.name, *address, Text("DOWN", "bold red"), "-", "-", "-", "-", "-", "-", "-", role)
            continue
        serving = st.serving()
        nodes.add_row(st.name, *address, Text(st.state, "green" if serving.ok else "yellow"),
                      "yes" if st.primary else Text(st.cluster_status or "no", "red"),
                      "yes" if st.ready else Text("no", "red"), str(st.cluster_size), str(st.last_committed),
                      f"{st.flow_control_paused * 100:.0f}%", str(st.recv_queue), str(st.cert_failures), role)
    parts: list[RenderableType] = [nodes, Text(f"verdict: {view.verdict.verdict}",
                                               _VERDICT_STYLE.get(view.verdict.verdict, "bold"))]
    parts += [Text(f"  - {reason}") for reason in view.verdict.reasons]
    lb = view.balancer
    if lb is not None:
        table = Table(title=f"balancer {lb.kind} on {lb.address}: {'running' if lb.running else 'NOT running'}",
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
        for column in ("listener", "server", "role", "state", "last check", "sessions"):
            table.add_column(column, no_wrap=True)
        for s in lb.servers:
            role = "backup" if s.backup else ("active" if s.listener == "rw" else "reader")
            table.add_row(s.listener, s.server, role,
                          Text(s.status, "green" if s.up else "red"), f"{s.check} {s.check_detail}".strip(),
                          str(s.sessions))
        parts.append(table)
        parts += [Text(f"  - {problem}", "yellow") for problem in lb.problems]
    if view.doctor is not None:
        findings = view.doctor.findings
        parts.append(Text(f"doctor: {len(findings)} finding(s)" if findings else "doctor: no problem found",
                          "bold"))
        for f in findings:
            parts.append(Text.assemble((f"{f.severity.upper():8} ", _SEVERITY_STYLE.get(f.severity, "")),
                                       (f.code, "bold"), f"  {f.node or '(cluster)'}: {f.summary}"))
            parts.append(Text(f"          fix: {f.fix}", "dim"))
    elif view.doctor_error:
        parts.append(Text(f"doctor could not run: {view.doctor_error}", "yellow"))
    parts.append(Text("q or Ctrl-C to quit", "dim"))
    return Group(*parts)


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str]]:
    """A function waiting up to N seconds for one key press (no Enter needed) on a terminal; off a
    terminal it only sleeps (Ctrl-C still ends the view)."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else -1
    if fd < 0:
        def sleep(seconds: float) -> str:
            time.sleep(seconds)
            return ""

        yield sleep
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def key(seconds: float) -> str:
        ready, _, _ = select.select([fd], [], [], seconds)
        return os.read(fd, 1).decode(errors="replace") if ready else ""

    try:
        yield key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def watch(settings: Settings, console: Console | None = None) -> None:
    """Redraw the cluster view every second until q or Ctrl-C. Off a terminal (a pipe, a log
    file) each frame is printed after the last, plain, so the output is a log of the readings."""
    transport = make_transport(settings)
    console = console or Console()
    if not console.is_terminal:
        with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            while True:
                began = time.monotonic()
                console.print(render(overview(settings, transport, with_doctor=True), console.width))
                console.print()
                console.file.flush()
                time.sleep(max(0.0, began + INTERVAL - time.monotonic()))
        return
    with contextlib.suppress(KeyboardInterrupt), _keys() as key, \
            Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            began = time.monotonic()
            live.update(render(overview(settings, transport, with_doctor=True), console.width), refresh=True)
            while (left := began + INTERVAL - time.monotonic()) > 0:
                if key(left).lower() == "q":
                    return
