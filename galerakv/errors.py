"""The galerakv error tree.

Every error a caller of galerakv needs to handle derives from ``GalerakvError``;
driver and library exceptions are translated at the boundary where they occur
(backends translate database errors, the config loader translates TOML errors),
so callers never catch a third-party exception.

    GalerakvError
    ├── ConfigError                 the metadata file is missing or invalid (all issues at once)
    ├── StoreError                  raised by a backend
    │   ├── InvalidRequest          the operation itself is malformed (4xx)
    │   ├── BackendUnavailable      the database cannot be reached or is not ready (503)
    │   ├── OutcomeUnknown          a write was sent but its result is not known (503)
    │   └── Compacted               history older than the retention window was asked for (410)
    ├── ClusterError                a cluster operation failed (cluster toolkit)
    │   └── NodeError               one named node failed; carries its log tail
    └── BackupError                 a backup is unreadable, damaged, or cannot go where asked

Conditional failures (If-Match, If-None-Match) are not exceptions: the store
returns them as results, because a failed compare is an answer, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass


class GalerakvError(Exception):
    """Base of every error galerakv raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in the metadata configuration file."""

    file: str
    key: str
    value: object
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, object]:
        """The issue as JSON values (``value`` is None when the key is missing: TOML has no null)."""
        return {"file": self.file, "key": self.key, "value": None if self.value is _MISSING else self.value,
                "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        value = "" if self.value is _MISSING else f" = {self.value!r}"
        text = f"{self.file}: {self.key}{value}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: object = _Missing()
MISSING = _MISSING


class ConfigError(GalerakvError):
    """The metadata configuration file is invalid; carries every issue found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the configuration:"
        return "\n".join([head, *(f"  - {issue}" for issue in self.issues)])


class StoreError(GalerakvError):
    """Base of errors raised by a storage backend."""

    code = "store_error"


class InvalidRequest(StoreError):
    """The operation is malformed; the caller must change it.

    ``code`` is the stable problem code the HTTP layer answers with.
    """

    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class BackendUnavailable(StoreError):
    """The database cannot serve the request now; retrying later may work."""

    code = "backend_unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(BackendUnavailable):
    """A write reached the database but its commit was not confirmed."""

    code = "outcome_unknown"


class Compacted(StoreError):
    """The changes after a revision were asked for, but history up to a later one is gone."""

    code = "compacted"

    def __init__(self, since: int, compact_revision: int, revision: int) -> None:
        super().__init__(f"the history after revision {since} is no longer kept: changes up to revision "
                         f"{compact_revision} were compacted; read the keys again, then watch from a "
                         f"revision taken before that read (the store is at revision {revision})")
        self.since = since
        self.compact_revision = compact_revision
        self.revision = revision


class ClusterError(GalerakvError):
    """A cluster toolkit operation failed."""


class NodeError(ClusterError):
    """One node failed to start, stop or answer; carries the tail of its log."""

    def __init__(self, node: str, message: str, log_tail: str = "") -> None:
        self.node = node
        self.log_tail = log_tail
        text = f"{node}: {message}"
        if log_tail:
            text += "\n--- last lines of its log ---\n" + log_tail
        super().__init__(text)


class BackupError(GalerakvError):
    """A backup cannot be taken, read or restored; the message names the file and the fix."""
