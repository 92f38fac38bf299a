"""Reading a node's error log: the markers galerakv writes, and what they delimit.

galerakv appends a marker line before each start of ``mariadbd`` and before each
``--wsrep-recover`` run, so a reader can tell the current run from history.
"""

from __future__ import annotations

import re

from galerakv.galera.position import Position, parse_recovered

START_MARKER = "---- galerakv: starting"
RECOVER_MARKER = "---- galerakv: mariadbd --wsrep-recover"

_STATUS_CHANGE_RE = re.compile(r"Server status change (\w+) -> (\w+)")


def last_status_change(log_text: str) -> str | None:
    """The node's latest wsrep status (``joiner``, ``synced``, ...) from its log.

    Only lines after the last start marker count: earlier runs are history.
    """
    _, _, current = log_text.rpartition(START_MARKER)
    matches = _STATUS_CHANGE_RE.findall(current)
    return matches[-1][1] if matches else None


def recovered_since_last_start(log_text: str) -> Position | None:
    """The position the last ``--wsrep-recover`` run found, if none started since.

    A recovery that a later start superseded says nothing about where the node
    is now, so it does not count.
    """
    recover_at = log_text.rfind(RECOVER_MARKER)
    if recover_at < 0 or log_text.rfind(START_MARKER) > recover_at:
        return None
    return parse_recovered(log_text[recover_at:])
