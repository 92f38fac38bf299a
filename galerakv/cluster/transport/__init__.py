"""Where nodes run: ``local`` processes on loopback addresses, or ``ssh`` hosts."""

from __future__ import annotations

from galerakv.cluster.render.node import RenderContext, detect_context
from galerakv.cluster.transport.base import Preflight, QueryFailed, Report, Transport
from galerakv.config import Settings

__all__ = ["Preflight", "QueryFailed", "Report", "Transport", "make_transport"]


def make_transport(settings: Settings, ctx: RenderContext | None = None) -> Transport:
    """The transport ``cluster.transport`` names, for these settings."""
    if settings.cluster.transport == "local":
        from galerakv.cluster.transport.local import LocalTransport

        return LocalTransport(settings, ctx or detect_context(require_provider=False))
    from galerakv.cluster.transport.ssh import SshTransport, ssh_context

    return SshTransport(settings, ctx or ssh_context())
