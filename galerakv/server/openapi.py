"""The OpenAPI 3.0 document served at ``/openapi.json``, built from the settings' limits."""

from __future__ import annotations

from typing import Any

from galerakv import __version__
from galerakv.config import LimitsSettings, Settings
from galerakv.server.problems import CODES, PROBLEM_TYPE

_REF = "#/components/schemas/"
_NO_NUL = r"^[^\x00]*$"
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_CONTENT_TYPE = r"^([\x21-\x7e][\x20-\x7e]{0,254})?$"
# the forms the precondition headers accept (see galerakv.server.validate)
_ETAG = r'"[\x21\x23-\x7e]+"'
_ONE_ETAG = rf"^\s*(\*|{_ETAG})\s*$"
_ETAG_LIST = rf"^\s*(\*|(W/)?{_ETAG}(\s*,\s*(W/)?{_ETAG})*)\s*$"


def _problem(description: str, *codes: str) -> dict[str, Any]:
    listed = ", ".join(f"`{c}`" for c in codes)
    return {
        "description": f"{description} (code: {listed})" if codes else description,
        "content": {PROBLEM_TYPE: {"schema": {"$ref": _REF + "Problem"}}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code, (status, _) in CODES.items():
        by_status.setdefault(status, []).append(code)
    names = {400: "Bad input", 401: "No valid bearer token", 403: "Token scope too small",
             404: "Not found", 405: "Method not allowed", 412: "Precondition failed",
             408: "Body too slow", 410: "History compacted", 413: "Over a limit", 503: "Database unavailable"}
    return {str(s): _problem(names[s], *by_status[s]) for s in statuses}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": _REF + schema}}}}


_ETAG_HEADER = {"ETag": {"description": "Strong ETag of the stored version", "schema": {"type": "string"}}}
_REVISION_HEADER = {"X-Galerakv-Revision": {
    "description": "The store-wide revision the write committed at (for a write that changed nothing, the "
                   "revision it was decided at); watch from it to see every later change",
    "schema": {"type": "integer", "minimum": 0}}}


def _op_schema(limits: LimitsSettings, key: dict[str, Any], values: dict[str, Any],
               conditions: bool) -> dict[str, Any]:
    """One of get / put / delete, each with exactly the fields the server takes."""
    cond: dict[str, Any] = {}
    if conditions:
        cond = {"if_match": {"type": "string", "pattern": _ONE_ETAG},
                "if_none_match": {"type": "string", "enum": ["*"]}}

    def op(kind: str, extra: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"type": "object", "required": ["op", "key"], "additionalProperties": False,
                "properties": {"op": {"type": "string", "enum": [kind]}, "key": key, **extra}, **more}

    put_fields = {**values, "content_type": {"type": "string", "pattern": _CONTENT_TYPE},
                  "ttl": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                          "maximum": limits.max_ttl_seconds}, **cond}
    return {"oneOf": [
        op("get", {}),
        op("put", put_fields, oneOf=[{"required": ["value"]}, {"required": ["value_base64"]}]),
        op("delete", cond),
    ]}


def openapi_document(settings: Settings) -> dict[str, Any]:
    limits = settings.limits
    ns_param = {"name": "ns", "in": "path", "required": True,
                "description": "Namespace: 1-128 of letters, digits, '.', '_', '-'",
                "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"}}
    key_param = {"name": "key", "in": "path", "required": True,
                 "description": f"Key: any UTF-8 text but NUL, at most {limits.max_key_bytes} bytes;"
                                " percent-encode reserved characters ('/' may also appear as is)",
                 "schema": {"type": "string", "minLength": 1, "pattern": r"^[^\x00]+$"}}
    consistency = {"name": "consistency", "in": "query", "required": False,
                   "description": "strong (default): sees every write acknowledged before the read; local: "
                                  "cheaper on a Galera cluster, may miss the latest writes made through other nodes",
                   "schema": {"type": "string", "enum": ["strong", "local"]}}
    if_match = {"name": "If-Match", "in": "header", "required": False,
                "description": 'Compare-and-set: the ETag the key must have, or * for "exists"',
                "schema": {"type": "string", "pattern": _ONE_ETAG}}
    value_props = {
        "value": {"type": "string", "description": "UTF-8 value"},
        "value_base64": {"type": "string", "pattern": _BASE64, "description": "any bytes, base64"},
    }
    key_schema = {"type": "string", "minLength": 1, "pattern": _NO_NUL}
    result_schema = {
        "type": "object", "required": ["key", "status"],
        "properties": {
            "key": {"type": "string"}, "status": {"type": "integer"},
            "code": {"type": "string"}, "etag": {"type": "string"},
            "current_etag": {"type": "string", "nullable": True},
            "content_type": {"type": "string"}, **value_props,
            "expires_at": {"type": "number"},
        },
    }
    written_schema = {
        "type": "object", "required": ["key", "etag", "revision"],
        "properties": {"key": {"type": "string"}, "etag": {"type": "string"}, "revision": {"type": "integer"},
                       "expires_at": {"type": "number"}},
    }
    entry_schema = {
        "type": "object", "required": ["key", "etag"],
        "properties": {"key": {"type": "string"}, "etag": {"type": "string"},
                       "content_type": {"type": "string"}, **value_props,
                       "expires_at": {"type": "number"}},
    }
    binary = {"schema": {"type": "string", "format": "binary"}}
    key_path = {
        "parameters": [ns_param, key_param],
        "get": {
            "summary": "Read a value", "operationId": "getKey",
            "parameters": [consistency, {"name": "If-None-Match", "in": "header", "required": False,
                            "schema": {"type": "string", "pattern": _ETAG_LIST},
                            "description": "304 when the key's ETag is one of these, or *"}],
            "responses": {
                "200": {"description": "The raw value with its stored Content-Type",
                        "headers": _ETAG_HEADER, "content": {"*/*": binary}},
                "304": {"description": "Not modified", "headers": _ETAG_HEADER},
                **_errors(400, 401, 403, 404, 413, 503),
            },
        },
        "head": {
            "summary": "Read a value's headers", "operationId": "headKey",
            "responses": {"200": {"description": "Headers of GET", "headers": _ETAG_HEADER},
                          "304": {"description": "Not modified"},
                          **{s: {"description": d["description"]}
                             for s, d in _errors(400, 401, 403, 404, 413, 503).items()}},
        },
        "put": {
            "summary": "Store a value", "operationId": "putKey",
            "parameters": [
                {"name": "ttl", "in": "query", "required": False,
                 "description": f"Expire after this many seconds (at most {limits.max_ttl_seconds})",
                 "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                            "maximum": limits.max_ttl_seconds}},
                if_match,
                {"name": "If-None-Match", "in": "header", "required": False,
                 "description": "* = create only", "schema": {"type": "string", "enum": ["*"]}},
            ],
            "requestBody": {"required": False, "content": {"*/*": binary},
                            "description": f"The raw value, at most {limits.max_value_bytes} bytes"},
            "responses": {
                "200": {**_json("Written", "Updated"), "headers": {**_ETAG_HEADER, **_REVISION_HEADER}},
                "201": {**_json("Written", "Created"), "headers": {**_ETAG_HEADER, **_REVISION_HEADER}},
                **_errors(400, 401, 403, 408, 412, 413, 503),
            },
        },
        "delete": {
            "summary": "Remove a key", "operationId": "deleteKey",
            "parameters": [if_match],
            "responses": {"204": {"description": "Removed", "headers": _REVISION_HEADER},
                          **_errors(400, 401, 403, 404, 412, 503)},
        },
    }
    body_errors = _errors(400, 401, 403, 408, 413, 503)
    feed_params = [
        {"name": "prefix", "in": "query", "schema": {"type": "string", "pattern": _NO_NUL},
         "description": "only keys starting with this"},
        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0},
         "description": "the changes after this revision (default: from now on); at most the current revision"},
        {"name": "keys_only", "in": "query", "schema": {"type": "boolean"},
         "description": "leave the values out of the events"},
    ]
    feed_errors = _errors(400, 401, 403, 410, 503)
    return {
        "openapi": "3.0.3",
        "info": {"title": "galerakv", "version": __version__,
                 "description": "A replicated key-value web service. Every error is "
                                "application/problem+json with a stable `code`."},
        "paths": {
            "/v1/ns/{ns}/kv/{key}": key_path,
            "/v1/ns/{ns}/kv": {
                "parameters": [ns_param],
                "get": {
                    "summary": "List keys in key order, one page at a time",
                    "operationId": "listKeys",
                    "parameters": [
                        consistency,
                        {"name": "prefix", "in": "query", "schema": {"type": "string", "pattern": _NO_NUL}},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1,
                                    "maximum": limits.max_list_limit, "default": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"},
                         "description": "next_cursor of the previous page"},
                        {"name": "keys_only", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "delimiter", "in": "query",
                         "schema": {"type": "string", "maxLength": 16, "pattern": _NO_NUL},
                         "description": "group keys by the text up to this delimiter"},
                    ],
                    "responses": {"200": _json("ListPage", "One page"),
                                  **_errors(400, 401, 403, 503)},
                },
            },
            "/v1/ns/{ns}/batch": {
                "parameters": [ns_param],
                "post": {
                    "summary": "Independent operations, each with its own status",
                    "operationId": "batch",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"type": "object", "required": ["ops"], "additionalProperties": False,
                                   "properties": {
                            "ops": {"type": "array", "maxItems": limits.max_batch_ops,
                                    "items": {"$ref": _REF + "Op"}}}}}}},
                    "responses": {"200": _json("BatchResult", "Per-operation results"),
                                  **body_errors},
                },
            },
            "/v1/ns/{ns}/txn": {
                "parameters": [ns_param],
                "post": {
                    "summary": "Atomic: compares, then the success or the failure operations",
                    "operationId": "txn",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": _REF + "Txn"}}}},
                    "responses": {"200": _json("TxnResult", "Which branch ran and its results"),
                                  **body_errors},
                },
            },
            "/v1/ns/{ns}/watch": {
                "parameters": [ns_param],
                "get": {
                    "summary": "Follow the namespace's changes as server-sent events, in revision order",
                    "operationId": "watch",
                    "parameters": [*feed_params, {
                        "name": "Last-Event-ID", "in": "header", "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                        "description": "resume after this revision (sent by EventSource on reconnecting; "
                                       "wins over since)"}],
                    "responses": {"200": {
                        "description": "text/event-stream: `id: <revision>`, `event: put|delete|compacted`, "
                                       "`data: <Event JSON>`; a comment line at least every watch.keepalive "
                                       "seconds",
                        "headers": _REVISION_HEADER,
                        "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        **feed_errors},
                },
            },
            "/v1/ns/{ns}/changes": {
                "parameters": [ns_param],
                "get": {
                    "summary": "The namespace's changes after a revision, as one JSON page",
                    "operationId": "changes",
                    "parameters": [
                        *feed_params,
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1,
                                    "maximum": min(limits.max_list_limit, 1024), "default": 100}},
                        {"name": "wait", "in": "query",
                         "schema": {"type": "number", "minimum": 0, "maximum": 60, "multipleOf": 0.001},
                         "description": "seconds to wait for a first event when there is none yet"}],
                    "responses": {"200": {**_json("ChangePage", "Events, and the revision to ask after next"),
                                          "headers": _REVISION_HEADER},
                                  **feed_errors},
                },
            },
            "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz",
                                 "responses": {"200": {"description": "Alive", "content": {
                                     "application/json": {"schema": {"type": "object"}}}}}}},
            "/readyz": {"get": {"summary": "Readiness: the backend can serve",
                                "operationId": "readyz",
                                "responses": {"200": _json("Ready", "Ready"),
                                              "503": _problem("Not ready, with `ready` (false), `backend` "
                                                              "and `Retry-After`", "backend_unavailable")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                                 "responses": {"200": {"description": "Prometheus text format",
                                                       "content": {"text/plain": {
                                                           "schema": {"type": "string"}}}}}}},
            "/v1/status": {"get": {"summary": "Backend and limits", "operationId": "status",
                                   "responses": {"200": {"description": "Status", "content": {
                                       "application/json": {"schema": {"type": "object"}}}},
                                       **_errors(401)}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": {"description": "OpenAPI 3.0",
                                                            "content": {"application/json": {
                                                                "schema": {"type": "object"}}}}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object", "required": ["type", "title", "status", "code", "detail"],
                    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                   "status": {"type": "integer"},
                                   "code": {"type": "string", "enum": sorted(CODES)},
                                   "detail": {"type": "string"}, "instance": {"type": "string"},
                                   "limit": {"type": "integer"},
                                   "compact_revision": {"type": "integer"}, "revision": {"type": "integer"},
                                   "current_etag": {"type": "string", "nullable": True},
                                   "ready": {"type": "boolean"}, "backend": {"type": "string"}},
                },
                "Written": written_schema,
                "Entry": entry_schema,
                "ListPage": {
                    "type": "object", "required": ["items", "prefixes", "next_cursor"],
                    "properties": {"items": {"type": "array", "items": {"$ref": _REF + "Entry"}},
                                   "prefixes": {"type": "array", "items": {"type": "string"}},
                                   "next_cursor": {"type": "string", "nullable": True}},
                },
                "Op": _op_schema(limits, key_schema, value_props, conditions=True),
                "TxnOp": _op_schema(limits, key_schema, value_props, conditions=False),
                "OpResult": result_schema,
                "BatchResult": {"type": "object", "required": ["results"], "properties": {
                    "results": {"type": "array", "items": {"$ref": _REF + "OpResult"}},
                    "revision": {"type": "integer", "description": "present when the batch writes"}}},
                "Event": {
                    "type": "object", "required": ["key", "revision"],
                    "properties": {"type": {"type": "string", "enum": ["put", "delete"]},
                                   "key": {"type": "string"}, "revision": {"type": "integer"},
                                   "etag": {"type": "string"}, "prev_etag": {"type": "string"},
                                   "content_type": {"type": "string"}, **value_props,
                                   "expires_at": {"type": "number"}}},
                "ChangePage": {"type": "object", "required": ["events", "revision"], "properties": {
                    "events": {"type": "array", "items": {"$ref": _REF + "Event"}},
                    "revision": {"type": "integer", "description": "ask for the changes after this one next"}}},
                "Compare": {"oneOf": [
                    {"type": "object", "required": ["key", target], "additionalProperties": False,
                     "properties": {"key": key_schema, target: schema, "not": {"type": "boolean"}}}
                    for target, schema in (("exists", {"type": "boolean"}),
                                           ("etag", {"type": "string", "pattern": rf"^\s*{_ETAG}\s*$"}),
                                           ("value", value_props["value"]),
                                           ("value_base64", value_props["value_base64"]))]},
                "Txn": {"type": "object", "properties": {
                    "compare": {"type": "array", "items": {"$ref": _REF + "Compare"}},
                    "success": {"type": "array", "items": {"$ref": _REF + "TxnOp"}},
                    "failure": {"type": "array", "items": {"$ref": _REF + "TxnOp"}}},
                    "additionalProperties": False},
                "TxnResult": {"type": "object", "required": ["succeeded", "results", "revision"],
                              "properties": {"succeeded": {"type": "boolean"}, "revision": {"type": "integer"},
                                             "results": {"type": "array",
                                                         "items": {"$ref": _REF + "OpResult"}}}},
                "Ready": {"type": "object", "required": ["ready", "backend"],
                          "properties": {"ready": {"type": "boolean"},
                                         "backend": {"type": "string"},
                                         "detail": {"type": "string"}}},
            },
        },
    }
