"""``galerakv cluster doctor``: find the common Galera mistakes, show the evidence, say the fix.

Three steps, each in its own module:

- :mod:`~galerakv.cluster.doctor.collect` reads the machine into frozen facts
  (:mod:`~galerakv.cluster.doctor.facts`), tolerant of nodes that are down;
- :mod:`~galerakv.cluster.doctor.checks` and :mod:`~galerakv.cluster.doctor.live`
  turn facts into findings, as pure functions;
- the codes, severities, symptoms and fixes are data in
  :mod:`~galerakv.cluster.doctor.catalogue`, which also generates
  docs/troubleshooting.md.

``up`` calls :func:`preflight` before it starts anything: the offline checks on
the configuration it is about to write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from galerakv.cluster.doctor import checks as doctor_checks
from galerakv.cluster.doctor import live as doctor_live
from galerakv.cluster.doctor.catalogue import CATALOGUE, SEVERITIES, Finding
from galerakv.cluster.doctor.collect import collect
from galerakv.cluster.doctor.facts import Facts
from galerakv.cluster.render.node import render_all
from galerakv.cluster.transport.base import Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError

Check = Callable[[Facts], list[Finding]]

CHECKS: tuple[Check, ...] = (
    doctor_checks.check_node_count,
    doctor_checks.check_settings,
    doctor_checks.check_files,
    doctor_checks.check_maintenance,
    doctor_checks.check_ports_in_use,
    doctor_checks.check_bootstrap,
    doctor_checks.check_backups,
    doctor_live.check_logs,
    doctor_live.check_liveness,
    doctor_live.check_membership,
    doctor_live.check_ports_closed,
    doctor_live.check_performance,
    doctor_live.check_schema,
    doctor_live.check_tls,
)


@dataclass(frozen=True)
class DoctorReport:
    cluster: str
    offline: bool
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    @property
    def critical(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "critical")

    @property
    def ok(self) -> bool:
        """No critical finding (the command's exit status)."""
        return not self.critical

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    def codes(self, node: str | None = "*") -> set[str]:
        """Codes found (on ``node`` when given; ``None`` for cluster-wide findings)."""
        return {f.code for f in self.findings if node == "*" or f.node == node}

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "offline": self.offline, "ok": self.ok,
                "counts": self.counts(), "findings": [f.to_dict() for f in self.findings],
                "notes": list(self.notes)}


def diagnose(facts: Facts, checks: Sequence[Check] = CHECKS) -> DoctorReport:
    """Every check on the facts; findings merged per (code, node), worst first."""
    merged: dict[tuple[str, str | None], Finding] = {}
    for check in checks:
        for f in check(facts):
            if facts.offline and not CATALOGUE[f.code].offline:
                continue
            key = (f.code, f.node)
            if key in merged:
                old = merged[key]
                worse = min(old.severity, f.severity, key=SEVERITIES.index)
                evidence = old.evidence + tuple(e for e in f.evidence if e not in old.evidence)
                merged[key] = replace(old, severity=worse, evidence=evidence)
            else:
                merged[key] = f
    order = {n.name: i for i, n in enumerate(facts.nodes)}
    findings = sorted(merged.values(), key=lambda f: (SEVERITIES.index(f.severity),
                                                      order.get(f.node or "", -1), f.code))
    return DoctorReport(facts.cluster_name, facts.offline, tuple(findings), facts.notes)


def run(settings: Settings, transport: Transport, *, offline: bool = False) -> DoctorReport:
    return diagnose(collect(settings, transport, offline=offline))


def preflight(settings: Settings, transport: Transport,
              planned: Mapping[str, Mapping[str, str]]) -> DoctorReport:
    """The offline checks ``up`` runs first, on the configuration it is about to write."""
    return diagnose(collect(settings, transport, offline=True, planned=planned))


def check_before_start(settings: Settings, transport: Transport,
                       stopped: Sequence[NodeSettings], tolerate: Sequence[str] = ()) -> None:
    """Raise when the offline checks find anything critical (``up`` calls this first),
    leaving out the codes in ``tolerate``.

    The stopped nodes are checked with the configuration ``up`` is about to
    write for them; running nodes with their files as they are.
    """
    rendered = render_all(settings, transport.ctx)
    report = preflight(settings, transport, {n.name: rendered[n.name] for n in stopped})
    critical = [f for f in report.critical if f.code not in tolerate]
    if not critical:
        return
    lines = [f"  - {f.code} {f.node or '(cluster)'}: {f.summary}\n"
             + "".join(f"      {e}\n" for e in f.evidence[:3]) + f"      fix: {f.fix}"
             for f in critical]
    raise ClusterError("refusing to start: `galerakv cluster doctor --offline` found "
                       f"{len(lines)} critical problem(s):\n" + "\n".join(lines))


def format_text(report: DoctorReport) -> str:
    lines = [f"doctor: cluster {report.cluster}"
             + (" (offline: galerakv.toml, rendered configs and files only)" if report.offline
                else "")]
    for f in report.findings:
        lines.append(f"{f.severity.upper():8}  {f.code}  {f.node or '(cluster)'}: {f.summary}")
        lines += [f"    evidence: {e}" for e in f.evidence]
        lines.append(f"    fix: {f.fix}")
    for note in report.notes:
        lines.append(f"note: {note}")
    c = report.counts()
    if not report.findings:
        lines.append("no problem found")
    lines.append(f"{c['critical']} critical, {c['warning']} warning(s), {c['info']} info"
                 " — docs/troubleshooting.md explains every code")
    return "\n".join(lines)
