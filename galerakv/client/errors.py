"""The exceptions the client raises; a caller never catches an httpx exception.

::

    ClientError
    ├── ProblemError            the server answered problem+json (status, code, detail, body)
    │   ├── NotFound            404 not_found
    │   ├── PreconditionFailed  412 precondition_failed (current_etag)
    │   ├── Unauthorized        401
    │   ├── Forbidden           403
    │   ├── InvalidRequest      any other 4xx: the request itself is wrong, never retried
    │   ├── Unavailable         503 backend_unavailable after every retry
    │   ├── Compacted           410 compacted: a watch or changes asked for history no longer
    │   │                       kept (compact_revision, revision)
    │   └── (ProblemError)      any other 5xx, such as 500 internal (a server bug), as is
    ├── OutcomeUnknown          a write was sent but whether it committed is not known:
    │                           re-read before retrying (503 outcome_unknown, or the
    │                           connection broke after the request left)
    └── ConnectionFailed        no server could be reached, after every retry
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ClientError(Exception):
    """Base of every error of :mod:`galerakv.client`."""


class ProblemError(ClientError):
    """The server answered with an RFC 9457 problem: ``status``, ``code``, ``detail``."""

    def __init__(self, status: int, code: str, detail: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body: Mapping[str, Any] = body or {}


class NotFound(ProblemError):
    """404: no such key (or it expired)."""


class PreconditionFailed(ProblemError):
    """412: an If-Match / If-None-Match did not hold; ``current_etag`` is the key's ETag now
    (None when the key does not exist)."""

    @property
    def current_etag(self) -> str | None:
        value = self.body.get("current_etag")
        return value if isinstance(value, str) else None


class Unauthorized(ProblemError):
    """401: no valid bearer token."""


class Forbidden(ProblemError):
    """403: the token does not cover this namespace or a write."""


class InvalidRequest(ProblemError):
    """Another 4xx: the request is wrong; retrying it cannot help."""


class Unavailable(ProblemError):
    """503: the database could not serve, on every attempt (nothing was written)."""


class Compacted(ProblemError):
    """410 (or a watch stream's ``event: compacted``): the changes after the revision asked for
    are no longer kept. Read the keys again (a ``list``), then watch from a revision taken before
    that read. ``compact_revision``: history up to it is gone; ``revision``: the store's revision."""

    @property
    def compact_revision(self) -> int | None:
        return _int(self.body.get("compact_revision"))

    @property
    def revision(self) -> int | None:
        return _int(self.body.get("revision"))


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class OutcomeUnknown(ClientError):
    """A write reached a server but its commit was not confirmed: it may or may not have
    happened. Read the key (or its ETag) before deciding to write again."""

    def __init__(self, message: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.body: Mapping[str, Any] = body or {}


class ConnectionFailed(ClientError):
    """No server answered, after every retry and every base URL."""


_BY_CODE: dict[str, type[ProblemError]] = {"not_found": NotFound,
                                            "precondition_failed": PreconditionFailed,
                                            "unauthorized": Unauthorized, "forbidden": Forbidden,
                                            "backend_unavailable": Unavailable, "compacted": Compacted}


def problem(status: int, body: Mapping[str, Any]) -> ProblemError:
    """The exception for a problem+json answer."""
    code = str(body.get("code") or ("not_found" if status == 404 else f"http_{status}"))
    detail = str(body.get("detail") or body.get("title") or "")
    if code in _BY_CODE:
        cls = _BY_CODE[code]
    elif status == 503:
        cls = Unavailable
    elif status < 500:
        cls = InvalidRequest
    else:  # 500 internal and the like: not the request's fault, so not InvalidRequest
        cls = ProblemError
    return cls(status, code, detail, body)
