"""The same trivial endpoints on Starlette routing."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

VALUE = b"v" * 100
PUT_BODY = b'{"etag":"\\"2-abcdef0123456789\\""}'


async def get_key(request: Request) -> Response:
    _ = request.path_params["key"]
    return Response(VALUE, media_type="application/octet-stream", headers={"etag": '"1-abcdef0123456789"'})


async def put_key(request: Request) -> Response:
    body = await request.body()
    _ = len(body)
    return Response(PUT_BODY, media_type="application/json", headers={"etag": '"2-abcdef0123456789"'})


app = Starlette(
    routes=[
        Route("/v1/ns/{ns}/kv/{key:path}", get_key, methods=["GET"]),
        Route("/v1/ns/{ns}/kv/{key:path}", put_key, methods=["PUT"]),
    ]
)
