"""JSON bodies of ``batch`` and ``txn``: parsed into backend operations, results rendered back."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from galerakv.backend.base import Compare, Entry, Op, OpResult
from galerakv.config import LimitsSettings
from galerakv.server import validate
from galerakv.server.problems import Problem

_OP_FIELDS = {"op", "key", "value", "value_base64", "content_type", "ttl", "if_match",
              "if_none_match"}
_COMPARE_FIELDS = {"key", "exists", "etag", "value", "value_base64", "not"}


class _DuplicateKey(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateKey(name)
            seen.add(name)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(body: bytes) -> Any:
    """The body as JSON, strictly: UTF-8, no NaN/Infinity, and no key twice in one object.

    orjson (used for every answer) keeps the last of repeated keys silently, so
    ``{"op": "get", "op": "delete"}`` would delete; the standard library's parser
    with a pairs hook sees them (measured: 230 us for a 256-operation batch,
    twice orjson's, against milliseconds of database work).
    """
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Problem("invalid_json", "the body is not valid JSON: it is not UTF-8 text") from None
    except _DuplicateKey as exc:
        raise Problem("invalid_json", f"the body is not valid JSON for galerakv: the key {str(exc)[:64]!r} "
                      "appears twice in one object; give each key once") from None
    except RecursionError:
        raise Problem("invalid_json", "the body is not valid JSON for galerakv: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, a number too long to convert
        raise Problem("invalid_json", f"the body is not valid JSON: {str(exc)[:200]}") from None


def _bad(where: str, message: str) -> Problem:
    return Problem("invalid_operation", f"{where}: {message}", at=where)


def _fields(obj: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _bad(where, "must be a JSON object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _bad(where, f"unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed))}")
    return obj


def _string(obj: dict[str, Any], name: str, where: str) -> str | None:
    if name not in obj:
        return None
    value = obj[name]
    if not isinstance(value, str):  # an explicit null is refused too: leave the field out instead
        raise _bad(f"{where}.{name}", "must be a string")
    return value


def _key(obj: dict[str, Any], where: str, limits: LimitsSettings) -> str:
    key = _string(obj, "key", where)
    if key is None:
        raise _bad(f"{where}.key", "is required")
    try:
        return validate.key(key, limits)
    except Problem as p:
        p.detail = f"{where}.key: {p.detail}"
        p.extra["at"] = f"{where}.key"
        raise


def _value(obj: dict[str, Any], where: str, limits: LimitsSettings) -> bytes | None:
    text = _string(obj, "value", where)
    b64 = _string(obj, "value_base64", where)
    if text is not None and b64 is not None:
        raise _bad(where, "give value or value_base64, not both")
    if text is not None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"{where}.value", "is not valid Unicode text") from None
    elif b64 is not None:
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"{where}.value_base64", "is not valid base64") from None
    else:
        return None
    validate.value_size(len(data), limits)
    return data


def parse_op(obj: Any, where: str, limits: LimitsSettings, conditions: bool) -> Op:
    fields = _fields(obj, where, _OP_FIELDS)
    kind = fields.get("op")
    if kind not in ("get", "put", "delete"):
        raise _bad(f"{where}.op", 'must be "get", "put" or "delete"')
    key = _key(fields, where, limits)
    if kind != "put":
        for name in ("value", "value_base64", "content_type", "ttl"):
            if name in fields:
                raise _bad(f"{where}.{name}", f"only a put takes {name}")
    if_match = _string(fields, "if_match", where)
    if_none = _string(fields, "if_none_match", where)
    if (if_match is not None or if_none is not None) and (not conditions or kind == "get"):
        raise _bad(where, "conditions (if_match, if_none_match) apply to put and delete in a batch;"
                          " in a txn use compare")
    try:
        version = validate.if_match(if_match)
        create_only = validate.if_none_match_put(if_none)
    except Problem as p:
        p.detail = f"{where}: {p.detail}"
        raise
    if kind == "put":
        value = _value(fields, where, limits)
        if value is None:
            raise _bad(where, "a put needs value (text) or value_base64 (bytes)")
        ct = _string(fields, "content_type", where)
        try:
            content_type = validate.content_type(ct)
        except Problem as p:
            raise _bad(f"{where}.content_type", p.detail) from None
        if "ttl" in fields and fields["ttl"] is None:
            raise _bad(f"{where}.ttl", "must be a number of seconds; leave it out for no expiry")
        ttl = validate.ttl(fields.get("ttl"), limits, f"{where}.ttl")
        return Op("put", key, value, content_type, ttl, version, create_only)
    return Op(kind, key, if_match=version, if_none_match=create_only)


def parse_ops(obj: Any, where: str, limits: LimitsSettings, max_ops: int, too_large: str,
              conditions: bool) -> list[Op]:
    if not isinstance(obj, list):
        raise _bad(where, "must be a JSON array of operations")
    if len(obj) > max_ops:
        raise Problem(too_large, f"{where} has {len(obj)} operations; the limit is {max_ops}",
                      limit=max_ops, size=len(obj))
    return [parse_op(item, f"{where}[{i}]", limits, conditions) for i, item in enumerate(obj)]


def parse_compare(obj: Any, where: str, limits: LimitsSettings) -> Compare:
    fields = _fields(obj, where, _COMPARE_FIELDS)
    key = _key(fields, where, limits)
    negate = fields.get("not", False)
    if not isinstance(negate, bool):
        raise _bad(f"{where}.not", "must be true or false")
    targets = [t for t in ("exists", "etag", "value", "value_base64") if t in fields]
    if len(targets) != 1 and targets != ["value", "value_base64"]:
        raise _bad(where, "give exactly one of exists, etag, value or value_base64")
    if "exists" in fields:
        if not isinstance(fields["exists"], bool):
            raise _bad(f"{where}.exists", "must be true or false")
        return Compare(key, "exists", fields["exists"], negate)
    if "etag" in fields:
        raw = _string(fields, "etag", where) or ""
        try:
            return Compare(key, "version", validate.parse_etag(raw, f"{where}.etag"), negate)
        except Problem as p:
            raise _bad(f"{where}.etag", p.detail) from None
    value = _value(fields, where, limits)
    assert value is not None
    return Compare(key, "value", value, negate)


def entry_json(entry: Entry, with_value: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"key": entry.key, "etag": validate.etag(entry.version)}
    if with_value:
        out["content_type"] = entry.content_type
        try:
            out["value"] = entry.value.decode("utf-8")
        except UnicodeDecodeError:
            out["value_base64"] = base64.b64encode(entry.value).decode()
    if entry.expires_at is not None:
        out["expires_at"] = round(entry.expires_at, 3)
    return out


_STATUS = {"get": {"ok": 200, "not_found": 404}, "put": {"ok": 200, "created": 201},
           "delete": {"ok": 204, "not_found": 404}}


def result_json(op: Op, result: OpResult) -> dict[str, Any]:
    if result.status == "precondition_failed":
        current = result.entry
        return {"key": op.key, "status": 412, "code": "precondition_failed",
                "current_etag": validate.etag(current.version) if current else None}
    status = _STATUS[op.kind][result.status]
    if status == 404:
        return {"key": op.key, "status": 404, "code": "not_found"}
    if op.kind == "get" and result.entry is not None:
        return {"status": 200, **entry_json(result.entry)}
    if op.kind == "put" and result.entry is not None:
        return {"status": status, **entry_json(result.entry, with_value=False)}
    return {"key": op.key, "status": status}
